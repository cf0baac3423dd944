"""Resume picks the newest complete checkpoint: a checkpoint whose marker is empty or cut short, or
whose optimizer state is missing or truncated, is skipped (and said so), and the resumed run
continues the uninterrupted run's learning-rate schedule and losses exactly."""

from __future__ import annotations

import pytest

from reference_arch.pretrain import store
from reference_arch_tests.pretrain.conftest import materialize, metadata, prepare_data, run_config


def _curve(result) -> dict[int, dict]:
    return {int(r.data["step"]): r.data for r in metadata(result, "trained_model")["train/loss_curve"].value.records}


def _logs(instance, result) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


CORRUPTIONS = {
    "empty marker": lambda ck: (ck / "checkpoint.json").write_text(""),
    "truncated marker": lambda ck: (ck / "checkpoint.json").write_text((ck / "checkpoint.json").read_text()[:25]),
    "missing optimizer": lambda ck: (ck / "optimizer.pt").unlink(),
    "truncated optimizer": lambda ck: (ck / "optimizer.pt").write_bytes((ck / "optimizer.pt").read_bytes()[:1000]),
}
REASONS = {"empty marker": "checkpoint.json is unreadable", "truncated marker": "checkpoint.json is unreadable",
           "missing optimizer": "missing optimizer", "truncated optimizer": "optimizer.pt is 1000 bytes"}


def test_resume_skips_incomplete_checkpoints(tmp_home, instance, corpus_dir):
    config = run_config(corpus_dir, trained_model={"max_steps": 6, "checkpoint_every": 3, "log_every": 1})
    prepare_data(instance, config)
    materialize(instance, ["initial_model"], config)
    whole = materialize(instance, ["trained_model"], config)
    reference = _curve(whole)
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]
    run_dir = store.path("runs") / metadata(whole, "trained_model")["run_id"].value

    for name, corrupt in CORRUPTIONS.items():
        corrupt(run_dir / "checkpoint-6")
        resumed = materialize(instance, ["trained_model"], config)
        meta = metadata(resumed, "trained_model")
        assert meta["train/resumed_from_step"].value == 3, name
        assert meta["train/global_step"].value == 6 and meta["train/steps_this_run"].value == 3, name
        logs = _logs(instance, resumed)
        assert "checkpoint-6" in logs and REASONS[name] in logs, (name, logs[-2000:])
        # The schedule and the optimizer carry on where step 3 left them: same lr and loss as the
        # uninterrupted run (a restart from warm-up would have step 4's lr equal step 1's).
        curve = _curve(resumed)
        assert sorted(curve) == [4, 5, 6], name
        for step in (4, 5, 6):
            assert curve[step]["lr"] == pytest.approx(reference[step]["lr"], rel=1e-9), (name, step)
            assert curve[step]["loss"] == pytest.approx(reference[step]["loss"], abs=1e-4), (name, step)


def test_resume_at_max_steps_trains_nothing(tmp_home, instance, corpus_dir):
    config = run_config(corpus_dir, trained_model={"max_steps": 3, "checkpoint_every": 3})
    prepare_data(instance, config)
    materialize(instance, ["initial_model", "trained_model"], config)
    again = metadata(materialize(instance, ["trained_model"], config), "trained_model")
    assert again["train/global_step"].value == 3 and again["train/steps_this_run"].value == 0
