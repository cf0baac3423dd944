"""Every network client: a server that quotes the key back never puts it on screen or in the run
storage, and a server that accepts connections and never answers ends a call in seconds, saying
it timed out. Local servers stand in for OpenAI, GitHub/Slack and Weaviate."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.common.vector_store.embeddings import EmbeddingsError, EmbeddingsResource
from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.finetune.openai_client import OpenAIClientResource
from reference_arch_tests.fake_openai import FakeOpenAI

SECRET = "sk-proj-quoted-back-by-the-server-0123456789"
ECHO_401 = (401, {"error": {"message": f"Incorrect API key provided: {SECRET}. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",
                            "code": "invalid_api_key"}})


@contextlib.contextmanager
def hanging_server():
    """A TCP server that accepts connections (the kernel's backlog does) and never inference."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def one_chunk_index(embeddings: EmbeddingsResource) -> None:
    """A one-chunk index recorded with ``embeddings``' model (3 dimensions), so a question is
    refused by nothing before it reaches that model's client."""
    from reference_arch.common.vector_store import VectorStoreResource
    from reference_arch.rag.defs.processing import COLLECTION

    index = VectorStoreResource().collection(COLLECTION, embeddings.model_label(), 3, rebuild=True)
    index.replace_documents(["docs:a"], [{"id": "docs:a#0", "document_id": "docs:a", "source_type": "docs",
                                          "text": "rename_axis sets the index name", "vector": [1.0, 0.0, 0.0]}])
    index.close()


# -- 13: a key quoted back -----------------------------------------------------------------------
@pytest.fixture
def fresh_rag_definitions():
    """The rag location imported anew (as the CLI does with the key exported, its resources then hold
    EnvVar("OPENAI_API_KEY")), and the earlier import put back for the tests that follow."""
    name = "reference_arch.rag.definitions"
    saved = sys.modules.pop(name, None)
    yield
    sys.modules.pop(name, None)
    if saved is not None:
        sys.modules[name] = saved


def test_ask_rag_with_a_server_quoting_the_key_leaks_it_nowhere(tmp_home, monkeypatch, capsys,
                                                                fresh_rag_definitions):
    from reference_arch import cli

    # An index built with the OpenAI model, so the question is embedded by the openai client.
    monkeypatch.setenv("REFERENCE_ARCH_EMBEDDINGS_PROVIDER", "openai")
    one_chunk_index(EmbeddingsResource(provider="openai"))
    with FakeOpenAI(script=[ECHO_401] * 10) as server:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert cli.main(["ask", "rag", "How do I rename the index of a Series?"]) == 1
    assert server.requests and server.requests[0]["path"] == "/v1/embeddings"  # the embeddings path
    err = capsys.readouterr().err
    assert "refused the API key (HTTP 401)" in err and len(err.strip().splitlines()) == 1
    assert SECRET not in err
    assert files_holding(Path(os.environ["DAGSTER_HOME"]), SECRET) == []


def test_embeddings_401_is_one_line_without_the_key_or_its_cause(tmp_home):
    with FakeOpenAI(script=[ECHO_401]) as server:
        emb = EmbeddingsResource(provider="openai", base_url=server.base_url, api_key=SECRET)
        with pytest.raises(EmbeddingsError) as err:
            emb.embed_query("hi")
    assert "refused the API key (HTTP 401)" in str(err.value) and SECRET not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_other_openai_errors_are_scrubbed(tmp_home):
    """A 400 whose message quotes the key: the server's words are kept, the key is not."""
    quoting = (400, {"error": {"message": f"bad request from key {SECRET}", "type": "invalid_request_error"}})
    with FakeOpenAI(script=[quoting, quoting]) as server:
        emb = EmbeddingsResource(provider="openai", base_url=server.base_url, api_key=SECRET)
        with pytest.raises(EmbeddingsError, match=r"HTTP 400: bad request from key \[redacted\]") as err:
            emb.embed_query("hi")
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key=SECRET, cache=False)
        with pytest.raises(LLMError, match=r"HTTP 400: bad request from key \[redacted\]") as chat_err:
            llm.generate("hi")
    assert SECRET not in str(err.value) and SECRET not in str(chat_err.value)


def test_fine_tuning_client_401_is_one_line_without_the_key(tmp_home, instance):
    from reference_arch.finetune.openai_client import OpenAIClientResource

    @dg.asset
    def uploads(context, openai: OpenAIClientResource) -> None:
        with openai.get_client(context) as client:
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-1")

    with FakeOpenAI(script=[ECHO_401]) as server:
        result = dg.materialize([uploads], instance=instance, raise_on_error=False,
                                resources={"openai": OpenAIClientResource(api_key=SECRET, base_url=server.base_url)})
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "refused the API key (HTTP 401)" in failure.message
    assert SECRET not in failure.to_string()


def test_github_and_slack_errors_never_hold_the_token(monkeypatch):
    from reference_arch.sources.http_client import ApiError, rest_client
    from reference_arch_tests.sources.conftest import FakeApi

    token = "ghp_" + "x" * 36
    api = FakeApi(lambda path, query, headers: (401, {}, {"message": f"Bad credentials: {headers['Authorization']}"}))
    try:
        client = rest_client(api.url, "GitHub", token=token, max_attempts=1)
        with pytest.raises(ApiError) as err:
            client.get("/repos/a/b/issues")
    finally:
        api.close()
    assert "GitHub API error 401" in str(err.value) and "[redacted]" in str(err.value)
    assert token not in str(err.value)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-" + "y" * 30)  # from the environment's registry alone
    assert "xoxb-" + "y" * 30 not in str(ApiError(f"Slack said {'xoxb-' + 'y' * 30}"))


def test_the_secret_registry_covers_every_configured_secret(monkeypatch):
    from reference_arch.common.secrets import scrub, secret_env_names

    for name in ("OPENAI_API_KEY", "GITHUB_TOKEN", "SLACK_BOT_TOKEN", "WEAVIATE_API_KEY", "MY_SERVICE_PASSWORD"):
        monkeypatch.setenv(name, f"value-of-{name.lower()}")
        assert name in secret_env_names()
        assert scrub(f"x value-of-{name.lower()} y") == "x [redacted] y"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long-enough")
    assert "TOKENIZERS_PARALLELISM" not in secret_env_names()


# -- 14: a server that never answers -------------------------------------------------------------
def test_query_embedding_on_a_hanging_server_times_out_and_says_so(tmp_home):
    with hanging_server() as url:
        emb = EmbeddingsResource(provider="openai", base_url=f"{url}/v1", api_key="k", timeout=0.5, max_retries=1)
        started = time.monotonic()
        with pytest.raises(EmbeddingsError, match=r"timed out: no answer within 0.5 s, 2 attempts"):
            emb.embed_query("hi")
    assert time.monotonic() - started < 5


def test_chat_on_a_hanging_server_says_timed_out_not_cannot_reach(tmp_home):
    with hanging_server() as url:
        llm = LLMResource(provider="openai", base_url=f"{url}/v1", api_key="k", timeout=0.5, max_retries=1,
                          cache=False)
        started = time.monotonic()
        with pytest.raises(LLMError, match=r"timed out: no answer within 0.5 s, 2 attempts"):
            llm.generate("hi")
    assert time.monotonic() - started < 5


def test_ask_rag_on_a_hanging_server_fails_in_seconds(tmp_home):
    from reference_arch.common.questions import question_run_config
    from reference_arch.common.vector_store import VectorStoreResource
    from reference_arch.rag.defs import inference

    with hanging_server() as url, dg.DagsterInstance.ephemeral() as instance:
        embeddings = EmbeddingsResource(provider="openai", base_url=f"{url}/v1", api_key="k", timeout=0.5,
                                        max_retries=1)
        one_chunk_index(embeddings)
        started = time.monotonic()
        result = dg.materialize(
            [inference.question, inference.retrieved_sources], instance=instance, raise_on_error=False,
            run_config=question_run_config("rag", "How do I rename the index of a Series?"),
            resources={"embeddings": embeddings, "vector_store": VectorStoreResource(),
                       "llm": LLMResource(provider="local")})  # multi-query's (not used by this mode)
        seconds = time.monotonic() - started
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "timed out" in failure.message and seconds < 15


def test_github_slack_session_on_a_hanging_server_says_timed_out():
    from reference_arch.sources.http_client import ApiError, RetryingSession

    with hanging_server() as url:
        session = RetryingSession("Slack", max_attempts=2, backoff=0, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ApiError, match=r"Slack timed out \(GET /api/conversations.list\): no answer within "
                                           r"0.5 s after 2 attempts"):
            session.get(f"{url}/api/conversations.list")
    assert time.monotonic() - started < 5


def test_weaviate_on_a_hanging_server_says_timed_out(tmp_home):
    from reference_arch.common.vector_store import VectorStoreError, VectorStoreResource

    with hanging_server() as url, hanging_server() as grpc_url:
        store = VectorStoreResource(backend="weaviate", url=url, grpc_port=int(grpc_url.rsplit(":", 1)[1]),
                                    timeout_s=0.5)
        collection = store.collection("chunks", "m", 3)
        started = time.monotonic()
        with pytest.raises(VectorStoreError, match="timed out"):
            collection.count()
    assert time.monotonic() - started < 10


def test_corpus_clone_errors_never_hold_the_token_in_its_url(tmp_path):
    from reference_arch.pretrain.corpus import CorpusError, git_checkout

    token = "ghp_" + "z" * 36
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the block ends
    with pytest.raises(CorpusError, match="git clone of .* failed") as err:
        git_checkout(f"http://x-access-token:{token}@127.0.0.1:{port}/repo.git", tmp_path / "corpus")
    assert token not in str(err.value)
