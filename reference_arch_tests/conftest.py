"""Shared fixtures: a temporary project home, a temporary Dagster instance, and a tiny real model
(``reference_arch.testkit.tiny_model``, which the benchmarks use too).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import reference_arch  # noqa: F401  (sets the offline switches)
from reference_arch.testkit.environment import SECRETS_AND_SWITCHES
from reference_arch.testkit.tiny_model import TINY_MODEL_NAME, build_tiny_model


def pytest_configure(config):
    """Homes of the session's own, for code a test runs without ``tmp_home``: CI found the suite had written
    ``.reference_arch/cache/llm.sqlite`` into the checkout (the user's project home)."""
    import tempfile

    session = Path(tempfile.mkdtemp(prefix="reference-arch-tests-"))
    os.environ["REFERENCE_ARCH_HOME"] = str(session / "home")  # never the user's, even when set
    (session / "dagster_home").mkdir()
    os.environ["DAGSTER_HOME"] = str(session / "dagster_home")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """A fresh REFERENCE_ARCH_HOME and DAGSTER_HOME; no secret nor backend switch (offline defaults)."""
    home = tmp_path / "home"
    monkeypatch.setenv("REFERENCE_ARCH_HOME", str(home))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    for name in SECRETS_AND_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def registry_with_tiny_model(tmp_home, tiny_model_dir, monkeypatch):
    """The temporary home's registry holding the tiny model as ``tiny-lm`` (``TINY_MODEL_NAME``) version 1,
    chosen as the local LLM (``REFERENCE_ARCH_LLM_MODEL``): tests of the plumbing around a model answer in
    milliseconds; tests of what a model does use the packaged instruct one (the default)."""
    from reference_arch.common.registry import ModelRegistry

    registry = ModelRegistry()
    registry.publish(TINY_MODEL_NAME, tiny_model_dir, {"kind": "test"})
    monkeypatch.setenv("REFERENCE_ARCH_LLM_MODEL", f"registry:{TINY_MODEL_NAME}@1")
    forget_location_definitions()  # the CLI's locations build their llm resource from the environment at import
    yield registry
    forget_location_definitions()  # so the next test's locations do not keep this test's model


def forget_location_definitions() -> None:
    import sys

    for name in [m for m in sys.modules if m.startswith("reference_arch.") and m.endswith(".definitions")]:
        del sys.modules[name]


@pytest.fixture
def instance(tmp_home):
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def pytest_configure(config):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
