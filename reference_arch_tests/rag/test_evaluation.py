"""Retrieval evaluation: dev/test split, question sets, judging only what is indexed, the baseline."""

from __future__ import annotations

import hashlib
import re

import dagster as dg
import pytest

from reference_arch.rag.question_sets import (QuestionSetError, answerable, document_names, load_question_set,
                                              load_question_sets, shipped_sets, split_of)
from reference_arch_tests.rag.conftest import checks_passed, metadata, resources, run_ingestion, run_processing


def test_split_is_a_stable_hash_of_the_id_disjoint_and_about_half():
    for path in shipped_sets():
        questions = load_question_set(path)
        dev = {q.id for q in questions if q.split == "dev"}
        test = {q.id for q in questions if q.split == "test"}
        assert dev.isdisjoint(test) and dev | test == {q.id for q in questions}
        assert 0.35 <= len(test) / len(questions) <= 0.65, (path.name, len(test), len(questions))
        for q in questions:  # the same on every machine: sha256 of the id, not Python's salted hash()
            expected = "test" if int(hashlib.sha256(q.id.encode()).hexdigest()[:8], 16) % 100 < 50 else "dev"
            assert q.split == split_of(q.id) == expected
    # editing a question's wording keeps it where it was: the split follows the id
    assert split_of("df/set_index") == split_of("df/set_index")


def test_shipped_sets_ask_in_users_words():
    sets = load_question_sets()
    assert {"samples", "pandas_dataframe", "numpy"} <= set(sets)
    for name in ("pandas_dataframe", "numpy"):
        assert len(sets[name]) >= 40
        for q in sets[name]:
            assert len({x.id for x in sets[name]}) == len(sets[name])
            for doc_id in q.relevant:  # the question never names the function that answers it
                assert doc_id.startswith("docs:")
                function = doc_id.rsplit(".", 1)[-1]
                assert not re.search(rf"\b{re.escape(function)}\b", q.question, re.IGNORECASE), (q.id, function)


def test_a_shared_docstring_is_found_under_any_of_its_names():
    docs = [{"id": "docs:numpy.abs", "format": "docstring",
             "text": "numpy.abs(x)\n\nAbsolute value.\n\nAlso documented as: numpy.absolute"},
            {"id": "docs:guide.md", "format": "markdown", "text": "Also documented as: nothing"}]
    names = document_names(docs)
    assert names["docs:numpy.absolute"] == names["docs:numpy.abs"] == "docs:numpy.abs"
    assert "docs:nothing" not in names  # only docstrings have other names
    [question] = load_question_sets()["numpy"][30:31]
    assert question.id == "np/absolute" and answerable(question, names) == ["docs:numpy.abs"]  # one document


def test_a_bad_question_set_names_the_file_and_the_entry(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("questions:\n  - question: Where is the cache?\n")
    with pytest.raises(QuestionSetError, match=r"mine\.yaml: question 1 needs 'question' and a list 'relevant'"):
        load_question_set(path)
    path.write_text("questions:\n  - {id: a, question: x, relevant: [d]}\n  - {id: a, question: y, relevant: [d]}\n")
    with pytest.raises(QuestionSetError, match="question id 'a' appears twice"):
        load_question_set(path)


USER_SET = """name: widgets
questions:
  - id: cache
    question: Where is the cache directory?
    relevant: ["slack:C1:1780304400.000100"]
  - id: colours
    question: Which option changes the chart colours?
    relevant: ["docs:guides/charts.md", "github:acme/widgets#2", "docs:not-in-the-corpus.md"]
  - id: exporter
    question: The exporter fails on an empty CSV file
    relevant: ["github:acme/widgets#1"]
  - id: install
    question: How do I install it?
    relevant: ["docs:index.md"]
  - id: elsewhere
    question: A question about documents this corpus does not have
    relevant: ["docs:elsewhere.md"]
"""


def test_user_set_is_judged_on_what_is_indexed_and_the_shipped_sets_have_nothing_to_judge(rag_data, tmp_path,
                                                                                            monkeypatch):
    from reference_arch.rag.defs import evaluation

    user_set = tmp_path / "widgets.yaml"
    user_set.write_text(USER_SET)
    monkeypatch.setenv("REFERENCE_ARCH_RAG_EVAL_SET", str(user_set))  # the user's set, through the environment
    with dg.DagsterInstance.ephemeral() as instance:
        run_ingestion(instance)
        result = run_processing(instance)
        assert result.success and checks_passed(result)["retrieval_quality"]
        meta = metadata(result, "retrieval_evaluation")
        assert meta["questions"] == 5 and meta["judged"] == 4  # "elsewhere" cannot be judged here
        splits = {q: split_of(q) for q in ("cache", "colours", "exporter", "install")}
        for split in ("dev", "test"):
            assert meta[f"widgets/{split}/judged"] == sum(s == split for s in splits.values())
            for mode in ("dense", "keyword", "hybrid", "langchain_baseline"):
                assert 0.0 <= meta[f"widgets/{split}/{mode}/recall@5"] <= 1.0
                assert 0.0 <= meta[f"widgets/{split}/{mode}/mrr"] <= 1.0
        rows = {r.data["id"]: r.data for r in meta["per_question"].records}
        assert set(rows) == set(splits)
        # judged against the documents that are indexed: the missing page is not counted against recall
        assert rows["colours"]["relevant"] == "docs:guides/charts.md, github:acme/widgets#2"
        assert meta["best_mode"] in ("dense", "keyword", "hybrid") and "mean dev recall@5" in meta["selection"]
        # the baseline's chunks go through an embedding cache: a second run embeds none of them, same scores
        assert meta["baseline_embedded"] == meta["baseline_chunks"] > 0
        again = metadata(dg.materialize([evaluation.retrieval_evaluation], instance=instance, resources=resources()),
                         "retrieval_evaluation")
        assert again["baseline_embedded"] == 0 and again["baseline_chunks"] == meta["baseline_chunks"]
        assert {k: v for k, v in again.items() if "langchain_baseline" in k} == \
            {k: v for k, v in meta.items() if "langchain_baseline" in k}

        # The shipped sets ask about the samples, pandas and numpy: nothing of them is in this corpus.
        shipped = dg.materialize(
            [evaluation.retrieval_evaluation], instance=instance, resources=resources(),
            run_config={"ops": {"rag__retrieval_evaluation": {"config": {
                "question_sets": [str(p) for p in shipped_sets()], "baseline": False}}}})
        assert shipped.success
        meta = metadata(shipped, "retrieval_evaluation")
        assert meta["judged"] == 0 and meta["questions"] >= 150
        [check] = shipped.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # not measured is not a pass
        assert check.description.startswith("nothing to judge") and "REFERENCE_ARCH_RAG_EVAL_SET" in check.description
        assert check.metadata["judged_test"].value == 0


def test_a_missing_question_set_fails_with_the_setting_that_names_it(rag_data, tmp_path, monkeypatch):
    from reference_arch.rag.defs import evaluation

    monkeypatch.setenv("REFERENCE_ARCH_RAG_EVAL_SET", str(tmp_path / "nope.yaml"))
    with dg.DagsterInstance.ephemeral() as instance:  # the sets are read first: nothing else is needed
        result = dg.materialize([evaluation.retrieval_evaluation], instance=instance, resources=resources(),
                                raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "evaluation set not found" in str(failure.event_specific_data.error)
    assert "REFERENCE_ARCH_RAG_EVAL_SET" in str(failure.event_specific_data.error)
