"""Which device and precision to train and run models on: one answer for the trainer, the local
chat model, the evaluation assets and the benchmarks."""

from __future__ import annotations

from typing import Optional


def pick_device(device: str = "auto", cuda_available: Optional[bool] = None) -> str:
    """``device`` as given, or for "auto" CUDA where there is a GPU and the CPU otherwise.

    ``cuda_available`` answers for a machine other than this one (a pod with or without GPUs);
    unset, torch is asked."""
    if device != "auto":
        return device
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return "cuda" if cuda_available else "cpu"


def use_bf16(precision: str, device: str) -> bool:
    """bf16 autocast when asked, or by default on CUDA; fp32 on a CPU, where bf16 is 2-3x slower."""
    return precision == "bf16" or (precision == "auto" and device.startswith("cuda"))
