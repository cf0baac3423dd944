"""The masker and the secrets checks measured on a corpus of secret formats (``secret_corpus``): every known
format masked whole (a JWT with its signature, a token split over lines, a base64-encoded key), and what
the masker cannot know (a random key of no known format) failing the check, with no false positive on text
that holds no secret. ``-s`` prints the per-format table."""

from __future__ import annotations

import pytest

from reference_arch.common import redaction
from reference_arch.common.redaction import find_secrets, redact, secrets_check
from reference_arch_tests.common.secret_corpus import measure, table

# What no detector here sees: a hex string without context reads like a checksum or a commit SHA.
UNSEEN = {"Hex High Entropy String"}
# Not masked (no known format), failing the check instead: random keys.
CHECK_ONLY = {"Base64 High Entropy String", "random 32-byte key (openssl rand -base64 32)", "random 32-byte key wrapped",
              "random 24-char API key, no prefix", "random 40-char API key, no prefix"}


@pytest.fixture(scope="module")
def recall() -> dict[str, dict]:
    rows = measure(redaction)
    print("\n" + table(rows))
    return rows


def test_every_known_format_is_masked_whole(recall):
    missed = {fmt: f"{row['masked']}/{row['n']}" for fmt, row in recall.items()
              if row["group"] != "false positives" and fmt not in UNSEEN | CHECK_ONLY and row["masked"] < row["n"]}
    assert missed == {}


def test_what_the_masker_misses_fails_the_check(recall):
    escapes = {fmt: row["escapes"] / row["n"] for fmt, row in recall.items() if fmt not in UNSEEN}
    # a random key of 24 characters reads as random in about 9 draws of 10 (random_strings: 95% at 20)
    assert escapes.pop("random 24-char API key, no prefix") <= 0.2
    assert {fmt: share for fmt, share in escapes.items() if share} == {}
    assert recall["(no secret)"]["masked"] == recall["(no secret)"]["flagged"] == 0


def test_the_issue_inputs():
    """issue 22/26: a JWT's signature survived masking, a token split over two lines and a base64-encoded key
    were not masked at all, and the check passed the JWT's remains."""
    import base64

    signature = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0." + signature
    assert redact(f"Use {jwt} to call it.") == "Use [SECRET:json_web_token] to call it."
    token = "ghp_" + "aB3dE6gH9jK2mN5pQ8" + "sT1vW4yZ7bC0eF3hJ6"
    assert redact(f"my token {token[:22]}\n{token[22:]} fails") == "my token [SECRET:github_token] fails"
    assert redact(f"token: {base64.b64encode(token.encode()).decode()}") == "token: [SECRET:github_token]"
    assert find_secrets(f"[SECRET:json_web_token]{signature}") == {"secret:random_string": 1}
    failed = secrets_check({"chunk-1": f"[SECRET:json_web_token]{signature}"}, "chunks")
    assert not failed.passed and "random-looking string" in failed.description
    assert signature not in failed.description + str(failed.metadata)
