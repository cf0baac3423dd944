"""The trainer resource: runs a training entry point in its own process through Dagster Pipes.

The entry point is a Python module (``python -m MODULE``) that opens Dagster Pipes, reads its
config from the Pipes extras, and reports metrics, checkpoints and results back. The same module
runs under ``torchrun`` for several GPUs, or in a remote process (Kubernetes) through another
Pipes client, with no change to the asset that calls it.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any, Optional

import dagster as dg


class TrainerResource(dg.ConfigurableResource):
    """Where and how training runs: device, launcher, compilation."""

    device: str = "auto"  # "auto" | "cpu" | "cuda"
    launcher: str = "subprocess"  # "subprocess" | "torchrun"
    nproc_per_node: int = 1
    compile: bool = False
    env: Optional[dict[str, str]] = None

    def command(self, entry_point: str) -> list[str]:
        """The command line that runs ``entry_point`` (a module name)."""
        if self.launcher == "torchrun":
            torchrun = shutil.which("torchrun") or f"{sys.executable} -m torch.distributed.run"
            return [*torchrun.split(), "--standalone", f"--nproc_per_node={self.nproc_per_node}", "-m", entry_point]
        return [sys.executable, "-m", entry_point]

    def run(self, context: dg.AssetExecutionContext, entry_point: str, config: dict[str, Any]):
        """Run the entry point to completion; returns the Pipes invocation (``get_results()``)."""
        client = dg.PipesSubprocessClient()
        extras = {**config, "device": self.device, "compile": self.compile}
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(self.env or {})}
        return client.run(command=self.command(entry_point), context=context, extras=extras, env=env)
