"""Multi-query retrieval (``rag/multi_query.py``): rewrites parsed from what an LLM really writes, reciprocal
rank fusion, and the mode on a real index (tiny exports, real MiniLM, real LanceDB) against a local server
speaking OpenAI's chat API: rewrites fused and deduplicated, their contributions in metadata, an optional
LLM re-ranking, the one-line refusal offline, and the evaluation scoring it beside the other modes."""

from __future__ import annotations

import dagster as dg
import pytest

from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.questions import question_run_config
from reference_arch.common.vector_store import SEARCH_MODES, VectorStoreResource
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.rag.multi_query import (REWRITE_TOKENS, RRF_K, fuse, parse_rewrites, reciprocal_rank_fusion,
                                         reply_problem)
from reference_arch_tests.fake_openai import FakeOpenAI
from reference_arch_tests.rag.conftest import metadata, processing_assets, resources, run_ingestion, run_processing

QUESTION = "Which option changes the chart colours?"
REWRITES = "1. How do I pick the palette of charts?\n2) Setting for chart colors\n\n- high-contrast colours for charts"


class RewritingServer(FakeOpenAI):
    """Answers the rewrite prompt with ``rewrites`` and the re-ranking prompt with ``order``."""

    def __init__(self, rewrites: str = REWRITES, order: str = "1"):
        super().__init__()
        self.rewrites, self.order = rewrites, order

    def success(self, path: str, body: dict) -> dict:
        system = next((m["content"] for m in body.get("messages", []) if m["role"] == "system"), "")
        self.answer = self.rewrites if "rephrase" in system else self.order if "order search results" in system \
            else "An answer [1]."
        return super().success(path, body)

    def calls(self, kind: str) -> int:
        return sum(kind in r["body"]["messages"][0]["content"] for r in self.requests)


def test_rewrites_are_parsed_from_lists_json_and_junk():
    assert parse_rewrites(REWRITES, QUESTION, 3) == [
        "How do I pick the palette of charts?", "Setting for chart colors", "high-contrast colours for charts"]
    assert parse_rewrites(REWRITES, QUESTION, 2) == ["How do I pick the palette of charts?", "Setting for chart colors"]
    assert parse_rewrites('["a b", "A  B", "c"]', "q", 3) == ["a b", "c"]  # JSON list; repeats dropped
    assert parse_rewrites("", QUESTION, 3) == parse_rewrites("   \n\n", QUESTION, 3) == []
    # the question itself, a heading, quotes and bullets of other kinds
    reply = f"Here are 3 versions:\n* {QUESTION.upper()}\n\u2022 \"Chart colour option?\"\n(a) palette config"
    assert parse_rewrites(reply, QUESTION, 3) == ["Chart colour option?", "palette config"]


def test_a_malformed_rewrite_reply_gives_no_query_and_names_its_shape():
    assert parse_rewrites('{"a":1}', QUESTION, 3) == []  # was ['{"a":1}']
    assert parse_rewrites("[1,[2]]", QUESTION, 3) == []  # was ['1', '[2]']
    assert parse_rewrites("}{ ][ --- ?!\n***", QUESTION, 3) == []  # was ['}{ ][ --- ?!', '***']
    assert parse_rewrites("42", QUESTION, 3) == parse_rewrites("null", QUESTION, 3) == []
    assert parse_rewrites("palette option\n---\n}", QUESTION, 3) == ["palette option"]  # word lines kept
    assert reply_problem('{"a":1}') == "an object in JSON, not a list of strings"
    assert reply_problem("[1,[2]]") == "a JSON list holding a list and a number, not only strings"
    assert reply_problem("}{ ][ --- ?!") == "no line with a letter or digit"
    assert reply_problem("") == "an empty reply" and reply_problem(REWRITES) is None


def test_reciprocal_rank_fusion_sums_one_over_k_plus_rank():
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["b", "a"], ["b", "b", "d"]]))
    assert fused["b"] == pytest.approx(1 / (RRF_K + 2) + 2 / (RRF_K + 1))  # a repeat counts once, at its best
    assert fused["a"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert fused["d"] == pytest.approx(1 / (RRF_K + 2)) and fused["c"] == pytest.approx(1 / (RRF_K + 3))
    ranked = [d for d, _ in reciprocal_rank_fusion([["a", "b", "c"], ["b", "a"], ["b", "b", "d"]])]
    assert ranked == ["b", "a", "d", "c"]
    weighted = dict(reciprocal_rank_fusion([["a", "b"], ["b", "c"]], weights=[1.0, 0.25]))
    assert weighted["b"] == pytest.approx(1 / (RRF_K + 2) + 0.25 / (RRF_K + 1))
    assert weighted["c"] == pytest.approx(0.25 / (RRF_K + 2))
    with pytest.raises(ValueError):  # one weight per ranking
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])


def test_fuse_keeps_one_source_per_document_and_says_what_each_query_brought():
    def src(doc):
        return {"document_id": doc, "title": doc, "source": doc, "score": 0.5, "rank": 0, "text": f"text of {doc}"}

    sources, contributions = fuse(["q", "r1"], [[src("a"), src("b")], [src("c"), src("a")]], k=2)
    assert [s["document_id"] for s in sources] == ["a", "c"] and [s["rank"] for s in sources] == [1, 2]
    assert sources[0]["score"] == pytest.approx(1 / 61 + 1 / 62, abs=1e-6)
    assert contributions == [{"query": "q", "found": 2, "in_top_k": ["a"]},
                             {"query": "r1", "found": 2, "in_top_k": ["c", "a"]}]


@pytest.mark.parametrize("reply, expected", [("2, 3, 1", "bca"), ("[3] is best, then [2]", "cba"),
                                             ("I cannot tell.", "abc"), ("", "abc"), ("7, 0, 2, 2", "bac")])
def test_the_llm_reranking_keeps_every_source_whatever_it_replies(reply, expected):
    from reference_arch.rag.multi_query import rerank

    sources = [{"document_id": d, "title": f"Title {d}", "text": f"Text of {d}"} for d in "abc"]
    with RewritingServer(order=reply) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False)
        assert "".join(s["document_id"] for s in rerank(llm, QUESTION, sources)) == expected
    prompt = server.requests[0]["body"]["messages"][1]["content"]
    assert "Text of a" in prompt and QUESTION in prompt


def ask(instance, llm, question_config=None, **retrieval):
    config = question_run_config("rag", QUESTION)
    config["ops"]["rag__question"]["config"].update(question_config or {})
    config["ops"]["rag__retrieved_sources"] = {"config": {"mode": "multi_query", **retrieval}}
    from reference_arch.rag.defs import inference

    return dg.materialize([inference.question, inference.retrieved_sources], instance=instance, run_config=config,
                          resources={**resources(), "llm": llm}, raise_on_error=False)


def failure(result) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description


def test_offline_the_packaged_model_rewrites_and_the_evaluation_scores_it(rag_data, instance):
    """No key: the packaged instruct model writes the rewrites, for the question job and for the evaluation,
    which puts multi-query's recall beside the chosen mode's on the same dev questions."""
    run_ingestion(instance)
    built = run_processing(instance)
    assert built.success
    meta = metadata(built, "retrieval_evaluation")
    assert meta["multi_query"].startswith("multi_query: 3 rewrites per question by packaged:smollm2-135m-instruct")
    assert "dev questions: recall@5" in meta["multi_query"] and meta["multi_query_calls"] >= 1
    assert meta["best_mode"] in SEARCH_MODES and f"multi_query_sample/multi_query/recall@5" in meta
    asked = ask(instance, LLMResource(cache=False))
    assert asked.success, failure(asked)
    meta = metadata(asked, "retrieved_sources")
    assert meta["mode"] == "multi_query" and meta["llm/model"] == "packaged:smollm2-135m-instruct"
    assert meta["llm/completion_tokens"] <= 3 * REWRITE_TOKENS  # capped for a reply of 3 lines, not the 256 allowed
    rows = [r.data for r in meta["queries"].records]
    assert rows[0]["query"] == QUESTION and len(rows) == 1 + meta["rewrites_used"]
    assert all(r["query"].strip() and r["query"] != QUESTION for r in rows[1:])

    # An LLM that fails (a bad key): multi-query is left out in one line, the modes are scored and chosen.
    from reference_arch.rag.defs import evaluation

    with FakeOpenAI(script=[(401, None)] * 3) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="sk-bad", cache=False)
        failed = dg.materialize([evaluation.retrieval_evaluation], instance=instance,
                                resources={**resources(), "llm": llm})
    meta = metadata(failed, "retrieval_evaluation")
    assert meta["multi_query"].startswith("multi_query: failed (") and "\n" not in meta["multi_query"]
    assert "sk-bad" not in meta["multi_query"] and len(server.requests) == 1  # stopped at the first failure
    assert meta["best_mode"] in SEARCH_MODES and not [k for k in meta if "multi_query/" in k]


def test_rewrites_are_searched_fused_deduplicated_and_recorded(rag_data, instance):
    run_ingestion(instance)
    assert run_processing(instance).success
    with RewritingServer(order="3, 1, 3, 99") as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False)
        result = ask(instance, llm, k=3)
        assert result.success, failure(result)
        sources = result.asset_value(dg.AssetKey(["rag", "retrieved_sources"]))["sources"]
        ids = [s["document_id"] for s in sources]
        assert len(ids) == len(set(ids)) == 3 and [s["rank"] for s in sources] == [1, 2, 3]
        assert sources[0]["score"] >= sources[1]["score"] >= sources[2]["score"]
        assert "docs:guides/charts.md" in ids
        meta = metadata(result, "retrieved_sources")
        assert meta["mode"] == "multi_query" and meta["base_mode"] in SEARCH_MODES
        assert meta["rewrites_used"] == 3 and "Setting for chart colors" in meta["rewrites"]
        rows = [r.data for r in meta["queries"].records]
        assert [r["kind"] for r in rows] == ["question", "rewrite 1", "rewrite 2", "rewrite 3"]
        assert rows[0]["query"] == QUESTION and rows[2]["query"] == "Setting for chart colors"
        contributed = {d for r in rows for d in r["documents"].split(", ") if d}
        assert contributed == set(ids)  # every fused source was found by some query
        assert meta["llm/calls"] == 1 and server.calls("rephrase") == 1 and QUESTION in str(server.requests[0])

        # Re-ranked by the LLM: its order first (unknown and repeated numbers ignored), then the rest fused;
        # both calls with the model this run's question asks for, as the answer's.
        fused = ids
        reranked = ask(instance, llm, {"model": "gpt-4o", "policy": "fixed"}, k=3, rerank=True)
        assert reranked.success, failure(reranked)
        order = [s["document_id"] for s in reranked.asset_value(dg.AssetKey(["rag", "retrieved_sources"]))["sources"]]
        assert server.calls("order search results") == 1 and metadata(reranked, "retrieved_sources")["reranked"]
        assert [r["body"]["model"] for r in server.requests[-2:]] == ["gpt-4o", "gpt-4o"]
        assert len(order) == 3 and order[1] == fused[0]  # candidate 1 (the fused best) came second

        # A reply with nothing usable: the question alone is searched, and the metadata says so.
        server.rewrites = "\n\n   \n"
        empty = ask(instance, llm, k=3)
        assert empty.success
        meta = metadata(empty, "retrieved_sources")
        assert meta["rewrites_used"] == 0 and meta["rewrites"] == "(none usable)"
        assert [s["document_id"] for s in empty.asset_value(dg.AssetKey(["rag", "retrieved_sources"]))["sources"]] == \
            [r["document_id"] for r in _dense(instance, meta["base_mode"])][:3]

        # JSON of the wrong shape is never searched as text: the metadata names its shape.
        server.rewrites = '{"a": 1}'
        shaped = ask(instance, llm, k=3)
        assert shaped.success
        meta = metadata(shaped, "retrieved_sources")
        assert meta["rewrites_used"] == 0 and meta["rewrite_problem"] == "an object in JSON, not a list of strings"


def _dense(instance, mode="dense"):
    from reference_arch.rag.defs import index as rag_index
    from reference_arch.rag.retrieval import retrieve

    embeddings = EmbeddingsResource(provider="local")
    collection = rag_index.open_collection(embeddings, VectorStoreResource())
    return retrieve(collection, QUESTION, embeddings.embed_query(QUESTION), mode, 3)


def test_the_evaluation_scores_multi_query_beside_the_modes_and_caches_the_rewrites(rag_data, instance):
    from reference_arch.rag.defs import evaluation

    run_ingestion(instance)
    with RewritingServer() as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k")  # temperature 0: cached
        env = {**resources(), "llm": llm}
        every = {"ops": {"rag__retrieval_evaluation": {"config": {"multi_query_questions": 0}}}}  # not a sample
        first = dg.materialize(processing_assets(), instance=instance, resources=env, run_config=every)
        assert first.success
        meta = metadata(first, "retrieval_evaluation")
        judged = meta["judged"]
        assert judged == 3 and server.calls("rephrase") == judged  # one call per judged question
        assert meta["multi_query"].startswith("multi_query: 3 rewrites per question by gpt-4o-mini, searched with ")
        for split in ("dev", "test"):
            for mode in (*SEARCH_MODES, "langchain_baseline", "multi_query"):
                assert 0.0 <= meta[f"eval_set/{split}/{mode}/recall@5"] <= 1.0
        assert meta["best_mode"] in SEARCH_MODES  # never multi_query: it would make every question need the LLM
        assert meta["multi_query_calls"] == judged
        rows = [r.data for r in meta["per_question"].records]
        assert all("multi_query" in r for r in rows)

        again = metadata(dg.materialize([evaluation.retrieval_evaluation], instance=instance, resources=env,
                                        run_config=every), "retrieval_evaluation")
        assert server.calls("rephrase") == judged and again["multi_query_cache_hits"] == judged  # no new tokens
        assert {k: v for k, v in again.items() if "multi_query/" in k} == \
            {k: v for k, v in meta.items() if "multi_query/" in k}

        off = dg.materialize([evaluation.retrieval_evaluation], instance=instance, resources=env,
                             run_config={"ops": {"rag__retrieval_evaluation": {"config": {"multi_query": False}}}})
        assert metadata(off, "retrieval_evaluation")["multi_query"].startswith("multi_query: off")


def answer_cap(request: dict) -> int | None:
    body = request["body"]
    return body.get("max_completion_tokens", body.get("max_tokens"))


def test_a_reply_of_known_length_is_capped_below_the_resources_limit():
    """A rewrite reply is n lines and a re-ranking a few numbers: each call asks for that many tokens, not the
    resource's 256 (a small model that answers instead of rephrasing wrote on to the cap, 20 s a call on two
    cores); a resource with a lower limit keeps it."""
    from reference_arch.rag.multi_query import rerank, rewrite

    sources = [{"document_id": d, "title": d, "text": f"Text of {d}"} for d in "abc"]
    with RewritingServer() as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False)
        assert rewrite(llm, QUESTION, 3)[0]
        rerank(llm, QUESTION, sources)
        llm.generate("Hello")
        low = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False, max_tokens=64)
        rewrite(low, QUESTION, 3)
    assert [answer_cap(r) for r in server.requests] == [3 * REWRITE_TOKENS, 4 * 3 + 8, 256, 64]
