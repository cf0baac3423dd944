"""The trainer's remote mode: the same training entry point, in a Kubernetes pod on a GPU node pool.

``TrainerResource`` runs an entry point module in a local process through Dagster Pipes. Here the
same module and the same Pipes extras go to ``PipesK8sClient`` instead: the asset's step stays on a
small CPU pod while the training runs in its own pod with GPUs (``torchrun`` across them when the
trainer's launcher is ``torchrun``), and its metrics and checkpoints come back through the pod's
logs exactly as they do from a subprocess. The pod reads and writes the project's home on a shared
volume (a ReadWriteMany claim), so the datasets it trains on and the checkpoints it writes are the
ones the assets see.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Union

import dagster as dg

from reference_arch.common.trainer.device import pick_device
from reference_arch.common.trainer.messages import TrainingRun, training_run
from reference_arch.common.trainer.spec import TrainSpec

if TYPE_CHECKING:
    from reference_arch.common.trainer.resource import TrainerResource

HOME_MOUNT = "/data/reference_arch"
DEFAULT_ENTRY_POINT = "reference_arch.common.trainer.entry"


class K8sTrainerPod(dg.Config):
    """Where the training pod runs; the defaults match deploy/k8s/ (see docs/production.md)."""

    image: str  # the project's image built with CUDA torch (Dockerfile, TORCH_INDEX_URL=.../cu128)
    namespace: Optional[str] = None  # default: the namespace the run runs in
    gpus: Optional[int] = None  # default: the trainer's nproc_per_node under torchrun, else 1
    node_selector: dict[str, str] = {"reference-arch/pool": "gpu"}
    tolerations: list[dict[str, str]] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    home_claim: str = "reference-arch-home"  # the PVC holding REFERENCE_ARCH_HOME
    secrets: list[str] = ["reference-arch-secrets"]  # Secrets whose keys become env vars (keys, tokens)
    service_account: Optional[str] = None
    cpu: str = "4"
    memory: str = "16Gi"
    shm_size: str = "8Gi"  # /dev/shm for DataLoader workers and NCCL between GPUs


def pod_gpus(trainer: TrainerResource, pod: K8sTrainerPod) -> int:
    if pod.gpus is not None:
        return pod.gpus
    return trainer.nproc_per_node if trainer.launcher in ("torchrun", "k8s") else 1


def pod_command(trainer: TrainerResource, entry_point: str) -> list[str]:
    """``trainer.command(entry_point)`` with this machine's interpreter paths replaced by the names
    the image puts on PATH (the pod has its own Python)."""
    command = list(trainer.command(entry_point))
    if command[0] == sys.executable:
        if command[1:3] == ["-m", "torch.distributed.run"]:
            return ["torchrun", *command[3:]]
        return ["python", *command[1:]]
    return [Path(command[0]).name, *command[1:]]


def pod_env(trainer: TrainerResource, gpus: int) -> dict[str, str]:
    """What the entry point finds in its environment besides the Pipes bootstrap variables."""
    device = pick_device(trainer.device, cuda_available=gpus > 0)
    return {
        "REFERENCE_ARCH_HOME": HOME_MOUNT,
        "REFERENCE_ARCH_DEVICE": device,
        "TOKENIZERS_PARALLELISM": "false",
        **(trainer.env or {}),
    }


def trainer_pod_spec(trainer: TrainerResource, entry_point: str, pod: K8sTrainerPod) -> dict[str, Any]:
    """The ``base_pod_spec`` for ``PipesK8sClient.run``: one container running the entry point."""
    gpus = pod_gpus(trainer, pod)
    limits = {"cpu": pod.cpu, "memory": pod.memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "nodeSelector": dict(pod.node_selector) if gpus else {},
        "tolerations": [dict(t) for t in pod.tolerations] if gpus else [],
        "containers": [{
            "name": "trainer",
            "image": pod.image,
            "command": pod_command(trainer, entry_point),
            "resources": {"requests": dict(limits), "limits": dict(limits)},
            "envFrom": [{"secretRef": {"name": name}} for name in pod.secrets],
            "volumeMounts": [
                {"name": "home", "mountPath": HOME_MOUNT},
                {"name": "dshm", "mountPath": "/dev/shm"},
            ],
        }],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": pod.home_claim}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": pod.shm_size}},
        ],
    }
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    return spec


def pipes_extras(trainer: TrainerResource, config: Union[TrainSpec, Mapping[str, Any]], gpus: int,
                 entry_point: str = DEFAULT_ENTRY_POINT) -> dict[str, Any]:
    """The extras ``TrainerResource.run`` sends, with the device the pod really has."""
    return trainer.extras(config, entry_point, device=pod_env(trainer, gpus)["REFERENCE_ARCH_DEVICE"])


def run_on_kubernetes(context: dg.AssetExecutionContext, trainer: TrainerResource,
                      config: Union[TrainSpec, Mapping[str, Any]],
                      pod: K8sTrainerPod, *, on_message: Optional[Callable[[dict[str, Any]], None]] = None,
                      entry_point: str = DEFAULT_ENTRY_POINT, client=None) -> TrainingRun:
    """``TrainerResource.run`` in a pod: same config, same messages, same ``TrainingRun`` back.

    Paths in ``config`` must be under the home (the pod mounts it at the same place as the code
    servers do). The pod's messages arrive through its logs when it ends, so ``on_message`` (a
    ``CheckpointRecorder``) sees the checkpoints then rather than as they are written.
    """
    from dagster_k8s import PipesK8sClient

    gpus = pod_gpus(trainer, pod)
    client = client or PipesK8sClient()  # in-cluster config inside a pod, ~/.kube/config elsewhere
    invocation = client.run(
        context=context,
        namespace=pod.namespace,
        base_pod_spec=trainer_pod_spec(trainer, entry_point, pod),
        base_pod_meta={"labels": {"app.kubernetes.io/part-of": "reference-arch", "reference-arch/role": "trainer"}},
        env=pod_env(trainer, gpus),
        extras=pipes_extras(trainer, config, gpus, entry_point),
    )
    messages = invocation.get_custom_messages()
    for message in messages:
        if on_message is not None and isinstance(message, dict):
            on_message(message)
    return training_run(0, messages)  # a failed pod already raised; a missing "done" raises here
