"""Tiny exports for the rag location: a GitHub REST dump, a Slack workspace export, a docs folder and an
evaluation set over them, all under the test's temporary home; plus helpers to run the graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DAY1, DAY2, DAY3 = "2026-06-01", "2026-06-02", "2026-06-03"  # DAY3: nothing happened
REPO = "acme/widgets"

ISSUES = [
    {"id": 101, "number": 1, "title": "Exporter crashes on empty input files",
     "body": "Running `widgets export` on an empty CSV raises `IndexError: list index out of range`.",
     "user": {"login": "ana", "type": "User"}, "labels": [{"name": "bug"}], "state": "closed", "comments": 2,
     "created_at": f"{DAY1}T09:00:00Z", "updated_at": f"{DAY1}T12:00:00Z", "closed_at": f"{DAY1}T12:00:00Z",
     "author_association": "NONE", "html_url": f"https://github.com/{REPO}/issues/1"},
    {"id": 102, "number": 2, "title": "How do I change the colour palette of charts?",
     "body": "The default palette is hard to read on a projector.",
     "user": {"login": "ben", "type": "User"}, "labels": [], "state": "open", "comments": 1,
     "created_at": f"{DAY2}T08:00:00Z", "updated_at": f"{DAY2}T10:00:00Z", "closed_at": None,
     "author_association": "NONE", "html_url": f"https://github.com/{REPO}/issues/2"},
]
COMMENTS = [
    {"id": 9001, "issue_url": f"https://api.github.com/repos/{REPO}/issues/1", "user": {"login": "maya", "type": "User"},
     "author_association": "OWNER", "body": "Thanks! Empty files are now skipped with a warning; fixed in 1.2.",
     "created_at": f"{DAY1}T11:00:00Z", "updated_at": f"{DAY1}T11:00:00Z"},
    {"id": 9002, "issue_url": f"https://api.github.com/repos/{REPO}/issues/1",
     "user": {"login": "ci[bot]", "type": "Bot"}, "author_association": "NONE", "body": "Coverage 91%",
     "created_at": f"{DAY1}T11:30:00Z", "updated_at": f"{DAY1}T11:30:00Z"},
    {"id": 9003, "issue_url": f"https://api.github.com/repos/{REPO}/issues/2", "user": {"login": "maya", "type": "User"},
     "author_association": "OWNER", "body": "Set `palette = \"high-contrast\"` in the `[charts]` section of widgets.toml.",
     "created_at": f"{DAY2}T10:00:00Z", "updated_at": f"{DAY2}T10:00:00Z"},
]
SLACK_CHANNELS = [{"id": "C1", "name": "help", "created": 1780000000}]
SLACK_USERS = [{"id": "U1", "name": "ana", "real_name": "Ana Silva"}, {"id": "U2", "name": "maya", "real_name": "Maya Chen"}]
# 2026-06-01 09:00 UTC = 1780304400
SLACK_DAY1 = [
    {"type": "message", "user": "U1", "text": "Where does widgets keep its cache on Linux?", "ts": "1780304400.000100",
     "thread_ts": "1780304400.000100", "reply_count": 1},
    {"type": "message", "user": "U2", "text": "<@U1> in ~/.cache/widgets unless WIDGETS_CACHE_DIR is set.",
     "ts": "1780304500.000200", "thread_ts": "1780304400.000100"},
    {"type": "message", "subtype": "channel_join", "user": "U2", "text": "<@U2> has joined", "ts": "1780304000.000000"},
]
DOCS = {
    "index.md": "# Widgets\n\nWidgets draws charts from CSV files.\n\n## Installing\n\nRun `pip install widgets`.\n",
    "guides/charts.md": "# Charts\n\n## Palettes\n\nThe `palette` option of the `[charts]` section picks the colours: "
                        "`default`, `pastel` or `high-contrast`.\n\n## Sizes\n\nCharts are 800x600 pixels unless "
                        "`size` is set.\n",
    "guides/cli.rst": "Command line\n============\n\n``widgets export FILE`` writes a chart per CSV file.\n",
}
EVAL_SET = """questions:
  - question: Where is the cache directory?
    relevant: ["slack:C1:1780304400.000100"]
  - question: Which option changes the chart colours?
    relevant: ["docs:guides/charts.md", "github:acme/widgets#2"]
  - question: The exporter fails on an empty CSV file
    relevant: ["github:acme/widgets#1"]
"""


def write_exports(root: Path) -> dict[str, Path]:
    github = root / "github" / REPO
    github.mkdir(parents=True)
    (github / "issues.json").write_text(json.dumps(ISSUES))
    (github / "comments.json").write_text(json.dumps(COMMENTS))
    slack = root / "slack"
    (slack / "help").mkdir(parents=True)
    (slack / "channels.json").write_text(json.dumps(SLACK_CHANNELS))
    (slack / "users.json").write_text(json.dumps(SLACK_USERS))
    (slack / "help" / f"{DAY1}.json").write_text(json.dumps(SLACK_DAY1))
    docs = root / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    eval_set = root / "eval_set.yaml"
    eval_set.write_text(EVAL_SET)
    return {"github": root / "github", "slack": slack, "docs": docs, "eval_set": eval_set}


@pytest.fixture
def rag_data(tmp_home, tmp_path, monkeypatch) -> dict[str, Path]:
    """Tiny exports wired through the environment; docstrings of the small ``json`` package."""
    paths = write_exports(tmp_path / "data")
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(paths["github"]))
    monkeypatch.setenv("REFERENCE_ARCH_SLACK_EXPORT", str(paths["slack"]))
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_DIR", str(paths["docs"]))
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_PACKAGES", "json")
    monkeypatch.setenv("REFERENCE_ARCH_RAG_EVAL_SET", str(paths["eval_set"]))
    for name in ("REFERENCE_ARCH_GITHUB_REPOS", "REFERENCE_ARCH_SLACK_CHANNELS", "REFERENCE_ARCH_RAG_DESTINATION",
                 "REFERENCE_ARCH_DOCS_EXAMPLES", "REFERENCE_ARCH_DOCS_MAX_CHARS", "WEAVIATE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return paths


def range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def run_ingestion(instance, days=(DAY1, DAY2)):
    """docs partitions, then GitHub and Slack over ``days`` and every docs partition."""
    import dagster as dg

    from reference_arch.rag.defs import ingestion

    assert dg.materialize([ingestion.docs_partitions], instance=instance).success
    daily = dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                           tags=range_tags(days[0], days[-1]))
    keys = sorted(instance.get_dynamic_partitions("rag_docs"))
    docs = dg.materialize([ingestion.docs_assets], instance=instance, tags=range_tags(keys[0], keys[-1]))
    return daily, docs


def processing_assets():
    from reference_arch.rag.defs import checks, evaluation, processing
    from reference_arch.rag.defs import index as rag_index

    return [processing.documents, processing.chunks, processing.chunk_embeddings, rag_index.vector_index,
            evaluation.retrieval_evaluation, checks.chunks_within_token_limit, checks.chunk_ids_unique,
            checks.index_matches_chunks, checks.no_secrets_in_chunks, checks.no_secrets_in_index]


def resources():
    """Offline resources: local MiniLM, LanceDB, and the local LLM (never loaded: multi-query retrieval is
    skipped and the answers are extractive)."""
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.common.vector_store import VectorStoreResource

    return {"embeddings": EmbeddingsResource(provider="local"), "vector_store": VectorStoreResource(),
            "llm": LLMResource(provider="local")}


def run_processing(instance, **kwargs):
    import dagster as dg

    return dg.materialize(processing_assets(), instance=instance, resources=resources(), **kwargs)


def metadata(result, name: str) -> dict:
    """The values of the last materialization of ``rag/<name>`` in a run."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == name]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def checks_passed(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
