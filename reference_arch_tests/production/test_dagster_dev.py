"""Plain ``dagster dev`` in the repo root, as a newcomer types it: all four code locations load, on
the instance the CLI writes to (``.dagster_home/``), so the demo's runs show without an export."""

from __future__ import annotations

import os

import dagster as dg

from reference_arch.common.locations import LOCATIONS
from reference_arch.common.questions import question_run_config
from reference_arch.common.settings import PROJECT_ROOT
from reference_arch.common.locations import LOCATIONS
from reference_arch.testkit.webserver import graphql, location_statuses

RUNS = "{ runsOrError { __typename ... on Runs { results { runId jobName status } } } }"


def test_the_repo_root_names_workspace_yaml_for_dagster_dev():
    """``dagster dev`` reads ``[tool.dagster]``/``[tool.dg]`` in pyproject.toml before workspace.yaml:
    such a block would load one location instead of four."""
    from dagster._cli.utils import has_pyproject_dagster_block

    assert not has_pyproject_dagster_block(str(PROJECT_ROOT / "pyproject.toml"))
    assert (PROJECT_ROOT / "workspace.yaml").is_file()


def test_plain_dagster_dev_loads_four_locations(webserver):
    statuses = location_statuses(webserver.url)
    assert {name: s["status"] for name, s in statuses.items()} == {name: "LOADED" for name in LOCATIONS}
    assert not any(s["error"] for s in statuses.values())


def test_plain_dagster_dev_shows_the_runs_the_cli_made(webserver, monkeypatch):
    """A run made where the CLI makes them (DAGSTER_HOME=<root>/.dagster_home) is listed by the
    webserver, which was started with no DAGSTER_HOME at all."""
    from reference_arch.common.settings import dagster_home
    from reference_arch.prompt.defs import prompt

    monkeypatch.setenv("DAGSTER_HOME", str(webserver.dagster_home))
    monkeypatch.setenv("REFERENCE_ARCH_HOME", str(webserver.reference_arch_home))
    assert dagster_home() == webserver.dagster_home.resolve()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([prompt.question, prompt.prompt], instance=instance,
                                run_config=question_run_config("prompt", "What is a series?"))
    assert result.success
    runs = graphql(webserver.url, RUNS)["runsOrError"]["results"]
    assert result.run_id in {run["runId"] for run in runs}
    assert os.path.isfile(webserver.dagster_home / "history" / "runs.db")


LINEAGE = """query Lineage($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path } dependencyKeys { path } repository { location { name } } } }"""


def test_answers_draw_the_registry_lineage_across_locations(webserver):
    """The answers use the registry's published model: the webserver's global graph draws that edge
    from the pretrain (and finetune) location's ``published_model`` into the prompt and rag answers."""
    from reference_arch.common.questions import REGISTRY_MODELS

    keys = [{"path": [location, "answer"]} for location in ("prompt", "rag")]
    nodes = graphql(webserver.url, LINEAGE, {"keys": keys})["assetNodes"]
    assert {node["repository"]["location"]["name"] for node in nodes} == {"prompt", "rag"}
    for node in nodes:
        deps = {"/".join(dep["path"]) for dep in node["dependencyKeys"]}
        assert {key.to_user_string() for key in REGISTRY_MODELS} <= deps, node["assetKey"]
    publishers = graphql(webserver.url, LINEAGE, {"keys": [{"path": key.path} for key in REGISTRY_MODELS]})
    assert {n["repository"]["location"]["name"] for n in publishers["assetNodes"]} >= {"pretrain", "finetune"}
