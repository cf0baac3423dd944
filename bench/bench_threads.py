"""The packaged chat model's speed on a CPU shared with other work: OpenMP threads that spin against ones that sleep.

A demo or a CI run has several processes on two cores (Dagster steps, the trainer, Ray). torch's OpenMP threads
spin while they wait by default; ``reference_arch`` sets ``OMP_WAIT_POLICY=PASSIVE`` (common/settings.py) so they
sleep instead. Each figure is the median of fresh interpreters (the policy is read when torch loads), each timing
a 200-token prefill and 16 decoded tokens of SmolLM2-135M-Instruct, quiet and beside one busy process per core.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys

REPEATS = 3
PROBE = r"""
import json, time, torch
from reference_arch.common.llm.local import load_causal_lm
from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, model_dir
model, _ = load_causal_lm(str(model_dir(DEFAULT_LOCAL_MODEL)))
ids = torch.randint(0, 40000, (1, 200))
with torch.no_grad():
    model(ids[:, :8])  # warm up
    started = time.perf_counter(); out = model(ids, use_cache=True); prefill = time.perf_counter() - started
    cache, token = out.past_key_values, torch.tensor([[5]])
    started = time.perf_counter()
    for _ in range(16):
        cache = model(token, past_key_values=cache, use_cache=True).past_key_values
    decode = (time.perf_counter() - started) / 16
print(json.dumps({"prefill_s": prefill, "decode_ms": decode * 1000}))
"""


def _busy() -> None:
    while True:
        pass


def _probe(policy: str) -> dict:
    # the package sets PASSIVE only where the variable is unset, so the spinning case names it
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict:
    from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, model_dir

    model_dir(DEFAULT_LOCAL_MODEL)  # converted once, outside the timings
    rows, measured = [], {}
    for load in ("quiet", "busy"):
        workers = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(os.cpu_count() or 1)
                   if load == "busy"]
        for worker in workers:
            worker.start()
        try:
            for policy in ("ACTIVE", "PASSIVE"):
                samples = [_probe(policy) for _ in range(REPEATS)]
                measured[(load, policy)] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        finally:
            for worker in workers:
                worker.terminate()
        for policy in ("ACTIVE", "PASSIVE"):
            figures = measured[(load, policy)]
            rows.append({"metric": f"decode, {load} CPU, {policy.lower()} threads", "unit": "ms/token",
                         "value": round(figures["decode_ms"], 1)})
            rows.append({"metric": f"200-token prefill, {load} CPU, {policy.lower()} threads", "unit": "s",
                         "value": round(figures["prefill_s"], 2)})
        ratio = measured[(load, "ACTIVE")]["decode_ms"] / measured[(load, "PASSIVE")]["decode_ms"]
        rows.append({"metric": f"decode speed-up of sleeping threads, {load} CPU", "unit": "x", "value": round(ratio, 2),
                     "target": ">= 1 busy; >= 0.8 quiet", "ok": ratio >= (1 if load == "busy" else 0.8)})
    return {"title": "packaged model on a shared CPU: OpenMP threads spinning vs sleeping", "cpus": os.cpu_count(),
            "rows": rows}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
