"""What every code location's ``defs`` has in common."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from reference_arch.common.executors import executor_from_env
from reference_arch.common.settings import PROJECT_ROOT

OWNERS = ["team:ml-platform"]


def location_definitions(*, assets=(), asset_checks=(), jobs=(), schedules=(), sensors=(), resources=None,
                         **kwargs) -> dg.Definitions:
    """``dg.Definitions`` whose assets link to their source (local files, or the git repo when
    ``REFERENCE_ARCH_GIT_URL`` is set, so the UI's code links work on a deployment)."""
    import os
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # code references are beta in 1.13
        linked = dg.with_source_code_references(list(assets))
    git_url = os.environ.get("REFERENCE_ARCH_GIT_URL")
    if git_url:
        linked = dg.link_code_references_to_git(
            assets_defs=linked, git_url=git_url, git_branch=os.environ.get("REFERENCE_ARCH_GIT_BRANCH", "main"),
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=Path(PROJECT_ROOT), file_anchor_path_in_repository=""),
        )
    executor = executor_from_env()  # k8s_job_executor on Kubernetes, Dagster's default elsewhere
    if executor is not None:
        kwargs.setdefault("executor", executor)
    return dg.Definitions(assets=linked, asset_checks=list(asset_checks), jobs=list(jobs),
                          schedules=list(schedules), sensors=list(sensors), resources=resources or {}, **kwargs)
