"""A web application's synchronous answer: the official ``dagster-graphql`` client launches a
question job on the running webserver, waits for it, and reads the answer from the
materialization's metadata."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import dagster as dg
import pytest

from reference_arch.common.questions import question_run_config
from reference_arch.common.settings import PROJECT_ROOT
from reference_arch_tests.production.webserver import graphql

# location -> (job, what must be materialized before it can answer)
QUESTION_JOBS = {"prompt": ("prompt_question_job", ()), "rag": ("rag_question_job", ("rag",))}
QUESTIONS = {"prompt": "What is a series?", "rag": "How do I rename the index of a Series?"}

MATERIALIZATIONS = """
query Answer($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      assetMaterializations {
        assetKey { path }
        partition
        metadataEntries {
          label
          __typename
          ... on MarkdownMetadataEntry { mdStr }
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on TableMetadataEntry { table { records } }
        }
      }
    }
  }
}
"""


def question_job(location: str, job_name: str):
    defs = importlib.import_module(f"reference_arch.{location}.definitions").defs
    if not any(job.name == job_name for job in defs.jobs or []):
        return None
    return defs.resolve_job_def(job_name)


def wait_for_run(client, run_id: str, timeout: float = 420) -> dg.DagsterRunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {timeout}s")


def materialize_with_the_cli(location: str, webserver) -> None:
    """``reference-arch materialize LOCATION`` against the webserver's instance and home."""
    env = {**os.environ, "REFERENCE_ARCH_HOME": str(webserver.reference_arch_home),
           "DAGSTER_HOME": str(webserver.dagster_home)}
    done = subprocess.run([sys.executable, "-m", "reference_arch.cli", "materialize", location], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("location", list(QUESTION_JOBS))
def test_graphql_client_launches_a_question_job_and_reads_the_answer(location, webserver):
    from dagster_graphql import DagsterGraphQLClient

    job_name, prerequisites = QUESTION_JOBS[location]
    job = question_job(location, job_name)
    if job is None:
        pytest.skip(f"the {location} location has no {job_name} yet")
    for needed in prerequisites:
        materialize_with_the_cli(needed, webserver)

    url = urlsplit(webserver.url)
    client = DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60)
    tags = {}
    if job.partitions_def is not None:
        tags["dagster/partition"] = job.partitions_def.get_partition_keys()[0]
    # One process for the whole run: a synchronous answer should not pay a process per step.
    run_config = {**question_run_config(location, QUESTIONS[location]), "execution": {"config": {"in_process": {}}}}
    run_id = client.submit_job_execution(job_name, repository_location_name=location, run_config=run_config,
                                         tags=tags)
    assert wait_for_run(client, run_id) == dg.DagsterRunStatus.SUCCESS

    run = graphql(webserver.url, MATERIALIZATIONS, {"runId": run_id})["runOrError"]
    by_key = {"/".join(m["assetKey"]["path"]): m for m in run["assetMaterializations"]}
    answer = by_key[f"{location}/answer"]
    entries = {e["label"]: e for e in answer["metadataEntries"]}
    assert entries["answer"]["__typename"] == "MarkdownMetadataEntry"
    assert isinstance(entries["answer"]["mdStr"], str)
    assert entries["llm/prompt_tokens"]["__typename"] == "IntMetadataEntry"
    assert entries["llm/prompt_tokens"]["intValue"] > 0
