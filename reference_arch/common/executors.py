"""Which executor the locations' jobs run on, chosen by the deployment, not the code.

Unset: Dagster's default (each step in its own process, in the run's container). On Kubernetes,
``REFERENCE_ARCH_EXECUTOR=k8s`` runs each step as its own Kubernetes Job (``k8s_job_executor``),
inheriting the run launcher's image, secrets and volumes (deploy/k8s/values.yaml); a step's own
pod settings go in its ``dagster-k8s/config`` tag.
"""

from __future__ import annotations

from reference_arch.common import settings


def executor_from_env():
    """The executor named by ``REFERENCE_ARCH_EXECUTOR`` (``k8s``), or None for Dagster's default."""
    if settings.value("executor") != "k8s":  # unset or default; another value is a SettingsError naming it
        return None
    from dagster_k8s import k8s_job_executor  # imported only on Kubernetes: the client is heavy

    return k8s_job_executor
