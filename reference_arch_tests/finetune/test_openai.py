"""The OpenAI backend through Dagster, against a local server speaking OpenAI's API."""

import json

import dagster as dg
import pytest

from reference_arch.finetune.defs import evaluation, processing, training
from reference_arch.finetune import config
from reference_arch.finetune.config import FineTuningResource
from reference_arch.finetune.openai_client import OpenAIClientResource
from reference_arch.finetune.split import TRAIN
from reference_arch_tests.finetune.openai_server import FakeOpenAI
from reference_arch_tests.finetune.test_data import DATA_ASSETS, RANGE, metadata

ASSETS = [*DATA_ASSETS, training.fine_tuned_model, evaluation.better_than_base, evaluation.published_model]


def run(server, instance, selection=None):
    resources = {
        "fine_tuning": FineTuningResource(backend="openai", poll_interval_s=0.01, poll_max_interval_s=0.05),
        "openai": OpenAIClientResource(api_key="sk-test", base_url=server.base_url),
        "trainer": dg.ResourceDefinition.none_resource(),
    }
    return dg.materialize(ASSETS, selection=selection, resources=resources, instance=instance, tags=RANGE,
                          raise_on_error=False)


def failure_message(result) -> str:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    return failure.step_failure_data.error.message


def test_job_succeeds_through_a_rate_limit_and_is_published(github_export, tmp_home, instance):
    with FakeOpenAI(rate_limit_polls={2, 3, 4, 5}) as server:  # more 429s than the client's own retries
        result = run(server, instance)
        assert result.success, failure_message(result)
        uploaded = [f for f in server.files.values()]
    assert [f["purpose"] for f in uploaded] == ["fine-tune", "fine-tune"]
    assert uploaded[0]["content"] == config.prompts_path(TRAIN).read_bytes()

    tuned = metadata(result, "fine_tuned_model")
    assert tuned["openai/status"] == "succeeded" and tuned["openai/job_id"].startswith("ftjob-")
    assert tuned["openai/trained_tokens"] == 12345
    assert tuned["openai/fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:test")

    [check] = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "better_than_base"]
    assert check.passed
    scores = {k: v.value for k, v in check.metadata.items()}
    assert scores["finetuned_token_f1"] == 1.0 > scores["base_token_f1"]

    published = json.loads((tmp_home / "finetune" / "openai_model.json").read_text())
    assert published["name"] == tuned["openai/fine_tuned_model"]


def test_failed_job_fails_the_asset_with_openais_message(github_export, tmp_home, instance):
    with FakeOpenAI(statuses=["validating_files", "failed"], error_message="Invalid file format: line 3") as server:
        result = run(server, instance)
    assert not result.success
    assert "failed: Invalid file format: line 3" in failure_message(result)
    assert not (tmp_home / "finetune" / "openai_model.json").exists()


def test_a_model_that_is_not_better_is_not_published(github_export, tmp_home, instance):
    with FakeOpenAI(finetuned_learns=False) as server:
        result = run(server, instance)
    assert not result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "better_than_base"]
    assert not check.passed
    assert dg.AssetKey(["finetune", "published_model"]) not in {
        e.asset_key for e in result.get_asset_materialization_events()}
    assert not (tmp_home / "finetune" / "openai_model.json").exists()


def test_broken_files_are_never_uploaded(github_export, tmp_home, instance):
    with FakeOpenAI() as server:
        assert run(server, instance, selection=DATA_ASSETS[:4]).success
        path = config.prompts_path(TRAIN)
        lines = path.read_text().splitlines()
        path.write_text("\n".join([json.dumps({"messages": [{"role": "user", "content": "no answer"}]}), *lines]))
        result = run(server, instance, selection=[training.fine_tuned_model])
        assert not result.success
        assert "no_assistant_message" in failure_message(result)
        assert not server.requests


def test_cancelled_job_fails_and_a_rerun_resumes_instead_of_paying_twice(tmp_path):
    import openai

    from reference_arch.finetune.chat_format import chat_example
    from reference_arch.finetune.jsonl import write_jsonl
    from reference_arch.finetune.openai_backend import FineTuningJobFailed, JobSettings, fine_tune

    train = write_jsonl(tmp_path / "train.jsonl", [chat_example(f"q{i}", f"a{i}") for i in range(10)])
    validation = write_jsonl(tmp_path / "validation.jsonl", [chat_example("q", "a")])
    settings = JobSettings(model="gpt-4o-mini-2024-07-18", poll_interval_s=0.01)
    with FakeOpenAI(statuses=["queued", "cancelled"]) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.base_url)
        with pytest.raises(FineTuningJobFailed, match="cancelled"):
            fine_tune(client, train, validation, settings, tmp_path / "state.json", print)
    with FakeOpenAI() as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.base_url)
        state = tmp_path / "state2.json"
        first = fine_tune(client, train, validation, settings, state, print)
        uploads = len(server.files)
        again = fine_tune(client, train, validation, settings, state, print)  # e.g. after a crash while polling
        assert again.id == first.id and len(server.files) == uploads == 2 and len(server.jobs) == 1
