"""Random-looking strings: the secrets checks' second detector, independent of the masker.

The masker (``common.redaction``) knows formats (detect-secrets' plugins and a few more); a key of a format
it does not know, or a piece of one it cut wrong, passes it. This rule knows no format: a run of 20 or more
base64/base64url characters that reads as random is flagged, wherever it stands in prose. It is used only by
the checks over stored text, never to mask: a hit blocks the run rather than guessing text away.

What it leaves (measured on the docstrings of pandas, numpy, dagster, requests, urllib3 and the package
descriptions of this project's environment: no hit in pandas or numpy; the few elsewhere are example
tokens and JWTs of ``secrets`` and PyJWT's docs):

- hex-only runs (commit SHAs, checksums, UUIDs) and sequences such as the base64 alphabet;
- runs without upper case, lower case and digits all three (words, snake_case, version strings);
- identifiers made of words: the case/digit chunks of ``InvalidBase64CharactersDefect`` or
  ``DefaultAsyncHttpx2Client`` average 3 characters or more, a random string's fewer;
- names with many separators (``cross-encoder/ms-marco-MiniLM-L6-v2``);
- a URL's host and path (a Drive or channel id), a ``data:...;base64,`` payload, a ``sha256-`` integrity
  hash; a URL's query and fragment are read.

Its recall on random strings: about 95% at 20 characters, 99% from 32 (``test_secret_recall``).
"""

from __future__ import annotations

import math
import re
from collections import Counter

MIN_CHARS = 20
_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}=*")
_HEX = re.compile(r"[0-9a-fA-F\-]+")
_CHUNKS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SEPARATORS = re.compile(r"[/+_\-]")
_CONTENT = re.compile(r"sha(256|384|512)-")  # an integrity hash (npm, subresource integrity)
MIN_MEAN_WORD_CHARS = 3.0  # the mean length of a run's case/digit chunks from which it reads as words


def shannon_entropy(text: str) -> float:
    """Bits per character of ``text``'s own character frequencies."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0


def min_entropy(n: int) -> float:
    """The entropy a random run of ``n`` characters reaches in about 99 of 100 draws (base64 or
    alphanumeric, measured: 3.6 bits at 20 characters, 4.2 at 32), capped at 4 bits."""
    return min(4.0, 3.5 + 0.025 * (n - MIN_CHARS))


def looks_random(run: str) -> bool:
    """Whether ``run`` (base64/base64url characters, no padding) reads as a random string."""
    from detect_secrets.filters.heuristic import is_sequential_string

    if len(run) < MIN_CHARS or _HEX.fullmatch(run) or is_sequential_string(run):
        return False
    if not (re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run)):
        return False
    if len(_SEPARATORS.findall(run)) > 2 + len(run) // 16:
        return False
    chunks = _CHUNKS.findall(run)
    if sum(map(len, chunks)) / len(chunks) >= MIN_MEAN_WORD_CHARS:
        return False
    return shannon_entropy(run) >= min_entropy(len(run))


def _in_url_path(text: str, start: int) -> bool:
    """Whether ``start`` lies in the host or path of a URL (the word it is in has ``://`` and no ``?``
    or ``#`` before it), not in its userinfo (no ``@`` yet after ``://``, one further on in the word)."""
    word = re.split(r"[\s(<\[\"'`]", text[max(0, start - 2000):start])[-1]
    if "://" not in word or "?" in word or "#" in word:
        return False
    rest = re.match(r"\S*", text[start:]).group()
    return "@" in word.split("://", 1)[1] or "@" not in rest


def random_string_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every random-looking run in ``text``."""
    spans = []
    for match in _RUN.finditer(text or ""):
        run = match.group().rstrip("=")
        if looks_random(run) and not _in_url_path(text, match.start()) and not _CONTENT.match(run) \
                and text[max(0, match.start() - 7):match.start()] != "base64,":  # a data URI's payload
            spans.append(match.span())
    return spans
