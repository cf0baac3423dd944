"""The `dg` CLI sees the four code locations as one workspace of four projects and loads them all."""

import os
import subprocess
import sys
from pathlib import Path

from reference_arch.common.settings import PROJECT_ROOT

LOCATIONS = ["prompt", "rag", "finetune", "pretrain"]


def _dg(*args: str, dagster_home: Path, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    """Run ``dg ARGS`` the way a user does: the venv's bin first on PATH, this checkout importable."""
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DAGSTER_HOME": str(dagster_home),
           "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(["dg", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_dg_lists_the_four_locations_as_projects(tmp_path):
    out = _dg("list", "projects", dagster_home=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert out.stdout.split() == [f"reference_arch/{location}" for location in LOCATIONS]


def test_dg_check_defs_loads_every_location(tmp_path):
    """Plain `dg check defs`, no --use-active-venv: each project's .env names the repo's venv, where dg would
    otherwise look for reference_arch/<location>/.venv/bin/python (FileNotFoundError for all four)."""
    out = _dg("check", "defs", "--log-level", "info", dagster_home=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "All definitions loaded successfully." in out.stdout
    for location in LOCATIONS:
        assert f"Validation successful for code location {location}." in out.stdout


def test_make_dev_runs_dg_dev_after_writing_the_instance_config():
    """`dagster dev -w workspace.yaml` prints that it is superseded by `dg dev`: make dev runs dg dev.
    (--no-print-directory: under `make test` this make is nested and would print 'Entering directory'.)"""
    recipe = subprocess.run(["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "dev"], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=60).stdout.splitlines()
    commands = [line.split("#")[0].strip() for line in recipe if line.split("#")[0].strip()]
    assert commands == [".venv/bin/python -m reference_arch.common.pools", ".venv/bin/dg dev"], recipe


def test_plain_dagster_dev_still_reads_workspace_yaml(monkeypatch):
    """Plain `dagster dev` prefers a [tool.dg] (or [tool.dagster]) block in pyproject.toml to workspace.yaml,
    so dg's workspace lives in dg.toml."""
    from dagster._cli.workspace.cli_target import _get_workspace_load_target_from_cli_opts
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_shared.cli import WorkspaceOpts

    monkeypatch.chdir(PROJECT_ROOT)
    assert _get_workspace_load_target_from_cli_opts(WorkspaceOpts()) == WorkspaceFileTarget(paths=["workspace.yaml"])
