"""Pretraining benchmark: the default demo's wall time, tokenization and trainer throughput against
their bare baselines in the same run, and MFU against a measured matmul peak.

1. peak FLOP/s: the best of repeated 2048x2048 fp32 matmuls (the MFU denominator on a CPU);
2. the default demo (`reference-arch materialize pretrain` on the stdlib corpus) in a fresh home;
3. tokenization: the shard asset's work (`tokenize_files`: encode_batch, control-token count, Parquet, save)
   against a bare `encode_batch` over the same files, alternated nine times, best of each (both vary
   by ~20% from call to call on this shared machine; the extra work itself is ~0.04 s of ~0.55 s);
4. training: `pretrain/trained_model` (the trainer resource, Pipes subprocess, HF Trainer) against a
   bare PyTorch loop (same model, batch, data, AdamW, clipping), bracketed bare-trainer-bare so that
   load on this shared machine drifts out of the ratio; steady-state tokens/s after the first step;
5. MFU = 6 x parameters x tokens/s / peak, for the trainer's run, and for the next preset up
   (`small`) on random tokens through the same trainer: the tiny model's narrow matmuls cap its MFU.
With CUDA present it also trains the ~90M `medium` preset in bf16 with torch.compile and reports
MFU against the H100's dense bf16 peak.
"""

import shutil
import tempfile
import time
from pathlib import Path

DEMO_TARGET_S = 240
TRAIN_STEPS = 40
H100_BF16_PEAK = 989e12


def _row(metric, value, unit="", target="", ok=None):
    return {"metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def _demo(inst) -> tuple[float, str | None]:
    """``reference-arch materialize pretrain``, timed in this process: the command line's own step plan is
    what a user runs (so it is measured through the CLI), and the demo's files stay for the next parts."""
    from reference_arch.cli.runs import CliError, materialize_location

    started = time.perf_counter()
    try:
        materialize_location("pretrain", inst, echo=lambda *a, **k: print(*a, **k))
        error = None
    except CliError as err:
        error = str(err)
    return time.perf_counter() - started, error


def _tokenization() -> dict:
    from transformers import AutoTokenizer

    from reference_arch.pretrain import store
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import save_documents, tokenize_files, tokenizers_parallelism

    tok = AutoTokenizer.from_pretrained(store.read_manifest("tokenizer")["path"])
    files = read_parquet(store.path("corpus") / "clean.parquet")
    texts = [f["text"] for f in files]
    size = sum(len(t.encode()) for t in texts)
    out = Path(tempfile.mkdtemp())
    bare, ours = [], []
    for _ in range(9):
        started = time.perf_counter()
        with tokenizers_parallelism():
            tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        bare.append(size / (time.perf_counter() - started))
        started = time.perf_counter()
        table, _ = tokenize_files(tok, files)
        save_documents(table, out / "shard.parquet")
        ours.append(size / (time.perf_counter() - started))
    shutil.rmtree(out, ignore_errors=True)
    return {"bare": max(bare), "ours": max(ours), "mb": size / 1e6}


def _bare_loop(steps: int, batch_size: int) -> float:
    """Steady-state tokens/s of a plain loop on the demo's initial model and training blocks."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM

    from reference_arch.pretrain import store

    model = AutoModelForCausalLM.from_pretrained(store.read_manifest("initial_model")["path"],
                                                 attn_implementation="sdpa")
    model.config.use_cache = False
    model.train()
    data = datasets.load_from_disk(store.read_manifest("training_dataset")["train_path"]).with_format("torch")
    blocks = data[:]["input_ids"]  # the same blocks the trainer reads, as one (n, 256) tensor
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0))
    started = None
    for step in range(steps):
        index = order[(step * batch_size) % (len(blocks) - batch_size):][:batch_size]
        ids = blocks[index]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 0:
            started = time.perf_counter()
    return (steps - 1) * batch_size * blocks.shape[1] / (time.perf_counter() - started)


def _trainer(inst, steps: int) -> dict:
    import dagster as dg

    from reference_arch.pretrain import store
    from reference_arch.pretrain.definitions import defs

    config = {"ops": {"pretrain__trained_model": {"config": {"max_steps": steps, "checkpoint_every": 0,
                                                             "log_every": 5, "fresh": True}}}}
    result = dg.materialize(list(defs.assets) + list(defs.asset_checks),
                            selection=[dg.AssetKey(["pretrain", "trained_model"])], instance=inst,
                            resources=defs.resources, run_config=config)
    assert result.success
    return store.read_manifest("trained_model")


def _preset_run(preset: str, *, steps: int, batch_size: int, context: int, peak: float, device: str = "cpu",
                compile: bool = False, precision: str = "auto") -> dict:
    """A preset trained on random token blocks through the trainer resource: its summary (tokens/s, MFU)."""
    import dagster as dg
    import datasets
    import torch

    from reference_arch.common.trainer.model_init import build_model
    from reference_arch.common.trainer.resource import TrainerResource, train_spec
    from reference_arch.pretrain.tokenization import train_tokenizer

    work = Path(tempfile.mkdtemp())
    ids = torch.randint(0, 8192, (max(64, 2 * steps * batch_size), context), generator=torch.Generator().manual_seed(0))
    datasets.Dataset.from_dict({"input_ids": ids.tolist()}).save_to_disk(str(work / "data"))
    model, _ = build_model(preset=preset, arch="gpt2", context_length=context, vocab_size=8192)
    model.save_pretrained(work / preset)
    train_tokenizer(["def f(x):\n    return x\n"] * 10, vocab_size=300).save_pretrained(work / preset)
    spec = train_spec(model_dir=str(work / preset), train_data=[str(work / "data")], output_dir=str(work / "out"),
                      max_steps=steps, batch_size=batch_size, checkpoint_every=0, log_every=max(1, steps // 4),
                      lr=6e-4, peak_flops=peak)
    summary = {}

    @dg.asset(name=f"{preset}_training")
    def training(context, trainer: TrainerResource) -> dg.MaterializeResult:
        run = trainer.run(context, spec)
        summary.update(run.summary)
        return dg.MaterializeResult(metadata=run.metadata())

    try:
        dg.materialize([training], resources={"trainer": TrainerResource(device=device, compile=compile,
                                                                          precision=precision)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summary


def _gpu_rows() -> list[dict]:
    """The ~90M medium preset, bf16 and torch.compile, through the trainer (CUDA only)."""
    import torch

    summary = _preset_run("medium", steps=60, batch_size=16, context=1024, peak=H100_BF16_PEAK, device="cuda",
                          compile=True, precision="bf16")
    name = torch.cuda.get_device_name()
    return [_row(f"{name}: medium preset ({summary['total_params'] / 1e6:.0f}M) bf16+compile tokens/s",
                 round(summary["tokens_per_s"]), "tokens/s"),
            _row(f"{name}: MFU vs 989 TFLOP/s dense bf16", round(100 * summary["mfu"], 1), "%", ">= 40",
                 summary["mfu"] >= 0.4)]


def run() -> dict:
    import dagster as dg

    from reference_arch.common.trainer.device import pick_device
    from reference_arch.common.trainer.throughput import measure_peak_flops, mfu
    from reference_arch.testkit.environment import scoped_environment

    rows = []
    with (tempfile.TemporaryDirectory(prefix="bench-pretrain-", ignore_cleanup_errors=True) as home,
          scoped_environment({"REFERENCE_ARCH_HOME": home})):
        peak = measure_peak_flops("cpu", "float32", size=2048, seconds=2.0)
        rows.append(_row("peak fp32 matmul (2048x2048, best of repeats)", round(peak / 1e9, 1), "GFLOP/s",
                         "~250 on this 2-core CPU when idle"))
        with dg.DagsterInstance.ephemeral() as inst:
            wall, error = _demo(inst)
            rows.append(_row("default demo pretraining wall time (materialize pretrain, stdlib corpus)",
                             round(wall, 1), "s", f"<= {DEMO_TARGET_S}", error is None and wall <= DEMO_TARGET_S))
            if error:
                rows.append(_row("demo failure", error[:300]))
            from reference_arch.pretrain import store

            demo_trained = store.read_manifest("trained_model")
            evaluation = store.read_manifest("evaluation")
            rows.append(_row("demo: steps x tokens seen", f"{demo_trained['steps']} x {demo_trained['tokens_seen']:,}"))
            rows.append(_row("demo: held-out perplexity / completions parsing", f"{evaluation['perplexity']:.1f} / "
                             f"{evaluation['parse_rate']:.0%}", "", "gate: see EvaluationConfig"))
            rows.append(_row("demo: trainer tokens/s over the whole run (checkpoints included)",
                             round(demo_trained["tokens_per_s"]), "tokens/s"))

            tokens = _tokenization()
            ratio = tokens["ours"] / tokens["bare"]
            rows.append(_row(f"tokenization: bare encode_batch ({tokens['mb']:.1f} MB)",
                             round(tokens["bare"] / 1e6, 2), "MB/s"))
            rows.append(_row("tokenization: shard work (encode_batch, split, pack, Arrow, save)",
                             round(tokens["ours"] / 1e6, 2), "MB/s"))
            rows.append(_row("tokenization: shard work / bare encode_batch", round(ratio, 3), "x", ">= 0.9",
                             ratio >= 0.9))

            from reference_arch.pretrain.defs.training import TrainConfig

            batch = TrainConfig().batch_size
            bare_before = _bare_loop(TRAIN_STEPS, batch)
            trained = _trainer(inst, TRAIN_STEPS)
            bare_after = _bare_loop(TRAIN_STEPS, batch)
            bare = (bare_before + bare_after) / 2
            ratio = trained["tokens_per_s"] / bare
            rows.append(_row(f"training: bare PyTorch loop (tiny preset, batch {batch}x256; before/after)",
                             f"{bare_before:,.0f} / {bare_after:,.0f}", "tokens/s"))
            rows.append(_row("training: trainer resource (Pipes subprocess, HF Trainer)",
                             round(trained["tokens_per_s"]), "tokens/s"))
            rows.append(_row("training: trainer / bare loop", round(ratio, 3), "x", ">= 0.9", ratio >= 0.9))
            utilisation = mfu(trained["flop_params"], trained["tokens_per_s"], peak)
            rows.append(_row("MFU of the demo model through the trainer (6N x tokens/s / matmul peak)",
                             round(100 * utilisation, 1), "%", ">= 40 (aim)", utilisation >= 0.4))
            # A 4x batch does not move MFU at this size (measured: 34.6% vs 34.4%); the tiny preset's
            # narrow matmuls (d_model 128) do. The next preset up, same trainer and CPU, shows it.
            small = _preset_run("small", steps=12, batch_size=8, context=256, peak=peak)
            rows.append(_row(f"MFU of the small preset ({small['total_params'] / 1e6:.0f}M, d_model 384) through "
                             "the trainer, batch 8x256", round(100 * small["mfu"], 1), "%", ">= 40 (aim)",
                             small["mfu"] >= 0.4))
        if pick_device() == "cuda":
            rows += _gpu_rows()
        else:
            rows.append(_row("H100 run (medium ~90M preset, bf16, torch.compile)", "not run: no GPU in this run",
                             "", ">= 40% MFU"))
    return {"title": "Pretraining (tokenization, trainer, MFU, demo wall time)", "rows": rows}
