"""What every code location's ``defs`` has in common."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from reference_arch.common import settings
from reference_arch.common.executors import executor_from_env
from reference_arch.common.settings import PROJECT_ROOT

if TYPE_CHECKING:
    import dagster as dg

# The code locations, in dependency order (each reads what the ones before it publish): the CLI's
# `materialize all` and demo run them in this order; workspace.yaml loads `reference_arch.<name>.definitions`
# for each (a test holds the two equal). Not importing dagster here keeps `reference-arch --help` quick.
LOCATIONS = ("pretrain", "finetune", "rag", "prompt")
OWNERS = ["team:ml-platform"]


def location_definitions(defs_root: ModuleType, *, resources: dict | None = None, sensors=()) -> dg.Definitions:
    """The location's ``dg.Definitions``: everything its ``defs/`` package defines at module level
    (``dg.load_definitions_from_package_module``: one module per step, no hand-kept lists), plus its ``resources`` and any shared
    ``sensors``. Assets link to their source: local files, or the git repo when ``REFERENCE_ARCH_GIT_URL`` is
    set, so the UI's code links work on a deployment."""
    import warnings

    import dagster as dg

    from reference_arch.common.settings_model import load_settings

    # Every setting validated before the location's modules load (some read one at import): a bad one fails the
    # load with one line naming it (SettingsError, shown by `dagster dev` and `dg`), not an error from deep inside.
    load_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # package loading is "preview" in 1.13
        loaded = dg.load_definitions_from_package_module(defs_root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # code references are beta in 1.13
        linked = dg.with_source_code_references(list(loaded.assets or []))
    git_url = settings.value("git_url")
    if git_url:
        linked = dg.link_code_references_to_git(
            assets_defs=linked, git_url=git_url, git_branch=settings.value("git_branch"),
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=Path(PROJECT_ROOT), file_anchor_path_in_repository=""),
        )
    extra = {}
    executor = executor_from_env()  # k8s_job_executor on Kubernetes, Dagster's default elsewhere
    if executor is not None:
        extra["executor"] = executor
    return dg.Definitions(assets=linked, asset_checks=list(loaded.asset_checks or []), jobs=list(loaded.jobs or []),
                          schedules=list(loaded.schedules or []), sensors=[*(loaded.sensors or []), *sensors],
                          resources=resources or {}, **extra)


def asset_defaults(location: str, *, prefix: bool = True) -> dict:
    """The key prefix, group and owners every asset of ``location`` shares: ``@dg.asset(**asset_defaults("rag"))``
    gives the key ``rag/<function name>`` (``name=`` when the key is not the function's name) in the group
    ``rag``. ``prefix=False`` leaves the prefix out, for ``dg.AssetSpec``, which takes the whole key."""
    shared = dict(group_name=location, owners=OWNERS)
    return dict(key_prefix=[location], **shared) if prefix else shared
