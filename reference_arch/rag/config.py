"""The rag location's settings: where it writes, what it ingests, and the environment that changes it.

Its variables (``REFERENCE_ARCH_RAG_START`` and the rest of the rag, GitHub, Slack and docs ones) are declared,
with their defaults and what they do, in ``common/settings.py`` (the README's table of settings is written from
it); these functions read them for the location.
"""

from __future__ import annotations

import os
from pathlib import Path

from reference_arch.common import settings
from reference_arch.common.settings import home_path

REPOS_ENV = "REFERENCE_ARCH_GITHUB_REPOS"  # named in messages
EVAL_SET_ENV = "REFERENCE_ARCH_RAG_EVAL_SET"


def rag_dir(*parts: str) -> Path:
    return home_path("rag", *parts)


def start_date() -> str:
    """The first day of the GitHub and Slack partitions, ``YYYY-MM-DD`` (the sample exports start in May 2026)."""
    return settings.value("rag_start").isoformat()


def github_repos() -> list[str]:
    return list(settings.value("github_repos") or ())


def slack_channels() -> list[str]:
    return list(settings.value("slack_channels") or ())


def github_api_url() -> str:
    return settings.value("github_api_url")


def slack_api_url() -> str:
    return settings.value("slack_api_url")


def github_token() -> str | None:
    return os.environ.get("GITHUB_TOKEN") or None


def slack_token() -> str | None:
    return os.environ.get("SLACK_BOT_TOKEN") or None


def eval_set_paths() -> list[Path]:
    """The evaluation question sets named in ``REFERENCE_ARCH_RAG_EVAL_SET``, else the shipped ones."""
    from reference_arch.rag.question_sets import shipped_sets

    return list(settings.value("rag_eval_set") or ()) or shipped_sets()
