"""Untrusted text (documents, issues, messages, questions) inside prompts, unable to forge their structure.

A prompt marks where data starts and ends: the RAG prompt fences each source, the local models'
chat template starts each message with a ``### Role:`` line. Text that contains those markers
would close its own fence or open a message of its own, and whatever follows would no longer read
as data. So fences use a tag derived from the text they enclose (a text cannot contain a hash of
itself, and the prompt stays deterministic for the response cache), header lines are kept to one
line, and role lines inside message text are escaped.
"""

from __future__ import annotations

import hashlib
import re

# The DEFAULT_CHAT_TEMPLATE's message header ("### User:"), at the start of a line.
_ROLE_LINE = re.compile(r"(?im)^(?=### (?:system|user|assistant|tool|function|human|ai)\s*:)")


def fence_tag(*texts: str, prefix: str = "source") -> str:
    """A tag none of ``texts`` contains: ``<prefix>-<12 hex digits of their hash>``."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass"))
    while True:  # a text holding the tag would need its own hash; loop for the impossible anyway
        tag = f"{prefix}-{digest.hexdigest()[:12]}"
        if not any(tag in t for t in texts):
            return tag
        digest.update(b"\x00")


def one_line(text: str) -> str:
    """``text`` on one line (newlines and other line breaks become spaces): for headers outside fences."""
    return " ".join(str(text).split())


def escape_role_markers(text: str) -> str:
    """``text`` with lines that would read as a chat-template message header escaped (``\\### User:``)."""
    return _ROLE_LINE.sub("\\\\", text)
