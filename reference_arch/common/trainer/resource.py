"""The trainer resource: runs a training entry point in its own process through Dagster Pipes.

The default entry point, ``reference_arch.common.trainer.entry`` (read its docstring for the
settings), is shared by the pretrain and finetune locations. It reads its config from the Pipes
extras and streams loss, learning rate, tokens/s and MFU back as logs and custom messages while
it runs; each checkpoint it finishes is announced at once, so an asset can register it (as a
dynamic partition, see ``CheckpointRecorder``) even if the process dies later. The same module
runs under ``torchrun`` (``launcher="torchrun"``) or a remote Pipes client, with no change to the
asset that calls it.

    spec = train_spec(model_dir=..., train_data=[...], output_dir=..., max_steps=300)  # a TrainSpec, checked here
    result = trainer.run(context, spec, on_message=CheckpointRecorder(context, asset_key, "my_checkpoints", prefix))
    result.summary["model_dir"], result.summary["tokens_per_s"], result.curve
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Optional, Union

import dagster as dg

from reference_arch.common.trainer.messages import TrainingRun, WholeLineMessageReader, training_run
from reference_arch.common.trainer.remote import DEFAULT_ENTRY_POINT, K8sTrainerPod, run_on_kubernetes
from reference_arch.common.trainer.spec import REPORT_TO, TrainSpec, TrainSpecError, parse_spec

LAUNCHERS = ("subprocess", "torchrun", "k8s")


def train_spec(**settings: Any) -> TrainSpec:
    """A ``TrainSpec`` of ``settings``, validated here in the asset's process: a bad setting fails the
    step with one line naming it, before any training process starts."""
    try:
        return parse_spec(settings)
    except TrainSpecError as err:
        raise dg.Failure(str(err)) from None


class CheckpointRecorder:
    """Registers each announced checkpoint as a dynamic partition of ``asset_key`` and records
    its materialization with the training metrics, as the checkpoint is written."""

    def __init__(self, context: dg.AssetExecutionContext, asset_key: dg.AssetKey, partitions_name: str,
                 prefix: str):
        self.context, self.asset_key, self.partitions_name, self.prefix = context, asset_key, partitions_name, prefix
        self.keys: list[str] = []

    def partition_key(self, step: int) -> str:
        return f"{self.prefix}-step{step:06d}"

    def record_saved(self, output_dir: str) -> list[str]:
        """Register the complete checkpoints under ``output_dir`` that have no partition yet: those a
        killed run wrote but did not get to announce. Returns their partition keys."""
        from reference_arch.common.trainer.checkpoints import checkpoint_info, checkpoint_step, complete_checkpoints

        added = []
        for path in complete_checkpoints(output_dir):
            if not self.context.instance.has_dynamic_partition(self.partitions_name,
                                                               self.partition_key(checkpoint_step(path))):
                self({**checkpoint_info(path), "event": "checkpoint", "path": str(path)})
                added.append(self.keys[-1])
        return added

    def __call__(self, message: dict[str, Any]) -> None:
        if message.get("event") != "checkpoint":
            return
        key = self.partition_key(int(message["step"]))
        instance = self.context.instance
        if not instance.has_dynamic_partition(self.partitions_name, key):
            instance.add_dynamic_partitions(self.partitions_name, [key])
        metadata = {k: float(message[k]) for k in ("loss", "lr", "tokens_per_s", "mfu") if k in message}
        metadata.update(step=int(message["step"]), tokens_seen=int(message.get("tokens_seen", 0)),
                        path=dg.MetadataValue.path(message["path"]))
        self.context.log_event(dg.AssetMaterialization(asset_key=self.asset_key, partition=key, metadata=metadata))
        self.keys.append(key)


class TrainerResource(dg.ConfigurableResource):
    """Where and how training runs: device, launcher, precision, compilation, and where the Trainer reports."""

    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps" (see device.pick_device)
    launcher: str = "subprocess"  # "subprocess" | "torchrun" | "k8s" (a pod: ``pod``, through remote.py)
    nproc_per_node: int = 1  # torchrun's processes per node; under "k8s", the pod's GPUs (torchrun when > 1)
    pod: Optional[K8sTrainerPod] = None  # the "k8s" launcher's pod
    compile: bool = False
    precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 on CPU) | "fp32" | "bf16"
    env: Optional[dict[str, str]] = None
    poll_interval_s: float = 0.2
    # Hugging Face Trainer's reporting integration (TrainingArguments.report_to): "none" | "tensorboard" |
    # "mlflow" | "wandb". The integration's package and its own settings (a tracking URI, a key) are the
    # training process's: set them in ``env``.
    report_to: str = "none"

    def command(self, entry_point: str = DEFAULT_ENTRY_POINT) -> list[str]:
        """The command line that runs ``entry_point`` (a module name)."""
        if self.launcher not in LAUNCHERS:
            raise dg.Failure(f"unknown trainer launcher {self.launcher!r}: use "
                             + ", ".join(repr(name) for name in LAUNCHERS))
        if self.launcher == "torchrun" or (self.launcher == "k8s" and self.nproc_per_node > 1):
            torchrun = shutil.which("torchrun") or f"{sys.executable} -m torch.distributed.run"
            return [*torchrun.split(), "--standalone", f"--nproc_per_node={self.nproc_per_node}", "-m", entry_point]
        return [sys.executable, "-m", entry_point]

    def extras(self, spec: Union[TrainSpec, Mapping[str, Any]], entry_point: str = DEFAULT_ENTRY_POINT,
               device: Optional[str] = None) -> dict[str, Any]:
        """The Pipes extras for ``spec``: the ``TrainSpec`` as JSON, with this resource's device
        (or ``device``), precision, compilation and ``report_to`` where the spec leaves them unset.
        Validated here: ``dg.Failure`` in one line when a setting is wrong. Another entry point's settings
        (a mapping) are passed as they are, after the first three."""
        if self.report_to not in REPORT_TO:
            raise dg.Failure(f"unknown trainer report_to {self.report_to!r}: use "
                             + ", ".join(repr(r) for r in REPORT_TO))
        defaults = {"device": device or self.device, "compile": self.compile, "precision": self.precision}
        if entry_point != DEFAULT_ENTRY_POINT and not isinstance(spec, TrainSpec):
            return {**defaults, **spec}
        given = spec.model_dump(exclude_unset=True) if isinstance(spec, TrainSpec) else dict(spec)
        return json.loads(train_spec(**{"report_to": self.report_to, **defaults, **given}).model_dump_json())

    def run(self, context: dg.AssetExecutionContext, spec: Union[TrainSpec, Mapping[str, Any]], *,
            on_message: Optional[Callable[[dict[str, Any]], None]] = None,
            entry_point: str = DEFAULT_ENTRY_POINT) -> TrainingRun:
        """Run the entry point on ``spec`` to completion, handing each custom message to ``on_message``
        as it arrives; raises ``dg.Failure`` naming the error when a setting is wrong (before the
        process starts) or the process fails or is killed."""
        from reference_arch.common.pools import record_step_worker
        from reference_arch.common.trainer.entry import PARENT_PID_ENV

        if self.launcher == "k8s":
            if self.pod is None:
                raise dg.Failure("the k8s trainer launcher needs its pod's image: set REFERENCE_ARCH_TRAINER_IMAGE "
                                 "(or the trainer resource's pod.image)")
            return run_on_kubernetes(context, self, spec, self.pod, on_message=on_message, entry_point=entry_point)
        extras = self.extras(spec, entry_point)
        # The trainer dies with this process (the entry point watches PARENT_PID_ENV), and the run
        # records which process holds its pool slot, so a killed run's slot can be freed.
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", PARENT_PID_ENV: str(os.getpid()), **(self.env or {})}
        record_step_worker(context)
        seen: list[dict[str, Any]] = []

        def drain(session: dg.PipesSession) -> None:
            for message in session.get_custom_messages()[len(seen):]:
                seen.append(message)
                if on_message is not None and isinstance(message, dict):
                    on_message(message)

        with dg.open_pipes_session(context=context, context_injector=dg.PipesTempFileContextInjector(),
                                   message_reader=WholeLineMessageReader(), extras=extras) as session:
            process = subprocess.Popen(self.command(entry_point),
                                       env={**env, **session.get_bootstrap_env_vars()})
            try:
                while process.poll() is None:
                    drain(session)
                    time.sleep(self.poll_interval_s)
            except dg.DagsterExecutionInterruptedError:  # run terminated: let the trainer stop cleanly
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise
        drain(session)  # messages read while the session closed
        return training_run(process.returncode, seen)
