"""LoRA through the real trainer on a tiny random base model, the blocking check, and the question job."""

import json
import re
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.common.feedback import append_feedback, feedback_record
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.llm.local import DEFAULT_CHAT_TEMPLATE
from reference_arch.common.registry import ModelRegistry
from reference_arch.common.trainer.resource import TrainerResource
from reference_arch.finetune.defs import evaluation, training
from reference_arch.finetune.config import FineTuningResource
from reference_arch.finetune.openai_client import OpenAIClientResource
from reference_arch_tests.finetune.conftest import TINY_BASE
from reference_arch_tests.finetune.test_data import DATA_ASSETS, RANGE, metadata

ASSETS = [*DATA_ASSETS, training.fine_tuned_model, evaluation.better_than_base, evaluation.published_model]


def resources(**settings):
    settings = {"base_model": TINY_BASE, "max_seq_len": 2048, "format_examples": 2, **settings}
    return {"fine_tuning": FineTuningResource(backend="local", **settings), "trainer": TrainerResource(device="cpu"),
            "openai": OpenAIClientResource()}


def check_of(result, name="better_than_base"):
    [check] = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == name]
    return check.passed, {k: v.value for k, v in check.metadata.items()}


def test_lora_is_trained_evaluated_published_and_answers(github_export, registry_with_base, instance, capsys):
    result = dg.materialize(ASSETS, resources=resources(), instance=instance, tags=RANGE)
    assert result.success

    tuned = metadata(result, "fine_tuned_model")
    assert tuned["backend"] == "local" and tuned["base_model"] == "registry:code-lm@1"
    assert 0 < tuned["trainable_fraction"] < 0.5 and tuned["train/trainable_params"] < tuned["train/total_params"]
    assert tuned["train/global_step"] >= 1 and tuned["train/loss_curve"].records
    assert tuned["train/loss_plot"].startswith("![training loss](data:image/png;base64,iVBORw0KGgo")  # a PNG
    record = json.loads((registry_with_base.root.parent / "finetune" / "fine_tuned.json").read_text())
    assert json.loads((Path(record["adapter_path"]) / "adapter_config.json").read_text())["r"] == 16

    passed, scores = check_of(result)
    assert passed and scores["finetuned_loss"] < scores["base_loss"]
    assert scores["finetuned_perplexity"] < scores["base_perplexity"]

    published = ModelRegistry().get("code-lm-github")
    assert published.version == 1 and published.card["base_model"] == "registry:code-lm@1"
    assert published.card["metrics"]["finetuned_loss"] == pytest.approx(scores["finetuned_loss"], abs=1e-5)
    tokenizer_config = json.loads((published.path / "tokenizer_config.json").read_text())
    chat_template = tokenizer_config.get("chat_template") or (published.path / "chat_template.jinja").read_text()
    assert chat_template == DEFAULT_CHAT_TEMPLATE  # the format it was trained in, for inference

    # A re-run with the same data and settings resumes from the last checkpoint: nothing to train again.
    again = dg.materialize(ASSETS, selection=[training.fine_tuned_model], resources=resources(), instance=instance)
    assert metadata(again, "fine_tuned_model")["train/steps_this_run"] == 0

    # `reference-arch ask finetuned` answers with the published model ...
    from reference_arch.cli.answers import ask

    answered = ask("finetuned", "How to set cache?", instance)
    assert answered["model"] == "registry:code-lm-github@1" and isinstance(answered["answer"], str)

    # ... and so does any location pointed at it by configuration (the seed's RAG + fine-tuned model).
    llm = LLMResource(provider="local", model="registry:code-lm-github@latest", max_tokens=8)
    assert isinstance(llm.generate([("system", "Use the sources."), ("human", "How to set cache?")]), str)
    assert llm.usage()["model"] == "registry:code-lm-github@1"

    # The demo's preference round tunes this published SFT model with DPO (the location's own resources:
    # PreferenceTuningResource's default base is the SFT model) and says what its gate decided.
    from reference_arch.cli.demo import print_preference_round

    append_feedback(feedback_record(answered["run_id"], "up", target="finetuned", question="How to set cache?",
                                    answer="Set cache in widgets.toml."))
    print_preference_round(instance)
    out = capsys.readouterr().out
    assert re.search(r"pairs: 1 from feedback, \d+ from generated", out), out
    assert re.search(r"held-out pairs \d+: the tuned model's margin for the chosen answer rose over its base's on "
                     r"\d+% \(DPO's implicit reward; mean -?[\d.]+ -> -?[\d.]+ nats/token\); it rates the chosen "
                     r"answer likelier on \d+%, its base on \d+% \(a generated pair's rejected answer is the base's "
                     r"own\); (published registry:code-lm-preference@1|not published)", out), out
    if "published registry" in out:
        assert ModelRegistry().get("code-lm-preference").card["base_model"] == "registry:code-lm-github@1"
    # the third side of the comparison: the tuned model's answers to the held-out grounded prompts
    assert re.search(r"preference-tuned, on \d+ held-out examples: format \d+%, citation validity \d+%, "
                     r"groundedness [\d.]+", out), out


def test_a_worse_model_is_not_published(github_export, registry_with_base, instance):
    # A learning rate this high wrecks the adapter: the fine-tuned model loses to its base.
    result = dg.materialize(ASSETS, resources=resources(learning_rate=1e4, epochs=1), instance=instance, tags=RANGE,
                            raise_on_error=False)
    assert not result.success
    passed, scores = check_of(result)
    assert not passed
    assert dg.AssetKey(["finetune", "published_model"]) not in {
        e.asset_key for e in result.get_asset_materialization_events()}
    assert [m.name for m in ModelRegistry().list()] == ["code-lm"]



def test_lora_on_the_packaged_model_learns_the_grounded_format(github_export, tmp_home, instance):
    """The real base, the default: LoRA on SmolLM2-135M-Instruct over the tiny export's grounded examples. The
    check measures both models' generated answers to validation examples: the fine-tuned one has the lower
    loss and keeps the grounded format (two cited sentences) at least as often as its base."""
    fine_tuning = FineTuningResource(backend="local", epochs=2, format_examples=2)
    result = dg.materialize(ASSETS, instance=instance, tags=RANGE, resources={
        "fine_tuning": fine_tuning, "trainer": TrainerResource(device="cpu"), "openai": OpenAIClientResource()})
    assert result.success
    assert metadata(result, "fine_tuned_model")["base_model"] == "packaged:smollm2-135m-instruct"
    passed, scores = check_of(result)
    assert passed and scores["finetuned_loss"] < scores["base_loss"]
    assert scores["base_format_examples"] == scores["finetuned_format_examples"] == 2
    assert scores["finetuned_format_compliance"] >= scores["base_format_compliance"]
    assert re.search(r"\[[123]\]", scores["finetuned_example_answer"])  # it cites a source
    published = ModelRegistry().get("code-lm-github")
    assert published.card["packaged_base"] == "smollm2-135m-instruct"  # its decoding and RAG defaults carry over
