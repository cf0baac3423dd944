"""Secrets stored outside the masked path (issue 26.1): a token in a question or a feedback comment was masked
before the LLM and in the store, but kept raw in the run's config (``runs.db``, shown in the UI); an LLM
answer's secret was kept raw in the response cache. Every file under both homes is read back for it."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from reference_arch.cli import main
from reference_arch_tests.fake_secrets import EMAIL, GITHUB_TOKEN, OPENAI_KEY, SLACK_TOKEN


def files_holding(value: str, *roots: Path) -> list[str]:
    """The files under ``roots`` whose bytes hold ``value`` (SQLite databases, logs, parquet, JSON...)."""
    needle = value.encode()
    return [str(p) for root in roots for p in Path(root).rglob("*") if p.is_file() and needle in p.read_bytes()]


def homes(tmp_home: Path) -> tuple[Path, Path]:
    from reference_arch.common.settings import dagster_home

    return tmp_home, dagster_home()


def test_a_question_and_a_comment_are_masked_in_the_run_config(tmp_home, capsys):
    """Through the CLI, as a user asks and judges (answered by the local model, or failed without one: the
    run and its config are kept either way), then every file of both homes read back."""
    main(["ask", "prompt", f"Why is {GITHUB_TOKEN} refused, and {OPENAI_KEY}? Mail {EMAIL}"])
    (run,) = dg.DagsterInstance.get().get_runs()
    config = run.run_config["ops"]["prompt__question"]["config"]["question"]
    assert config == "Why is [SECRET:github_token] refused, and [SECRET:openai_token]? Mail [EMAIL]"

    main(["feedback", run.run_id, "down", "--comment", f"it echoed {SLACK_TOKEN}"])
    feedback_run = next(r for r in dg.DagsterInstance.get().get_runs() if r.job_name == "feedback_job")
    assert feedback_run.run_config["ops"]["record_feedback"]["config"]["comment"] == "it echoed [SECRET:slack_token]"
    capsys.readouterr()
    assert files_holding(GITHUB_TOKEN, *homes(tmp_home)) == [] and files_holding(EMAIL, *homes(tmp_home)) == []
    assert files_holding(SLACK_TOKEN, *homes(tmp_home)) == [] and files_holding(OPENAI_KEY[:24], *homes(tmp_home)) == []


def test_an_answers_secret_is_not_kept_in_the_response_cache(tmp_home):
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch_tests.fake_openai import FakeOpenAI

    with FakeOpenAI(answer=f"Use {SLACK_TOKEN} or write to {EMAIL}.") as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="sk-test", cache=True)
        first = llm.generate([("human", "Which token?")])
        again = llm.generate([("human", "Which token?")])  # a cache hit: the server is not asked again
    assert first == again == "Use [SECRET:slack_token] or write to [EMAIL]."
    assert len(server.requests) == 1
    cache = tmp_home / "cache" / "llm.sqlite"
    assert cache.exists() and b"[SECRET:slack_token]" in cache.read_bytes()
    assert files_holding(SLACK_TOKEN, tmp_home) == [] and files_holding(EMAIL, tmp_home) == []
