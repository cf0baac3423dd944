"""``rag/answer_quality``: groundedness with real MiniLM (a grounded answer against an invented one),
citation validity with a citation of no source, and the asset over a real index (tiny exports, LanceDB):
offline on extractive answers with the judge off (as measured for the packaged model), the packaged model
generating and judging for real, then a worse generative answer graded by the LLM judge (a local
OpenAI-compatible server), which fires the WARN check."""

import dagster as dg
import pytest

from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.vector_store import VectorStoreResource
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.answer_quality import (GROUNDED_SIMILARITY, JUDGE_RUBRIC, answer_sentences, choose_threshold,
                                               parse_verdict, score_answer)
from reference_arch.rag.defs import answer_quality
from reference_arch_tests.fake_openai import FakeOpenAI
from reference_arch_tests.rag.conftest import DOCS, metadata, run_ingestion, run_processing

QUESTION = "Which option changes the chart colours?"
SOURCES = [{"title": "Charts", "text": DOCS["guides/charts.md"]},
           {"title": "Exporter crashes on empty input files",
            "text": "Running widgets export on an empty CSV raises IndexError. Empty files are now skipped with a "
                    "warning; fixed in 1.2."}]
GROUNDED = "The palette option of the charts section picks the colours [1]. Empty files are skipped with a warning [2]."
INVENTED = ("Widgets uploads every chart to a cloud dashboard each night [1]. "
            "Colours follow the operating system theme [2].")
WORSE = "Widgets uploads every chart to a cloud dashboard each night [9]."


class GradingServer(FakeOpenAI):
    """Answers questions with ``answer`` and the judge's rubric with ``verdict``."""

    def __init__(self, answer: str, verdict: str):
        super().__init__(answer=answer)
        self.verdict = verdict

    def success(self, path: str, body: dict) -> dict:
        reply = super().success(path, body)
        if body["messages"][0]["content"] == JUDGE_RUBRIC:
            reply["choices"][0]["message"]["content"] = self.verdict
        return reply


@pytest.fixture(scope="module")
def embed():
    return EmbeddingsResource(provider="local").embed_array


def test_an_invented_answer_is_less_grounded_than_a_grounded_one(embed):
    grounded = score_answer(QUESTION, GROUNDED, SOURCES, embed)
    invented = score_answer(QUESTION, INVENTED, SOURCES, embed)
    assert grounded["sentences"] == invented["sentences"] == 2
    assert min(grounded["support"]) >= GROUNDED_SIMILARITY > max(invented["support"])
    assert grounded["groundedness"] == 1.0 and invented["groundedness"] == 0.0
    assert grounded["relevance"] > 0.5


def test_a_citation_of_no_source_is_invalid_and_supports_nothing(embed):
    scores = score_answer(QUESTION, "The palette option picks the colours [1]. " + WORSE, SOURCES, embed)
    assert (scores["citations"], scores["valid_citations"]) == (2, 1)
    assert scores["sentence_citations"] == [[1], [9]] and scores["support"][1] == 0.0
    assert scores["groundedness"] == 0.5


def test_sentences_keep_the_citations_after_their_full_stop():
    assert answer_sentences("Charts are small. [1][2] Palettes pick colours [3].") == [
        ("Charts are small.", [1, 2]), ("Palettes pick colours.", [3])]
    assert answer_sentences("") == []


def test_verdicts_and_the_threshold_rule():
    assert parse_verdict('Sure: {"faithfulness": 5, "relevance": 3}') == {"faithfulness": 1.0, "relevance": 0.5}
    assert parse_verdict('{"faithfulness": 7, "relevance": 3}') is None
    assert parse_verdict("no idea") is None and parse_verdict('{"faithfulness": 2}') is None
    invented = [i / 100 for i in range(100)]  # 0.00 .. 0.99: 5 of them reach 0.95
    assert choose_threshold(invented) == 0.95 and choose_threshold([]) is None


def run_quality(instance, llm: LLMResource):
    return dg.materialize([answer_quality.answer_quality], instance=instance, raise_on_error=False, resources={
        "llm": llm, "embeddings": EmbeddingsResource(provider="local"), "vector_store": VectorStoreResource()})


def check_of(result) -> dg.AssetCheckEvaluation:
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_offline_then_a_worse_judged_generative_run_warns(rag_data, instance, monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REFERENCE_ARCH_RAG_ANSWERER"):
        monkeypatch.delenv(name, raising=False)
    run_ingestion(instance)
    assert run_processing(instance).success

    first = run_quality(instance, LLMResource())
    assert first.success
    meta = metadata(first, "answer_quality")
    assert meta["answerer"] == "extractive" and "by construction" in meta["grounded_by_construction"]
    assert meta["judge"].startswith("off by default for packaged:smollm2-135m-instruct (SmolLM2-135M-Instruct, 135M "
                                    "parameters, Q4_1 GGUF, Apache-2.0)")
    assert meta["threshold"] == GROUNDED_SIMILARITY
    splits = [s for s in ("dev", "test") if meta[f"{s}/questions"]]
    assert splits and meta["judged"] == meta["measured"] == sum(meta[f"{s}/questions"] for s in ("dev", "test"))
    for split in splits:  # extractive answers quote their sources: grounded and validly cited
        assert meta[f"{split}/citation_validity"] == meta[f"{split}/groundedness"] == 1.0
        assert 0 < meta[f"{split}/answer_relevance"] <= 1 and f"{split}/judge_faithfulness" not in meta
    assert check_of(first).passed and "first run" in check_of(first).description

    with GradingServer(answer=WORSE, verdict='{"faithfulness": 1, "relevance": 2}') as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="sk-test", cache=False)
        second = run_quality(instance, llm)
    assert second.success  # a WARN check does not fail the run
    meta = metadata(second, "answer_quality")
    assert meta["answerer"] == "generative" and meta["judge"] == "LLM judge: gpt-4o-mini"
    for split in splits:
        assert meta[f"{split}/citation_validity"] == meta[f"{split}/groundedness"] == 0.0
        assert meta[f"{split}/cited_answers"] == 0.0
        assert (meta[f"{split}/judge_faithfulness"], meta[f"{split}/judge_relevance"]) == (0.0, 0.25)
    judged = [r["body"]["messages"] for r in server.requests if r["body"]["messages"][0]["content"] == JUDGE_RUBRIC]
    assert len(judged) == len(server.requests) // 2 == meta["judged"]
    assert WORSE in judged[0][1]["content"] and "Question:" in judged[0][1]["content"]
    assert meta["llm/calls"] == len(server.requests)

    check = check_of(second)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"{splits[0]}/groundedness 1.000 -> 0.000" in check.description
    assert "answerer extractive -> generative" in check.description


def test_the_packaged_model_answers_and_judges_for_real(rag_data, instance):
    """Offline, run config turns on the generated answer and the judge: the packaged instruct model writes the
    answers and grades them, and the measures come from what it wrote."""
    run_ingestion(instance)
    assert run_processing(instance).success
    config = {"ops": {"rag__answer_quality": {"config": {"answerer": "generative", "judge": True, "max_questions": 1}}}}
    result = dg.materialize([answer_quality.answer_quality], instance=instance, run_config=config, resources={
        "llm": LLMResource(max_tokens=96), "embeddings": EmbeddingsResource(provider="local"),
        "vector_store": VectorStoreResource()})
    assert result.success
    meta = metadata(result, "answer_quality")
    assert meta["answerer"] == "generative" and meta["judge"] == "LLM judge: packaged:smollm2-135m-instruct"
    assert meta["llm/model"] == "packaged:smollm2-135m-instruct" and meta["llm/calls"] == 2 * meta["measured"]
    rows = [r.data for r in meta["per_question"].records]
    assert rows and all(len(r["answer"].split()) >= 3 for r in rows)  # sentences, not an empty or one-word reply
    split = rows[0]["part"]
    assert 0 <= meta[f"{split}/groundedness"] <= 1 and 0 < meta[f"{split}/answer_relevance"] <= 1
    # graded (a parsed verdict), or counted as unparsed: a small model may not answer in JSON
    assert f"{split}/judge_faithfulness" in meta or meta[f"{split}/judge_unparsed"] == 1
