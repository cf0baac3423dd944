"""The LLM resource: the local provider on a tiny real model, the openai provider against a local
server speaking OpenAI's API (through the real openai client and its retries)."""

import pytest

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch_tests.fake_openai import FakeOpenAI

SECRET = "sk-test-secret-key-that-must-never-be-printed"


def test_local_provider_uses_newest_registry_model_and_counts_usage(registry_with_tiny_model):
    llm = LLMResource()
    assert llm.resolved_provider() == "local"
    assert llm.resolved_model() == "registry:tiny-lm@1"
    text = llm.generate([("user", "What is a series?")])
    assert isinstance(text, str)
    llm.chat_model()  # asking for the model again must not count anything
    usage = llm.usage()
    assert usage["calls"] == 1 and usage["cache_hits"] == 0
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_response_cache_at_temperature_zero(registry_with_tiny_model):
    first = LLMResource()
    answer = first.generate([("user", "cache me")])
    second = LLMResource()
    assert second.generate([("user", "cache me")]) == answer
    assert second.usage()["cache_hits"] == 1 and second.usage()["calls"] == 0
    sampled = LLMResource(temperature=0.7)
    assert not sampled.use_cache()


def test_no_local_model_is_a_clear_error(tmp_home):
    with pytest.raises(LLMError, match="materialize the pretrain location|Materialize the pretrain location"):
        LLMResource().generate("hello")


def test_unknown_provider_is_refused(tmp_home):
    with pytest.raises(LLMError, match="unknown LLM provider 'gemini'"):
        LLMResource(provider="gemini").resolved_provider()


def test_openai_provider_success_and_usage_once(tmp_home):
    with FakeOpenAI(answer="Hello from the server.") as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key=SECRET, model="gpt-4o-mini")
        assert llm.generate([("user", "hi")]) == "Hello from the server."
        llm.chat_model()
        llm.chat_model()
        assert llm.generate([("user", "again")]) == "Hello from the server."
    usage = llm.usage()
    assert usage == {**usage, "provider": "openai", "model": "gpt-4o-mini", "calls": 2,
                     "prompt_tokens": 22, "completion_tokens": 14}
    assert server.requests[0]["authorization"] == f"Bearer {SECRET}"
    assert server.requests[0]["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_openai_provider_retries_429_then_succeeds(tmp_home):
    with FakeOpenAI(script=[(429, None), (503, None)]) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key=SECRET, cache=False)
        assert llm.generate("hi").startswith("A Series")
    assert len(server.requests) == 3
    assert llm.usage()["calls"] == 1


def test_openai_401_is_clear_and_never_contains_the_key(tmp_home):
    body = {"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "invalid_request_error"}}
    with FakeOpenAI(script=[(401, body)]) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key=SECRET)
        with pytest.raises(LLMError) as err:
            llm.generate("hi")
    message = str(err.value)
    assert "refused the API key (HTTP 401)" in message and "OPENAI_API_KEY" in message
    assert SECRET not in message and SECRET not in repr(err.value.__cause__) and err.value.__cause__ is None
    assert len(server.requests) == 1  # a 401 is not retried


def test_unreachable_base_url_is_clear(tmp_home):
    llm = LLMResource(provider="openai", base_url="http://127.0.0.1:9/v1", api_key=SECRET, max_retries=1, timeout=2)
    with pytest.raises(LLMError, match=r"cannot reach the OpenAI-compatible server at http://127.0.0.1:9/v1"):
        llm.generate("hi")


def test_key_from_environment_switches_to_openai(tmp_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    from reference_arch.common.resources import llm_resource

    resource = llm_resource()
    assert resource.resolved_provider() == "openai"
    assert SECRET not in repr(resource)  # the key reaches Dagster as an EnvVar, not a value
    assert "OPENAI_API_KEY" in repr(resource)
