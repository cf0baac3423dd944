"""The whole RAG graph on tiny data, with the real LanceDB and the real all-MiniLM-L6-v2:
ingestion -> documents -> chunks -> embeddings -> index -> evaluation -> answer; then idempotency,
a changed document, a deleted docs file, and bad input that must not lose what was stored."""

import json

import dagster as dg
import pytest

from reference_arch_tests.rag.conftest import (DAY1, DAY2, DAY3, checks_passed, metadata, range_tags, resources,
                                               run_ingestion, run_processing)


def index_ids():
    from reference_arch.rag.defs.index import open_collection

    res = resources()
    return open_collection(res["embeddings"], res["vector_store"]).chunk_ids()


def chunk_ids():
    from reference_arch.rag.defs.processing import chunks_path, read_rows

    return {r["id"]: r["document_id"] for r in read_rows(chunks_path(), ["id", "document_id"])}


def test_graph_ingests_indexes_evaluates_and_stays_consistent(rag_data, instance):
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success
    assert set(instance.get_dynamic_partitions("rag_docs")) == {"package:json", "dir:.", "dir:guides"}
    # A two-day run records its count as the run's on both days, never as each day's own rows_loaded.
    ranged = [e.materialization for e in daily.get_asset_materialization_events()
              if e.asset_key.path[-1] == "github_issues"]
    assert {m.partition for m in ranged} == {DAY1, DAY2}
    for materialization in ranged:
        values = {k: v.value for k, v in materialization.metadata.items()}
        assert "rows_loaded" not in values and values["rows_loaded_in_run"] >= 1
        assert values["run_partitions"].startswith(f"{DAY1} .. {DAY2} (2 partitions")
    # ... and each partition's own count as an observation; the docs partitions too
    pages = {o.asset_observation_data.asset_observation.partition:
             o.asset_observation_data.asset_observation.metadata["rows_loaded"].value
             for o in docs.get_asset_observation_events()}
    assert set(pages) == {"package:json", "dir:.", "dir:guides"} and min(pages.values()) >= 2  # pages + marker
    assert sum(pages.values()) == metadata(docs, "docs_pages")["rows_loaded_in_run"]

    first = run_processing(instance)
    assert first.success
    assert all(checks_passed(first).values()), checks_passed(first)
    documents = metadata(first, "documents")
    assert documents["source_type/github"] == 2 and documents["source_type/slack"] == 1
    assert documents["source_type/docs"] >= 5  # 3 files + json's functions
    chunks = metadata(first, "chunks")
    assert chunks["max_tokens"] <= chunks["token_limit"] == 256
    assert metadata(first, "embeddings")["embedded"] == chunks["chunks"]
    index = metadata(first, "vector_index")
    assert index["rows"] == chunks["chunks"] and index["chunks_inserted"] == chunks["chunks"]
    evaluation = metadata(first, "retrieval_evaluation")
    assert evaluation["judged"] == evaluation["questions"] == 3  # three easy questions on a tiny corpus
    for split in ("dev", "test"):
        for mode in ("dense", "keyword", "hybrid", "langchain_baseline"):
            assert 0.0 <= evaluation[f"eval_set/{split}/{mode}/recall@5"] <= 1.0
            assert 0.0 <= evaluation[f"eval_set/{split}/{mode}/mrr"] <= 1.0
    ids = chunk_ids()
    assert index_ids() == ids
    # the bot's coverage comment is left out; the maintainer's answer is in
    assert not any("Coverage 91%" in t for t in _texts()) and any("skipped with a warning" in t for t in _texts())

    # Re-materializing unchanged data: same ids, nothing embedded or written again.
    again = run_ingestion(instance)
    assert all(r.success for r in again)
    assert metadata(again[1], "docs_pages")["unchanged"] is True  # docs not even re-read
    second = run_processing(instance)
    assert second.success and all(checks_passed(second).values())
    assert metadata(second, "chunks")["documents_rechunked"] == 0
    assert metadata(second, "embeddings")["embedded"] == 0
    assert metadata(second, "vector_index")["documents_replaced"] == 0
    assert chunk_ids() == ids and index_ids() == ids

    # A changed docs file: only its chunks are replaced; a deleted one: its chunks leave the index.
    charts = rag_data["docs"] / "guides" / "charts.md"
    charts.write_text(charts.read_text() + "\n## Fonts\n\nThe `font` option sets the typeface of labels.\n")
    (rag_data["docs"] / "guides" / "cli.rst").unlink()
    assert dg.materialize([_docs_assets()], instance=instance, partition_key="dir:guides").success
    third = run_processing(instance)
    assert third.success and all(checks_passed(third).values())
    index = metadata(third, "vector_index")
    assert index["documents_replaced"] == 1 and index["documents_deleted"] == 1
    assert metadata(third, "embeddings")["embedded"] >= 1
    now = index_ids()
    assert not any(doc == "docs:guides/cli.rst" for doc in now.values())
    assert any("typeface" in t for t in _texts())
    unchanged = {i for i, doc in ids.items() if doc not in ("docs:guides/charts.md", "docs:guides/cli.rst")}
    assert unchanged <= set(now)


def test_bad_input_is_skipped_and_counted_and_failures_keep_the_index(rag_data, instance):
    run_ingestion(instance)
    assert run_processing(instance).success
    before = index_ids()

    # Malformed and non-UTF-8 files are skipped and counted, never failing the partition.
    (rag_data["github"] / "acme" / "widgets" / "issues-2.json").write_text("[{not json")
    (rag_data["docs"] / "guides" / "latin1.md").write_bytes("# Caf\xe9\n\nna\xefve".encode("latin-1"))
    (rag_data["docs"] / "guides" / "empty.md").write_text("  \n")
    github = dg.materialize([_github_assets()], instance=instance, tags=range_tags(DAY1, DAY2))
    assert github.success
    assert metadata(github, "github_issues")["skipped_malformed_json"] == 1
    docs = dg.materialize([_docs_assets()], instance=instance, partition_key="dir:guides")
    assert docs.success
    pages = metadata(docs, "docs_pages")
    assert pages["repaired_not_utf8"] == 1 and pages["skipped_empty_file"] == 1  # kept, bad bytes replaced

    # A missing export is a clear error naming it, and everything stored before stays queryable.
    missing = rag_data["github"].parent / "nowhere"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(missing))
        failed = dg.materialize([_github_assets()], instance=instance, partition_key=DAY1, raise_on_error=False)
    assert not failed.success
    assert str(missing) in _failure(failed)
    assert run_processing(instance).success
    assert set(before) <= set(index_ids())

    # A missing docs folder too.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFERENCE_ARCH_DOCS_DIR", str(missing))
        failed = dg.materialize([_docs_assets()], instance=instance, partition_key="dir:guides", raise_on_error=False)
    assert not failed.success and str(missing) in _failure(failed)
    assert set(before) <= set(index_ids())


def test_question_job_answers_with_numbered_sources(rag_data, instance, registry_with_tiny_model, monkeypatch):
    from reference_arch.common.questions import question_run_config
    from reference_arch.rag.definitions import defs

    monkeypatch.setenv("REFERENCE_ARCH_RAG_ANSWERER", "generative")  # the local model (extractive: test_answers.py)

    run_ingestion(instance)
    assert run_processing(instance).success
    job = defs.resolve_job_def("rag_question_job")
    result = job.execute_in_process(run_config=question_run_config("rag", "Which option changes the chart colours?"),
                                    instance=instance)
    record = result.asset_value(dg.AssetKey(["rag", "answer"]))
    assert record["model"] == "registry:tiny-lm@1" and record["usage"]["calls"] == 1
    sources = record["sources"]
    assert 1 <= len(sources) <= 5 and [s["rank"] for s in sources] == list(range(1, len(sources) + 1))
    assert sources[0]["document_id"] in ("docs:guides/charts.md", "github:acme/widgets#2")
    assert all({"id", "title", "source", "score"} <= set(s) and s["id"] == s["document_id"] for s in sources)
    assert all(a["score"] >= b["score"] for a, b in zip(sources, sources[1:]))
    assert json.loads(json.dumps(record, default=str))["sources"][0]["title"]
    answer_md = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "answer"][0]
    assert "**Sources**" in answer_md.materialization.metadata["answer"].value

    refused = job.execute_in_process(run_config=question_run_config("rag", "   "), instance=instance,
                                     raise_on_error=False)
    assert not refused.success and "question refused" in _failure(refused)


def _texts():
    from reference_arch.rag.defs.processing import chunks_path, read_rows

    return [r["text"] for r in read_rows(chunks_path(), ["text"])]


def _github_assets():
    from reference_arch.rag.defs.ingestion import github_assets

    return github_assets


def _docs_assets():
    from reference_arch.rag.defs.ingestion import docs_assets

    return docs_assets


def _failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            text = ""
            while error is not None:
                text += error.message
                error = error.cause
            return text + str(event.step_failure_data.user_failure_data.description
                              if event.step_failure_data.user_failure_data else "")
    return ""


def test_a_one_day_run_records_that_days_row_count(rag_data, instance):
    """The schedule's and sensors' runs are one day each: rows_loaded is that day's own count. A run
    over a range observes each day's own rows_loaded: they match the one-day runs, sum to the run's
    count, and a day with nothing observes 0."""
    from reference_arch.rag.defs import ingestion

    counts = {}
    for day in (DAY1, DAY2):
        result = dg.materialize([ingestion.github_assets], instance=instance, partition_key=day)
        assert result.success
        counts[day] = metadata(result, "github_issues")["rows_loaded"]
    assert counts == {DAY1: 1, DAY2: 1}
    ranged = dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                            tags=range_tags(DAY1, DAY3))
    assert ranged.success
    observed = {}
    for event in ranged.get_asset_observation_events():
        observation = event.asset_observation_data.asset_observation
        observed.setdefault(observation.asset_key.path[-1], {})[observation.partition] = \
            observation.metadata["rows_loaded"].value
    assert observed["github_issues"] == {**counts, DAY3: 0}
    assert sum(observed["github_issues"].values()) == metadata(ranged, "github_issues")["rows_loaded_in_run"]
    # comments count on their issue's day (the bot's comment is stored too); messages on their own ts
    assert observed["github_comments"] == {DAY1: 2, DAY2: 1, DAY3: 0}
    assert observed["slack_messages"] == {DAY1: 2, DAY2: 0, DAY3: 0}
    assert "slack_channels" not in observed and "slack_users" not in observed  # snapshots, not by day
    # what each partition's history shows: its own count
    stored = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(["rag", "github_issues"]),
                                                               asset_partitions=[DAY3]), limit=5).records
    assert [r.asset_observation.metadata["rows_loaded"].value for r in stored] == [0]
