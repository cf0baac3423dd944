"""The packaged chat model's speed on a CPU shared with other work: OpenMP threads that spin against ones that sleep.

A demo or a CI run has several torch processes on two cores (Dagster steps, the trainer, Ray). libgomp's threads
spin a while before they sleep by default (``OMP_WAIT_POLICY`` unset); ``reference_arch`` sets
``OMP_WAIT_POLICY=PASSIVE`` (common/settings.py) so they sleep at once. Each figure is the median of fresh
interpreters (the policy is read when torch loads), each timing a 200-token prefill and 16 decoded tokens of
SmolLM2-135M-Instruct: alone, and beside a second torch process under the same policy (a trainer's matmuls).
"""

from __future__ import annotations

import json
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


BUSY = "import torch\nx = torch.randn(256, 256)\nwhile True:\n    x = torch.tanh(x @ x)"  # small ops, as training's


def _env(policy: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return env if policy == "default" else {**env, "OMP_WAIT_POLICY": policy}


def _probe(policy: str) -> dict:
    # the probe loads torch before reference_arch, so an unset policy stays libgomp's default
    done = subprocess.run([sys.executable, "-c", PROBE], env=_env(policy), check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict:
    from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, model_dir

    model_dir(DEFAULT_LOCAL_MODEL)  # converted once, outside the timings
    rows, measured = [], {}
    for load in ("alone", "beside a trainer"):
        for policy in ("default", "PASSIVE"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY], env=_env(policy)) if load != "alone" else None
            try:
                samples = [_probe(policy) for _ in range(REPEATS)]
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            figures = measured[(load, policy)] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            rows.append({"metric": f"decode, {load}, {policy.lower()} wait policy", "unit": "ms/token",
                         "value": round(figures["decode_ms"], 1)})
            rows.append({"metric": f"200-token prefill, {load}, {policy.lower()} wait policy", "unit": "s",
                         "value": round(figures["prefill_s"], 2)})
        ratio = measured[(load, "default")]["decode_ms"] / measured[(load, "PASSIVE")]["decode_ms"]
        quiet = load == "alone"
        rows.append({"metric": f"decode speed-up of the passive policy, {load}", "unit": "x", "value": round(ratio, 2),
                     "target": ">= 0.75 alone; >= 1 beside a trainer", "ok": ratio >= (0.75 if quiet else 1)})
    return {"title": "packaged model on a shared CPU: libgomp's default wait policy vs passive", "cpus": os.cpu_count(),
            "rows": rows}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
