"""Corpus cleaning: exact and near-duplicate removal, a language filter, length and generated-file rules.

Order matters for cost, not for the result's meaning: exact duplicates go first (a hash), then the
per-file rules, then near-duplicates (MinHash LSH, the costliest) among what is left. Files are
visited in path order, so the first of a group of duplicates is the one kept, run after run.
"""

from __future__ import annotations

import ast
import collections
import re
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional

# A comment line may put words between "generated" and "by" ("# system configuration generated and
# used by the sysconfig module": the build-config dump _sysconfigdata_*.py, whose dict literal made a
# whole validation split unreadable); prose elsewhere keeps the strict form.
GENERATED = re.compile(r"auto-?generated|generated (?:by|from|with)|do not edit|@generated"
                       r"|^[ \t]*#[^\n]*\bgenerated\b[^\n]*\b(?:by|from|with)\b", re.IGNORECASE | re.MULTILINE)
_CODE_TOKENS = re.compile(r"\w+|[^\w\s]")
REASONS = ("exact_duplicate", "not_python", "too_short", "too_long", "generated", "minified", "near_duplicate")


@dataclass(frozen=True)
class Rules:
    min_bytes: int = 200
    max_bytes: int = 100_000
    max_line_length: int = 1000  # a longer line means minified or embedded data
    max_mean_line_length: float = 100.0
    generated_header_chars: int = 2000  # where generators leave their "do not edit" notes
    near_duplicate_threshold: float = 0.85  # estimated Jaccard similarity of token shingles
    num_perm: int = 128
    shingle_size: int = 5


def parse_python(text: str, attempts: int = 3) -> ast.Module:
    """``ast.parse(text)`` with warnings silenced (invalid escapes in old code). CPython 3.11 can
    raise a spurious ``SystemError: AST constructor recursion depth mismatch`` when threads parse
    at once (python/cpython#106905, fixed in 3.12): that one is retried, since the state it
    complains of is reset at each call. Raises SyntaxError, ValueError, RecursionError as ast does."""
    for attempt in range(attempts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return ast.parse(text)
            except SystemError as err:
                if "recursion depth mismatch" not in str(err) or attempt == attempts - 1:
                    raise
    raise AssertionError("unreachable")


def parses(text: str) -> bool:
    try:
        parse_python(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def rule_violation(text: str, rules: Rules) -> Optional[str]:
    """Why a file is not kept by the per-file rules, or None."""
    size = len(text.encode())
    if size < rules.min_bytes:
        return "too_short"
    if size > rules.max_bytes:
        return "too_long"
    if GENERATED.search(text[: rules.generated_header_chars]):
        return "generated"
    lengths = [len(line) for line in text.splitlines()] or [0]
    if max(lengths) > rules.max_line_length or sum(lengths) / len(lengths) > rules.max_mean_line_length:
        return "minified"
    if not parses(text):
        return "not_python"
    return None


def minhash(text: str, rules: Rules, hashvalues=None):
    """The MinHash of ``text``'s token shingles, or the one whose ``hashvalues`` were computed already."""
    from datasketch import MinHash

    if hashvalues is not None:  # the scheme datasketch computes them with by default (2.x: affine32)
        return MinHash(num_perm=rules.num_perm, seed=1, hashvalues=hashvalues, scheme=MinHash(1).scheme)
    tokens = _CODE_TOKENS.findall(text)
    k = rules.shingle_size
    shingles = {" ".join(tokens[i:i + k]).encode() for i in range(max(1, len(tokens) - k + 1))}
    m = MinHash(num_perm=rules.num_perm, seed=1)
    m.update_batch(list(shingles))
    return m


def file_verdict(f: dict, rules: Rules) -> dict:
    """One file's own verdict, needing no other file (so it runs wherever the engine puts it):
    ``{"path", "reason": a rule it breaks or "", "hashvalues": its MinHash signature when kept}``."""
    reason = rule_violation(f["text"], rules)
    return {"path": f["path"], "reason": reason or "",
            "hashvalues": [] if reason else [int(v) for v in minhash(f["text"], rules).hashvalues]}


def near_duplicates(files: Iterable[dict], rules: Rules,
                    signatures: Optional[dict[str, list[int]]] = None) -> tuple[list[dict], list[tuple[str, str, float]]]:
    """(kept, [(removed path, kept path it duplicates, estimated Jaccard)]), first come first kept; each
    file's MinHash from ``signatures`` (path -> hash values) when given."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=rules.near_duplicate_threshold, num_perm=rules.num_perm)
    kept_signatures, kept, pairs = {}, [], []
    for f in files:
        m = minhash(f["text"], rules, (signatures or {}).get(f["path"]))
        # LSH returns candidates; keep only those whose estimated similarity clears the threshold.
        matches = sorted(((m.jaccard(kept_signatures[c]), c) for c in lsh.query(m)), reverse=True)
        if matches and matches[0][0] >= rules.near_duplicate_threshold:
            pairs.append((f["path"], matches[0][1], matches[0][0]))
            continue
        lsh.insert(f["path"], m)
        kept_signatures[f["path"]] = m
        kept.append(f)
    return kept, pairs


def clean(files: list[dict], rules: Rules, where: Optional[str] = None) -> tuple[list[dict], list[dict], collections.Counter]:
    """(kept files, removed [{"path", "reason", "detail"}], counts by reason). Each file's verdict and
    signature are computed where ``where`` says (``engine.map_rows``: here, or on Ray); which duplicate is kept
    is decided here, in path order."""
    from functools import partial

    from reference_arch.pretrain.engine import map_rows

    removed: list[dict] = []
    seen: dict[str, str] = {}
    unique = []
    for f in sorted(files, key=lambda f: f["path"]):
        if f["sha256"] in seen:
            removed.append({"path": f["path"], "reason": "exact_duplicate", "detail": seen[f["sha256"]]})
            continue
        seen[f["sha256"]] = f["path"]
        unique.append(f)
    verdicts = map_rows(partial(file_verdict, rules=rules), [{"path": f["path"], "text": f["text"]} for f in unique],
                        where)
    survivors, signatures = [], {}
    for f, verdict in zip(unique, verdicts):
        if verdict["reason"]:
            removed.append({"path": f["path"], "reason": verdict["reason"], "detail": ""})
        else:
            survivors.append(f)
            signatures[f["path"]] = verdict["hashvalues"]
    kept, pairs = near_duplicates(survivors, rules, signatures)
    removed += [{"path": a, "reason": "near_duplicate", "detail": f"{b} (Jaccard ~{j:.2f})"} for a, b, j in pairs]
    counts = collections.Counter(r["reason"] for r in removed)
    return kept, removed, counts
