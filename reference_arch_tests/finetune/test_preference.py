"""Preference tuning: pairs from feedback and from the Q&A, DPO through the real trainer on a tiny random
model, the blocking held-out preference check, publication."""

import dagster as dg
import pytest

from reference_arch.common.feedback import append_feedback, feedback_record
from reference_arch.common.registry import ModelRegistry
from reference_arch.common.trainer.resource import TrainerResource
from reference_arch.finetune.config import FineTuningResource, PreferenceTuningResource
from reference_arch.finetune.defs import ingestion, preference, processing
from reference_arch.finetune.preference import FEEDBACK, feedback_pairs, fill_rejected, ranked
from reference_arch.finetune.qa import question_fingerprint
from reference_arch_tests.finetune.test_data import RANGE, metadata

ASSETS = [ingestion.github_issues, ingestion.qa_pairs, processing.train_validation_split, preference.preference_pairs,
          preference.no_secrets_in_pairs, preference.preference_tuned_model, preference.prefers_chosen, preference.preference_published_model]


def resources(**settings):
    # The pretrained tiny model is tuned here (the default, the SFT model, would need the SFT graph run first).
    return {"fine_tuning": FineTuningResource(backend="local"), "trainer": TrainerResource(device="cpu"),
            "preference_tuning": PreferenceTuningResource(base_model="registry:code-lm@latest", **settings)}


def test_the_gate_is_the_implicit_reward_on_held_out_pairs():
    from reference_arch.finetune.preference import beats_base

    # a demo's figures: the rejected answers are the base's own, so both rank 0% right, yet DPO moved every pair
    scores = {"pairs": 9, "base_accuracy": 0.0, "tuned_accuracy": 0.0, "base_margin": -3.234, "tuned_margin": -1.462,
              "reward_accuracy": 1.0}
    assert beats_base(scores)
    assert not beats_base({**scores, "reward_accuracy": 0.5})  # a coin: half the pairs moved the wrong way
    assert not beats_base({**scores, "tuned_margin": -3.23})  # within the tolerance: noise, not better
    assert not beats_base({**scores, "base_accuracy": 1.0, "tuned_accuracy": 0.9})  # fewer pairs ranked right
    assert beats_base({**scores, "base_accuracy": 1.0, "tuned_accuracy": 1.0})  # at the ceiling the margin decides
    assert not beats_base({**scores, "pairs": 0})


def test_answers_that_lose_the_format_fail_the_gate():
    """A demo's DPO model: implicit reward up on every held-out pair, format 83% -> 0% of 6 answers (published)."""
    from reference_arch.finetune.preference import answers_worse

    base = {"format_examples": 6, "format_compliance": 5 / 6, "groundedness": 0.33}
    assert answers_worse({**base, "format_compliance": 0.0, "groundedness": 0.28}, base) == "format 0.83 -> 0.00"
    assert answers_worse({**base, "format_compliance": 4 / 6}, base) == ""  # one answer of six: noise
    assert answers_worse({**base, "groundedness": 0.1}, base) == "groundedness 0.33 -> 0.10"
    assert answers_worse({}, base) == answers_worse(base, {}) == ""  # nothing measured: the pairs decide


def test_preference_tuning_follows_sft_unless_fine_tuning_is_remote():
    tuning = PreferenceTuningResource()
    assert tuning.resolved_base_model(FineTuningResource(backend="local")) == "registry:code-lm-github@latest"
    assert tuning.resolved_base_model(FineTuningResource(backend="openai")) == "packaged:smollm2-135m-instruct"
    assert PreferenceTuningResource(base_model="/models/x").resolved_base_model(FineTuningResource()) == "/models/x"


def check_of(result):
    [check] = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "prefers_chosen"]
    return check.passed, {k: v.value for k, v in check.metadata.items()}


def verdict(run_id: str, answer: str, verdict: str, question: str = "How to set cache?") -> dict:
    return feedback_record(run_id, verdict, target="finetuned", question=question, answer=answer)


def test_feedback_makes_pairs_of_each_kind():
    references = {question_fingerprint("Q3"): "the maintainer's answer"}
    records = [verdict("1", "good", "up", "Q1"), verdict("2", "bad", "down", "q1 "),  # up and down: a pair
               verdict("3", "fine", "up", "Q2"),  # approved alone: rejected generated
               verdict("4", "wrong", "down", "Q3"),  # rejected alone: the maintainer's answer chosen
               verdict("5", "wrong", "down", "Q4")]  # rejected alone, no reference: no pair
    pairs = feedback_pairs(records, references)
    assert [(p["how"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("up/down", "good", "bad"), ("up/model", "fine", None), ("reference/down", "the maintainer's answer", "wrong")]
    assert {p["origin"] for p in pairs} == {FEEDBACK}
    rag = feedback_record("6", "up", target="rag", question="Q5", answer="Use rename [1]. It sets labels [2].")
    assert feedback_pairs([rag], {})[0]["chosen"] == "Use rename. It sets labels."  # no citation marks
    filled = fill_rejected(pairs, lambda questions: ["" for _ in questions], ["other answer"])
    assert filled[1]["rejected"] == "other answer" and filled[1]["how"] == "up/other"
    kept, dropped = ranked(filled)
    assert len(kept) == 3 and not dropped and kept[2]["chosen_score"] > kept[2]["rejected_score"]


TUNING = [preference.preference_tuned_model, preference.prefers_chosen, preference.preference_published_model]


def test_the_gate_blocks_a_model_no_better_than_its_base_and_publishes_a_better_one(
        github_export, registry_with_base, instance):
    append_feedback(verdict("run-a", "Set cache in widgets.toml, happy to help!", "up"))
    append_feedback(verdict("run-b", "No idea.", "down"))
    # One step at a vanishing learning rate leaves the model its base: it prefers no more often, and the
    # blocking check stops publication.
    blocked = dg.materialize(ASSETS, resources=resources(steps=1, learning_rate=1e-9), instance=instance,
                             tags=RANGE, raise_on_error=False)
    assert not blocked.success
    passed, scores = check_of(blocked)
    assert not passed and scores["tuned_accuracy"] == scores["base_accuracy"]
    assert preference.PUBLISHED_KEY not in {e.asset_key for e in blocked.get_asset_materialization_events()}
    assert [m.name for m in ModelRegistry().list()] == ["code-lm"]
    assert preference.preference_result()["published"] is None

    pairs = metadata(blocked, "preference_pairs")
    assert pairs["origin/feedback"] == 1 and pairs["origin/generated"] >= 10
    assert pairs["train"] >= 4 and pairs["heldout"] >= 1 and pairs["preview"].records

    # Ten real steps of DPO on the same pairs: the tuned model prefers the chosen answers more often.
    result = dg.materialize(ASSETS, selection=TUNING, resources=resources(steps=10, learning_rate=5e-3),
                            instance=instance)  # the tiny random model learns at a higher rate than SmolLM2
    assert result.success
    tuned = metadata(result, "preference_tuned_model")
    assert tuned["train/global_step"] == 10 and 0 < tuned["train/trainable_params"] < tuned["train/total_params"]
    passed, scores = check_of(result)
    assert passed and scores["tuned_accuracy"] > scores["base_accuracy"]
    published = ModelRegistry().get("code-lm-preference")
    assert published.version == 1 and published.card["base_model"] == "registry:code-lm@1"
    assert preference.preference_result() == {
        "heldout_pairs": scores["pairs"], "base_accuracy": scores["base_accuracy"],
        "tuned_accuracy": scores["tuned_accuracy"], "base_margin": pytest.approx(scores["base_margin"], abs=1e-5),
        "tuned_margin": pytest.approx(scores["tuned_margin"], abs=1e-5),
        "reward_accuracy": pytest.approx(scores["reward_accuracy"], abs=1e-5), "passed": True,
        "published": "registry:code-lm-preference@1", "run_id": result.run_id}


def test_dpo_settings_are_checked_before_training(tmp_path):
    from reference_arch.common.trainer.spec import TrainSpecError, parse_spec

    with pytest.raises(TrainSpecError, match="dpo tunes a saved model"):
        parse_spec({"init": {}, "train_data": "x", "output_dir": str(tmp_path), "objective": "dpo"})
    with pytest.raises(TrainSpecError, match="dpo_beta must be positive"):
        parse_spec({"model_dir": "m", "train_data": "x", "output_dir": str(tmp_path), "objective": "dpo",
                    "dpo_beta": 0})
    with pytest.raises(TrainSpecError, match="objective"):
        parse_spec({"model_dir": "m", "train_data": "x", "output_dir": str(tmp_path), "objective": "ppo"})


def test_dpo_on_the_packaged_model_widens_the_margin_for_the_chosen_answers(github_export, tmp_home, instance):
    """The real model: DPO on SmolLM2-135M-Instruct over a few pairs (the maintainers' answers chosen over its
    own); its held-out margin for the chosen answer widens. Small data: 8 pairs of short answers, 4 steps."""
    settings = {"fine_tuning": FineTuningResource(backend="local", format_examples=1),
                "trainer": TrainerResource(device="cpu"),
                "preference_tuning": PreferenceTuningResource(base_model="packaged:smollm2-135m-instruct", max_pairs=8,
                                                              max_new_tokens=16, max_seq_len=160, steps=4,
                                                              batch_size=2)}
    # with the grounded prompts the fine-tuned model is measured on, so the tuned model's answers are measured too
    result = dg.materialize([*ASSETS, processing.prompts], resources=settings, instance=instance, tags=RANGE,
                            raise_on_error=False)
    tuned = metadata(result, "preference_tuned_model")
    assert tuned["base_model"] == "packaged:smollm2-135m-instruct" and tuned["train/global_step"] == 4
    _, scores = check_of(result)
    assert scores["tuned_margin"] > scores["base_margin"]
    # its answer to a held-out grounded prompt, measured as the base's and the fine-tuned model's are
    assert scores["answers_format_examples"] == 1 and scores["answers_example_answer"].strip()
    assert 0 <= scores["answers_groundedness"] <= 1 and 0 <= scores["answers_format_compliance"] <= 1
    outcome = preference.preference_result()
    assert outcome["answers_example_answer"] == scores["answers_example_answer"]


def test_dpo_reuses_the_answers_sft_measured_of_its_base(tmp_home, tmp_path, monkeypatch):
    """DPO's base is the published SFT model, whose held-out answers better_than_base generated already (the
    same examples, the same decoding): prefers_chosen reads them instead of generating them again."""
    import json

    from reference_arch.common.atomic import write_json
    from reference_arch.finetune.defs import evaluation

    monkeypatch.setattr(evaluation, "_validation_examples", lambda: [{}] * 9)
    scores = {"format_compliance": 5 / 6, "citation_validity": 1.0, "groundedness": 0.4, "format_examples": 6,
              "example_answer": "Set `sep=';'` [1]."}
    write_json(evaluation.evaluation_path(), {**{f"finetuned_{k}": v for k, v in scores.items()},
                                              "base_format_compliance": 0.5, "model": "/work/sft/output",
                                              "trained_at": "2026-12-07T14:00:00+00:00"})
    published = tmp_path / "registry" / "code-lm-github" / "1"
    published.mkdir(parents=True)
    (published / "card.json").write_text(json.dumps({"trained_at": "2026-12-07T14:00:00+00:00"}))
    tuning = FineTuningResource(backend="local", format_examples=6)
    assert evaluation.measured_answer_scores(str(published), tuning) == scores
    assert evaluation.measured_answer_scores("/work/sft/output", tuning) == scores  # the unpublished path too
    (published / "card.json").write_text(json.dumps({"trained_at": "2026-12-08T09:00:00+00:00"}))  # retrained
    assert evaluation.measured_answer_scores(str(published), tuning) is None
    assert evaluation.measured_answer_scores("/work/sft/output", FineTuningResource(format_examples=3)) is None
