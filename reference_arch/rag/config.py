"""The rag location's settings: where it writes, what it ingests, and the environment that changes it.

| variable | default | meaning |
|---|---|---|
| ``REFERENCE_ARCH_RAG_START`` | ``2026-05-01`` | first day of the GitHub and Slack partitions |
| ``REFERENCE_ARCH_GITHUB_REPOS`` | every repo in the export | ``owner/name[,owner/name]`` (required with ``GITHUB_TOKEN``) |
| ``REFERENCE_ARCH_SLACK_CHANNELS`` | every channel | names or ids, comma-separated |
| ``REFERENCE_ARCH_RAG_DESTINATION`` | ``duckdb`` (``home/rag/warehouse.duckdb``) | any dlt destination name, configured the dlt way |
| ``REFERENCE_ARCH_GITHUB_API_URL`` | ``https://api.github.com`` | GitHub Enterprise: ``https://HOST/api/v3`` |
| ``REFERENCE_ARCH_SLACK_API_URL`` | ``https://slack.com/api`` | |
| ``REFERENCE_ARCH_RAG_EVAL_SET`` | ``rag/eval_sets/*.yaml`` | evaluation question sets (YAML files, comma-separated): they replace the shipped ones |
| ``REFERENCE_ARCH_DOCS_DIR``, ``REFERENCE_ARCH_DOCS_PACKAGES`` | see ``sources/docs/`` | |
| ``REFERENCE_ARCH_RAG_SOURCES`` | the sources configured, else all on the samples | ``github,slack,docs,packages`` or ``none`` (see ``common/settings.py``) |
"""

from __future__ import annotations

import os
from pathlib import Path

from reference_arch.common.settings import home_path

START_ENV = "REFERENCE_ARCH_RAG_START"
REPOS_ENV = "REFERENCE_ARCH_GITHUB_REPOS"
CHANNELS_ENV = "REFERENCE_ARCH_SLACK_CHANNELS"
DESTINATION_ENV = "REFERENCE_ARCH_RAG_DESTINATION"
DEFAULT_START = "2026-05-01"  # the sample exports start in May 2026
EVAL_SET_ENV = "REFERENCE_ARCH_RAG_EVAL_SET"


def rag_dir(*parts: str) -> Path:
    return home_path("rag", *parts)


def start_date() -> str:
    return os.environ.get(START_ENV) or DEFAULT_START


def _listed(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def github_repos() -> list[str]:
    return _listed(REPOS_ENV)


def slack_channels() -> list[str]:
    return _listed(CHANNELS_ENV)


def github_api_url() -> str:
    return os.environ.get("REFERENCE_ARCH_GITHUB_API_URL") or "https://api.github.com"


def slack_api_url() -> str:
    return os.environ.get("REFERENCE_ARCH_SLACK_API_URL") or "https://slack.com/api"


def github_token() -> str | None:
    return os.environ.get("GITHUB_TOKEN") or None


def slack_token() -> str | None:
    return os.environ.get("SLACK_BOT_TOKEN") or None


def eval_set_paths() -> list[Path]:
    """The evaluation question sets named in ``REFERENCE_ARCH_RAG_EVAL_SET``, else the shipped ones."""
    from reference_arch.rag.question_sets import shipped_sets

    return [Path(p) for p in _listed(EVAL_SET_ENV)] or shipped_sets()
