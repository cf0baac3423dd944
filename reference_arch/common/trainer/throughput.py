"""Training throughput: FLOPs per token, the device's measured peak, model FLOPs utilisation.

MFU = 6 x parameters x tokens/s / peak FLOP/s (forward 2N, backward 4N per token), the
estimate of the PaLM paper and nanoGPT, with the peak *measured* by a large matmul on the same
device and dtype, so CPUs (whose vendor peaks mean little) get an honest denominator.
"""

from __future__ import annotations

import time

# Dense (no sparsity) peaks for reporting against a vendor figure.
VENDOR_PEAKS = {"H100-SXM-bf16": 989e12, "H100-PCIe-bf16": 756e12, "H200-bf16": 989e12}


def flop_parameters(model) -> int:
    """Parameters that do matmul work: all but learned position embeddings (a lookup)."""
    total = sum(p.numel() for p in model.parameters())
    for name, p in model.named_parameters():
        if name.endswith(("wpe.weight", "position_embeddings.weight")):
            total -= p.numel()
    return total


def measure_peak_flops(device: str = "cpu", dtype: str = "float32", size: int = 2048, seconds: float = 0.5) -> float:
    """FLOP/s of a square matmul of ``size`` on ``device``, best of repeated timings."""
    import torch

    torch_dtype = getattr(torch, dtype)
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    a @ b  # warm-up
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        a @ b
        sync()
        elapsed = time.perf_counter() - start
        best = max(best, 2 * size**3 / elapsed)
        if time.perf_counter() > deadline:
            return best


def device_peak_flops(device: str, bf16: bool) -> float:
    """The MFU denominator for training on ``device``: a quick measurement (0.3 s) in the training dtype."""
    return measure_peak_flops(device, "bfloat16" if bf16 else "float32",
                              size=8192 if device.startswith("cuda") else 2048, seconds=0.3)


def mfu(n_params: int, tokens_per_s: float, peak_flops: float) -> float:
    return 6 * n_params * tokens_per_s / peak_flops if peak_flops else 0.0
