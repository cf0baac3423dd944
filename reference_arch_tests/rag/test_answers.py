"""``rag/answer`` on a real index (tiny exports, real MiniLM, real LanceDB): the extractive answer
offline, the generative one against a chat-only OpenAI-compatible server, the embeddings chosen only
by their own switch, and an index that refuses queries embedded with another model."""

import json
import re

import dagster as dg
import pytest

from reference_arch.common.vector_store.embeddings import EmbeddingsResource, packaged_minilm_path
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.questions import markdown_code, markdown_text, question_run_config
from reference_arch.common.resources import embeddings_resource, llm_resource
from reference_arch.common.vector_store import VectorStoreResource
from reference_arch.rag.defs import inference, processing
from reference_arch.rag.defs import index as rag_index
from reference_arch.common.extractive import candidate_sentences, prose_blocks
from reference_arch_tests.finetune.openai_server import FakeOpenAI
from reference_arch_tests.rag.conftest import metadata, processing_assets, run_ingestion, run_processing

QUESTION = "Which option changes the chart colours?"
ANSWER = dg.AssetKey(["rag", "answer"])
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def ask(instance, question=QUESTION, answerer=None, **resources):
    config = question_run_config("rag", question)
    if answerer:
        config["ops"]["rag__answer"] = {"config": {"answerer": answerer}}
    resources = {"llm": LLMResource(), "embeddings": EmbeddingsResource(), "vector_store": VectorStoreResource(),
                 **resources}
    return dg.materialize([inference.question, inference.retrieved_sources, inference.answer], instance=instance,
                          resources=resources, run_config=config, raise_on_error=False)


def cited(answer: str) -> list[tuple[str, int]]:
    """``(sentence, n)`` for each ``sentence [n]`` of an extractive answer."""
    return [(s.strip(), int(n)) for s, n in re.findall(r"(.+?) \[(\d+)\](?= |$)", answer)]


def squash(text: str) -> str:
    return " ".join(text.split())


def failure(result) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description


@pytest.fixture
def indexed(rag_data, instance):
    run_ingestion(instance)
    assert run_processing(instance).success
    return instance


def test_offline_answer_is_extractive_and_cites_its_sources(indexed):
    # No OpenAI-compatible LLM and no local model in the registry: the answer needs neither.
    result = ask(indexed)
    assert result.success
    record = result.asset_value(ANSWER)
    assert record["model"] == "extractive:all-MiniLM-L6-v2" and record["answerer"] == "extractive"
    assert record["usage"]["calls"] == 0
    sources, pairs = record["sources"], cited(record["answer"])
    assert 1 <= len(pairs) <= 3 and " ".join(f"{s} [{n}]" for s, n in pairs) == record["answer"]
    for sentence, n in pairs:  # every citation names a source that holds the cited sentence
        assert 1 <= n <= len(sources) and squash(sentence) in squash(sources[n - 1]["text"])
    assert len({s for s, _ in pairs}) == len(pairs)  # no sentence twice
    assert [n for _, n in pairs] == sorted(n for _, n in pairs)  # in source order
    assert "palette" in record["answer"]  # the docs' sentence on the palette option answers it

    meta = result.asset_materializations_for_node("rag__answer")[0].metadata
    assert meta["answerer"].value == "extractive" and meta["model"].value == record["model"]
    assert meta["invalid_citations"].value == 0
    html = _render(meta["answer"].value)
    assert "<h" not in html and "<pre" not in html and "palette" in html


def test_ask_json_labels_the_extractive_model(indexed, capsys):
    from reference_arch.cli import main

    assert main(["ask", "rag", QUESTION, "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["model"] == "extractive:all-MiniLM-L6-v2"
    assert all(1 <= n <= len(record["sources"]) for _, n in cited(record["answer"]))


def test_the_local_generative_model_stays_selectable(indexed, monkeypatch):
    result = ask(indexed, answerer="generative")  # offline: the packaged model writes it
    assert result.success and result.asset_value(ANSWER)["model"] == "packaged:smollm2-135m-instruct"
    monkeypatch.setenv("REFERENCE_ARCH_RAG_ANSWERER", "generative")
    result = ask(indexed)
    assert result.success and result.asset_value(ANSWER)["answerer"] == "generative"
    monkeypatch.setenv("REFERENCE_ARCH_RAG_ANSWERER", "abstractive")
    refused = ask(indexed)
    assert not refused.success and ("REFERENCE_ARCH_RAG_ANSWERER='abstractive': not a choice; use 'extractive' or "
                                    "'generative'") in failure(refused)


def test_openai_key_alone_keeps_local_embeddings_and_a_chat_only_server_answers(rag_data, instance, monkeypatch):
    """The README's advice for real answers (OPENAI_API_KEY, OPENAI_BASE_URL) against a server with no
    /embeddings route: the index is built and queried with local MiniLM, the LLM inference."""
    reply = "Set the palette option of the [charts] section [1]."
    with FakeOpenAI(base_answer=reply) as server:  # chat completions only: /v1/embeddings answers 404
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.delenv("REFERENCE_ARCH_EMBEDDINGS_PROVIDER", raising=False)
        env = {"llm": llm_resource(), "embeddings": embeddings_resource(), "vector_store": VectorStoreResource()}
        assert env["embeddings"].resolved_provider() == "local" and env["llm"].resolved_provider() == "openai"
        run_ingestion(instance)
        built = dg.materialize(processing_assets(), instance=instance, resources=env)
        assert built.success
        assert metadata(built, "vector_index")["embedding_model"] == MINILM
        rewritten = metadata(built, "retrieval_evaluation")["multi_query_calls"]  # a call per sampled dev question
        result = ask(instance, **env)
        assert result.success, failure(result)
    record = result.asset_value(ANSWER)
    assert record["answer"] == reply and record["answerer"] == "generative" and record["model"] == "gpt-4o-mini"
    assert rewritten >= 1 and server.requests == [("POST", "/v1/chat/completions")] * (rewritten + 1)  # never /v1/embeddings


def test_a_query_with_another_embedding_model_is_refused_and_materializing_rebuilds(indexed):
    collection = rag_index.open_collection(EmbeddingsResource(), VectorStoreResource())
    before = collection.chunk_ids()
    with FakeOpenAI() as server:
        openai = EmbeddingsResource(provider="openai", base_url=server.base_url, api_key="sk-test")
        refused = ask(indexed, embeddings=openai)
    assert not refused.success
    message = failure(refused)
    assert "\n" not in message and MINILM in message and "text-embedding-3-small" in message
    assert "re-materialize rag" in message and "REFERENCE_ARCH_EMBEDDINGS_PROVIDER" in message
    assert server.requests == []  # refused before the question was embedded
    assert rag_index.open_collection(EmbeddingsResource(), VectorStoreResource()).chunk_ids() == before

    # Materializing with another model rebuilds the index for it (a local copy of MiniLM, named by its path).
    other = EmbeddingsResource(model=packaged_minilm_path())
    rebuilt = dg.materialize(processing_assets(), instance=indexed,
                             resources={"embeddings": other, "vector_store": VectorStoreResource(),
                                        "llm": LLMResource()})
    assert rebuilt.success
    index = metadata(rebuilt, "vector_index")
    assert index["embedding_model"] == packaged_minilm_path() and MINILM in index["rebuilt_from"]
    assert index["rows"] == metadata(rebuilt, "chunks")["chunks"] == len(before)
    assert index["chunks_deleted"] == 0  # nothing of the old model's left to mix with
    assert ask(indexed, embeddings=other).success
    assert packaged_minilm_path() in failure(ask(indexed))  # now the default model is the other one


def test_prose_is_told_from_code_headings_and_parameter_lists():
    text = ("pandas.Series.rename_axis > Parameters\n\n# Renaming\n\nSet the name of the axis for the\n"
            "index. It accepts a scalar.\n\nParameters\n----------\nmapper : scalar, optional\n"
            "    Value to set the axis name attribute.\n\nReturns\n-------\nSeries or None\n"
            "    The same type as the caller.\n\n```python\ns.rename_axis('x')  # rename it\n```\n\n"
            ">>> s.rename_axis('animal')\nanimal\ndog    4\n\n.. versionadded:: 2.0\n\n"
            "rename_axis(mapper=None, *, index=None, axis=0)")
    blocks = prose_blocks(text, "pandas.Series.rename_axis")
    assert blocks == ["Set the name of the axis for the index. It accepts a scalar.",
                      "Value to set the axis name attribute.", "The same type as the caller.",
                      "rename_axis(mapper=None, *, index=None, axis=0)"]
    sentences = [s.text for s in candidate_sentences([{"title": "pandas.Series.rename_axis", "text": text}])]
    assert sentences == ["Set the name of the axis for the index.", "It accepts a scalar.",
                         "Value to set the axis name attribute.", "The same type as the caller."]  # no signature


@pytest.mark.parametrize("text", ["# Series\nimport pandas", "    return a + b", "* item\n- other\n1. one",
                                  "Title\n=====", "<b>bold</b> & [1](x) `c` _e_ > q"])
def test_answers_render_as_text_never_as_markup(text):
    html = _render(markdown_text(text))
    assert html.startswith("<p>") and html.count("<p>") == 1
    assert not re.search(r"<(h\d|pre|code|ul|ol|li|em|strong|blockquote|a|b|hr)\b", html)
    assert squash(re.sub(r"<br />", " ", html[3:-5])).replace("&lt;", "<").replace("&gt;", ">").replace(
        "&amp;", "&").replace("\xa0", " ") == squash(text)


def _render(markdown: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").render(markdown)


def test_code_shown_as_code_stays_inside_its_fence():
    html = _render(markdown_code("x = 1\n```\n# not a heading\n````", "python"))
    assert html.count("<pre>") == 1 and "<h1>" not in html and "# not a heading" in html


def test_run_config_routes_the_generative_answer_and_records_its_cost(indexed):
    from reference_arch_tests.fake_openai import FakeOpenAI as ChatServer

    config = question_run_config("rag", QUESTION)
    config["ops"]["rag__question"]["config"].update(model="gpt-4o", policy="fixed")
    with ChatServer(answer="Set the palette option [1].") as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False,
                          models=["gpt-4.1-nano", "gpt-4o"], policy="cheapest")
        result = dg.materialize([inference.question, inference.retrieved_sources, inference.answer],
                                instance=indexed, run_config=config,
                                resources={"llm": llm, "embeddings": EmbeddingsResource(),
                                           "vector_store": VectorStoreResource()})
    assert [r["body"]["model"] for r in server.requests] == ["gpt-4o"]
    assert result.asset_value(ANSWER)["model"] == "gpt-4o"
    assert metadata(result, "answer")["llm/cost_usd"] == pytest.approx((11 * 2.5 + 7 * 10.0) / 1e6)
