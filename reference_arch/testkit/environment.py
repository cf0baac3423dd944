"""Environment variables set for a block and put back after it, and the names that switch the project
off its offline defaults (secrets and backend switches), which a test or benchmark clears."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from unittest import mock

SECRETS_AND_SWITCHES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "WEAVIATE_URL", "WEAVIATE_API_KEY", "GITHUB_TOKEN",
                        "SLACK_BOT_TOKEN", "REFERENCE_ARCH_LLM_MODEL", "REFERENCE_ARCH_REDACT",
                        "REFERENCE_ARCH_REDACT_PHONE_REGIONS")


@contextlib.contextmanager
def scoped_environment(values: dict[str, str] | None = None, unset: Iterable[str] = ()) -> Iterator[None]:
    """``values`` set and ``unset`` removed inside the block; the whole environment as it was after it
    (whatever the block changed too)."""
    with mock.patch.dict(os.environ, values or {}):
        for name in unset:
            os.environ.pop(name, None)
        yield
