"""Pretraining's corpus work here and on Ray Data (``pretrain/engine.py``), on a corpus ten times the demo's.

The corpus: Python files sampled by path hash from this interpreter's site-packages and standard library up
to ``10 x DEMO_CORPUS_BYTES``. Each engine cleans it (``cleaning.clean``: the rules, the parse and the MinHash
signatures per file; the duplicate choice in the driver) and tokenizes what is kept with the same trained
tokenizer (``tokenization.tokenize_files``). Ray runs on a local cluster of two workers started in this
process (its start-up timed apart); the engines must keep the same files and count the same tokens.
Throughput is corpus megabytes (input) per second of wall time; ratios are from this one run.

``python -m bench.run bench_corpus`` writes ``bench/results/bench_corpus.json``.
"""

from __future__ import annotations

import site
import sysconfig
import tempfile
import time
from pathlib import Path

import reference_arch  # noqa: F401  (offline switches)

SCALE = 10
RAY_WORKERS = 2


def _row(metric, value, unit="", target="", ok=None):
    return {"metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def corpus(max_bytes: int) -> list[dict]:
    """The sampled files (``scan_directory``'s records) of site-packages, then the standard library."""
    from reference_arch.pretrain.corpus import scan_directory

    files: list[dict] = []
    for root in (*site.getsitepackages(), sysconfig.get_paths()["stdlib"]):
        left = max_bytes - sum(f["bytes"] for f in files)
        if left <= 0:
            break
        files += scan_directory(root, max_bytes=left, max_file_bytes=100_000).files
    return files


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def run() -> dict:
    import ray

    from reference_arch.pretrain.cleaning import Rules, clean
    from reference_arch.pretrain.defs.ingestion import DEMO_CORPUS_BYTES
    from reference_arch.pretrain.tokenization import tokenize_files, train_tokenizer

    files = corpus(SCALE * DEMO_CORPUS_BYTES)
    megabytes = sum(f["bytes"] for f in files) / 1e6
    rules = Rules()
    _, started_s = timed(lambda: ray.init(num_cpus=RAY_WORKERS, log_to_driver=False, include_dashboard=False))
    try:
        results = {}
        for engine in ("local", "ray"):
            (kept, _, counts), clean_s = timed(lambda: clean(files, rules, engine))
            results[engine] = {"kept": [f["path"] for f in kept], "counts": dict(counts), "clean_s": clean_s,
                               "kept_files": kept}
        kept = results["local"]["kept_files"]
        with tempfile.TemporaryDirectory(prefix="bench-corpus-") as folder:
            tok = train_tokenizer([f["text"] for f in kept[:2000]], 8192, 2)
            tok.save_pretrained(folder)
            kept_mb = sum(f["bytes"] for f in kept) / 1e6
            for engine in ("local", "ray"):
                (_, stats), tokenize_s = timed(lambda: tokenize_files(tok, kept, tokenizer_path=folder, where=engine))
                results[engine].update(tokens=stats["tokens"], tokenize_s=tokenize_s)
    finally:
        ray.shutdown()
    local, on_ray = results["local"], results["ray"]
    same = local["kept"] == on_ray["kept"] and local["tokens"] == on_ray["tokens"]
    rows = [_row("corpus", f"{len(files):,} files, {megabytes:.1f} MB", "", f"{SCALE}x the demo's "
                 f"{DEMO_CORPUS_BYTES / 1e6:.0f} MB"),
            _row("files kept / removed by reason", f"{len(local['kept']):,} / {local['counts']}"),
            _row("Ray: same files kept and same token count as local", same, "", "True", same),
            _row(f"Ray local cluster start-up ({RAY_WORKERS} workers)", round(started_s, 1), "s")]
    for step, seconds, size in (("cleaning", "clean_s", megabytes), ("tokenization", "tokenize_s", kept_mb)):
        for engine in ("local", "ray"):
            rows.append(_row(f"{step} throughput, {engine}" + (f" ({RAY_WORKERS} workers)" if engine == "ray" else ""),
                             round(size / results[engine][seconds], 3), "MB/s",
                             f"{results[engine][seconds]:.1f} s"))
        rows.append(_row(f"{step}: Ray / local throughput", round(results["local"][seconds] / results["ray"][seconds], 2),
                         "x", "> 1: Ray is faster"))
    return {"title": "Pretraining corpus: local against Ray Data", "rows": rows}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, default=str))
