"""A web application's synchronous answer: the official ``dagster-graphql`` client launches a
question job on the running webserver, waits for it, and reads the answer from the
materialization's metadata."""

from __future__ import annotations

import importlib
import time
from urllib.parse import urlsplit

import dagster as dg
import pytest

from reference_arch.common.questions import question_run_config
from reference_arch.testkit.webserver import graphql
from reference_arch_tests.production.conftest import build_rag_index, tiny_rag_exports

QUESTION_JOBS = {"prompt": "prompt_question_job", "rag": "rag_question_job"}
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


def build_rag_index_for(webserver, folder, monkeypatch) -> None:
    """The index ``rag_question_job`` reads, built in the webserver's home and on its instance (as
    ``reference-arch materialize rag`` would, from tiny exports)."""
    monkeypatch.setenv("REFERENCE_ARCH_HOME", str(webserver.reference_arch_home))
    for name, value in tiny_rag_exports(folder).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(webserver.dagster_home)) as instance:
        build_rag_index(instance)


@pytest.mark.parametrize("location", list(QUESTION_JOBS))
def test_graphql_client_launches_a_question_job_and_reads_the_answer(location, webserver, tmp_path, monkeypatch):
    from dagster_graphql import DagsterGraphQLClient

    job_name = QUESTION_JOBS[location]
    job = question_job(location, job_name)
    if job is None:
        pytest.skip(f"the {location} location has no {job_name} yet")
    if location == "rag":
        build_rag_index_for(webserver, tmp_path / "rag-exports", monkeypatch)

    url = urlsplit(webserver.url)
    client = DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60)
    assert job.partitions_def is None  # nothing to pick but the question (prompt: the template has a default)
    # No execution config: question jobs run in one process by default (no process per step).
    run_config = question_run_config(location, QUESTIONS[location])
    run_id = client.submit_job_execution(job_name, repository_location_name=location, run_config=run_config)
    assert wait_for_run(client, run_id) == dg.DagsterRunStatus.SUCCESS

    run = graphql(webserver.url, MATERIALIZATIONS, {"runId": run_id})["runOrError"]
    by_key = {"/".join(m["assetKey"]["path"]): m for m in run["assetMaterializations"]}
    answer = by_key[f"{location}/answer"]
    entries = {e["label"]: e for e in answer["metadataEntries"]}
    assert entries["answer"]["__typename"] == "MarkdownMetadataEntry"
    assert entries["question"]["text"] == QUESTIONS[location]  # the answer page says what it answered
    assert isinstance(entries["answer"]["mdStr"], str)
    if location == "rag":  # offline, the RAG answer is extractive: no LLM call, so no tokens
        assert entries["answerer"]["text"] == "extractive" and "llm/prompt_tokens" not in entries
    else:
        assert entries["llm/prompt_tokens"]["__typename"] == "IntMetadataEntry"
        assert entries["llm/prompt_tokens"]["intValue"] > 0
    if location == "rag":  # the sources it cites, as a table
        assert entries["sources"]["__typename"] == "TableMetadataEntry" and entries["sources"]["table"]["records"]
