"""The process running pretrain/trained_model is SIGKILLed mid-training (a closed laptop, the OOM
killer): the trainer dies with it, the dead run is failed and its gpu pool slot freed, and the next
materialization resumes from the newest complete checkpoint and stops exactly at max_steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from reference_arch.pretrain import store
from reference_arch_tests.pretrain.conftest import materialize, metadata, prepare_data, run_config

SCRIPT = """
import json, sys
import dagster as dg
from reference_arch_tests.pretrain.conftest import materialize
with dg.DagsterInstance.get() as instance:
    materialize(instance, ["trained_model"], json.loads(sys.argv[1]))
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")  # a zombie nobody has reaped yet is dead too
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_killed_run_frees_its_slot_and_its_trainer_dies(tmp_home):
    from reference_arch.cli.runs import instance as cli_instance
    from reference_arch.common.trainer.checkpoints import complete_checkpoints, latest_checkpoint

    inst = cli_instance()  # the project's instance (sqlite, pools) under this test's DAGSTER_HOME
    corpus = tmp_home.parent / "corpus"
    from reference_arch_tests.pretrain.conftest import write_corpus

    write_corpus(corpus)
    config = run_config(corpus, trained_model={"max_steps": 30, "checkpoint_every": 3, "batch_size": 8})
    prepare_data(inst, config)
    materialize(inst, ["initial_model"], config)

    worker = subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(config)], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trainer_pid = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and worker.poll() is None:
            runs = [p for p in store.path("runs").iterdir() if p.is_dir()] if store.path("runs").exists() else []
            log = runs[0] / "batches.jsonl" if runs else None
            done = latest_checkpoint(runs[0]) if runs else None
            if done is not None and log.exists():
                rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
                if rows and rows[-1]["step"] > int(done.name.split("-")[1]):
                    trainer_pid = rows[-1]["pid"]
                    worker.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.05)
        assert trainer_pid is not None, "the run finished or failed before the test could kill it"
        worker.wait(timeout=30)

        # The trainer dies with its run instead of training on with nobody listening.
        deadline = time.monotonic() + 15
        while not _gone(trainer_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(trainer_pid), "the training process outlived the killed run"

        dead = [r for r in inst.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
        assert len(dead) == 1
        gpu = inst.event_log_storage.get_concurrency_info("gpu")
        assert [s.run_id for s in gpu.claimed_slots] == [dead[0].run_id]

        # What the CLI does before materializing: the dead run is failed and its slot freed.
        inst = cli_instance()
        assert inst.get_run_by_id(dead[0].run_id).status == dg.DagsterRunStatus.FAILURE
        assert inst.event_log_storage.get_concurrency_info("gpu").claimed_slots == []

        run_dir = next(p for p in store.path("runs").iterdir() if p.is_dir())
        newest = int(latest_checkpoint(run_dir).name.split("-")[1])
        started = time.monotonic()
        resumed = materialize(inst, ["trained_model"], config)
        assert time.monotonic() - started < 180  # no wait for a slot nobody would free
        meta = metadata(resumed, "trained_model")
        assert meta["train/resumed_from_step"].value == newest
        assert meta["train/global_step"].value == 30 and meta["train/steps_this_run"].value == 30 - newest
        # Every complete checkpoint on disk is a partition, including any the killed run wrote last.
        keys = inst.get_dynamic_partitions("pretrain_checkpoints")
        on_disk = [int(p.name.split("-")[1]) for p in complete_checkpoints(run_dir)]
        assert sorted(int(k.rsplit("step", 1)[1]) for k in keys) == sorted(set(range(3, 31, 3)))
        assert on_disk and set(on_disk) <= set(range(3, 31, 3))
    finally:
        if worker.poll() is None:
            worker.kill()
        if trainer_pid is not None and not _gone(trainer_pid):
            os.kill(trainer_pid, signal.SIGKILL)
        inst.dispose()
