"""The CLI's live progress (cli/progress.py): reports read from the lines the steps log, drawn as plain lines
off a terminal (at most one per 30 s, and the last at the end), redrawn in place on one."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import numpy as np

from reference_arch.cli.progress import Progress, ProgressView, RunEvents, heartbeat, parse


def _collect(lines: list[str]):
    def echo(text: str = "", end: str = "\n", flush: bool = False) -> None:
        lines.append(text + end)

    return echo


def test_reports_off_a_terminal_are_plain_lines_at_most_every_30_seconds():
    lines: list[str] = []
    view = ProgressView(_collect(lines), tty=False, clock=lambda: 0.0)
    train = "pretrain/trained_model"
    for now, (done, loss) in enumerate([(10, 5.8123), (20, 5.5), (300, 3.21), (310, 3.2), (800, 2.5)]):
        at = 1000.0 + done / 10  # 10 optimizer steps a second
        view.update(Progress(train, "train", done, 800, at, loss), now=[0, 2, 31, 35, 70][now])
    view.update(Progress("rag/embeddings", "embed", 512, 2000, 2000.0), now=71)  # another step: at once
    view.update(Progress("rag/embeddings", "embed", 1024, 2000, 2010.0), now=80)
    view.tick("rag/embeddings", now=100)  # a line 29 s ago: no heartbeat
    view.close(now=110)  # the run ended: its newest report (1,024), not printed yet
    view.tick("rag/vector_index", now=171)
    assert lines == [
        "\n    pretrain/trained_model: step 10/800 (1%), loss 5.8123",
        "\n    pretrain/trained_model: step 300/800 (37%), loss 3.2100, ETA 50s",  # 290 steps in 29 s
        "\n    pretrain/trained_model: step 800/800 (100%), loss 2.5000",  # 39 s after the last: no ETA at the end
        "\n    rag/embeddings: 512/2,000 chunks embedded (25%)",
        "\n    rag/embeddings: 1,024/2,000 chunks embedded (51%), ETA 19s",  # 512 chunks in 10 s, 976 left
        "\n    ... rag/vector_index, 3 min in",  # 61 s without a line
    ]


def test_on_a_terminal_the_line_is_redrawn_in_place():
    lines: list[str] = []
    view = ProgressView(_collect(lines), tty=True, width=100, clock=lambda: 0.0)
    view.update(Progress("finetune/fine_tuned_model", "train", 1, 10, 0.0, 2.0), now=0)
    view.update(Progress("finetune/fine_tuned_model", "train", 5, 10, 120.0, 1.5), now=1)
    view.update(Progress("finetune/fine_tuned_model", "train", 10, 10, 150.0, 1.25), now=2)
    view.close(now=3)  # shown already
    assert lines == [
        "\n    finetune/fine_tuned_model: step 1/10 (10%), loss 2.0000",
        "\r    finetune/fine_tuned_model: step 5/10 (50%), loss 1.5000, ETA 2m30s",
        "\r    finetune/fine_tuned_model: step 10/10 (100%), loss 1.2500" + " " * 9 + "\b" * 9,  # over a longer line
    ]
    narrow: list[str] = []
    ProgressView(_collect(narrow), tty=True, width=40).update(Progress("rag/embeddings", "embed", 1, 9, 0.0), now=0)
    assert narrow == ["\n    rag/embeddings: 1/9 chunks embedded"]  # 39 characters: no wrap to redraw over


def test_the_lines_the_steps_log_are_parsed():
    trainer = "step 40/800 loss 3.1416 lr 2.99e-03 12,345 tok/s MFU 1.2%"  # loop.Streamer.on_log
    assert parse("pretrain__trained_model", trainer, 5.0) == Progress("pretrain/trained_model", "train", 40, 800, 5.0,
                                                                     3.1416)
    assert parse("finetune__fine_tuned_model", "step 3/9 loss nan lr 0.00e+00 0 tok/s MFU 0.0%", 1.0).loss != 0
    assert parse("rag__embeddings", "embedded 1024/4000", 2.0) == Progress("rag/embeddings", "embed", 1024, 4000, 2.0)
    assert parse("pretrain__trained_model", "checkpoint checkpoint-200 saved", 3.0) is None
    assert parse("pretrain__trained_model", "resumed at step 200 with this run's intervals: ...", 3.0) is None


def test_the_embedding_step_logs_what_the_progress_reads(tmp_path):
    from reference_arch.rag.embedding_cache import EmbeddingCache, cached_embed

    logged: list[str] = []
    texts = [f"text {i}" for i in range(5)]
    cached_embed(EmbeddingCache(tmp_path / "cache.parquet"), [f"k{i}" for i in range(5)], texts,
                 lambda batch: np.ones((len(batch), 4), dtype=np.float32), batch=2, log=logged.append)
    assert [(p.done, p.total) for p in (parse("rag__embeddings", line, 0.0) for line in logged)] == [
        (2, 5), (4, 5), (5, 5)]


@dg.asset(key=["demo", "training"])
def logging_asset(context) -> None:
    context.log.info("step 1/2 loss 3.0000 lr 1.00e-03 100 tok/s MFU 0.1%")
    time.sleep(0.5)
    context.log.info("checkpoint checkpoint-1 saved")
    context.log.info("step 2/2 loss 2.5000 lr 1.00e-03 100 tok/s MFU 0.1%")


def test_a_runs_progress_is_read_from_its_event_log_while_it_runs():
    lines: list[str] = []
    with dg.DagsterInstance.ephemeral() as inst:
        run_id = str(uuid.uuid4())
        job = dg.Definitions(assets=[logging_asset]).resolve_implicit_global_asset_job_def()
        with heartbeat(inst, run_id, _collect(lines), tty=False):
            assert job.execute_in_process(instance=inst, run_id=run_id).success
        events = RunEvents(inst, run_id)
        assert [(p.step, p.done) for p in events.read()] == [("demo/training", 1), ("demo/training", 2)]
        assert events.step == "demo/training" and list(events.read()) == []  # read from where it stopped
    # The first report at once; the second within 30 s of it, so at the end.
    assert lines == ["\n    demo/training: step 1/2 (50%), loss 3.0000",
                     "\n    demo/training: step 2/2 (100%), loss 2.5000"]


@dg.asset(key=["demo", "quiet"])
def quiet_asset() -> None:
    pass


def test_a_steps_end_goes_under_its_progress_lines(monkeypatch):
    """A trial read ``step 2/2 (100%), loss 2.5000 ok (1.0s)``: the time looked like part of the loss line."""
    from reference_arch.cli import runs

    printed = {}
    for asset in (logging_asset, quiet_asset):
        monkeypatch.setattr(runs, "load_defs", lambda location, asset=asset: dg.Definitions(assets=[asset]))
        lines: list[str] = []
        with dg.DagsterInstance.ephemeral() as inst:
            runs.materialize_location("demo", inst, echo=_collect(lines))
        printed[asset.key.path[-1]] = "".join(lines)
    training = printed["training"]
    assert training.startswith("  [demo] demo/training (1 run)\n    demo/training: step 1/2 (50%), loss 3.0000\n"), training
    assert "loss 2.5000\n    ok (" in training and "loss 2.5000 ok" not in training, training
    assert printed["quiet"].startswith("  [demo] demo/quiet (1 run). ok ("), printed["quiet"]  # no progress: one line


def test_a_training_resumed_at_an_earlier_runs_checkpoint_says_so():
    """The same data and settings give the same training run, which goes on from its last checkpoint: at the
    last step the trainer has nothing to do, and the CLI said nothing of it (a new user saw a 21 s "training")."""
    logged = ("training on cpu: 1,234 parameters (1,234 trainable), 171 blocks of 256 tokens, resuming from "
              "checkpoint-800 (step 800/800)")  # common/trainer/entry.py
    event = parse("pretrain__trained_model", logged, 1.0)
    assert event == Progress("pretrain/trained_model", "resume", 800, 800, 1.0)
    lines: list[str] = []
    view = ProgressView(_collect(lines), tty=True, clock=lambda: 0.0)
    view.update(event, now=0)
    view.update(Progress("pretrain/trained_model", "resume", 200, 800, 1.0), now=1)
    view.update(Progress("pretrain/trained_model", "train", 210, 800, 2.0, 3.0), now=2)  # not drawn over it
    assert lines == [
        "\n    pretrain/trained_model: resumed from an earlier run's checkpoint at step 800/800, nothing left to train",
        "\r    pretrain/trained_model: resumed from an earlier run's checkpoint at step 200/800, 600 steps to go"
        + " " * 6 + "\b" * 6,
        "\n    pretrain/trained_model: step 210/800 (26%), loss 3.0000",
    ]
