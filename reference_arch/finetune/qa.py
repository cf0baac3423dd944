"""Question/answer pairs from GitHub issues: the question is the issue, the answer the first
reply by the repository's people.

Pure functions over plain dicts, so every rule is tested without a pipeline. Each filter counts
what it removed: the counts go into the asset's metadata.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Iterable

# GitHub's author_association values of the people who speak for a repository.
MAINTAINER_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})

_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)  # issue templates' hidden instructions
_QUOTE = re.compile(r"^\s*>.*$", re.MULTILINE)  # a reply quoting the issue repeats the question
_BLANK_LINES = re.compile(r"\n{3,}")
_SPACES = re.compile(r"[ \t]+\n")


def clean_text(text: str | None) -> str:
    """Hidden template comments removed, trailing spaces and runs of blank lines collapsed."""
    text = _HTML_COMMENT.sub("", (text or "").replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", _SPACES.sub("\n", text)).strip()


def clean_answer(text: str | None) -> str:
    return clean_text(_QUOTE.sub("", text or ""))


def is_bot(login: str | None, user_type: str | None) -> bool:
    return (user_type or "").lower() == "bot" or (login or "").lower().endswith("[bot]")


def question_text(title: str, body: str) -> str:
    return f"{title.strip()}\n\n{body}".strip()


def question_fingerprint(text: str) -> str:
    """The question's identity: its text, case and spacing ignored (a question asked again has the same one)."""
    return hashlib.sha256(" ".join(text.casefold().split()).encode()).hexdigest()


def _first_answer(replies: list[dict], counts: Counter) -> tuple[dict, str] | None:
    """The earliest reply by the repository's people that says something, with its cleaned text;
    bot replies and empty ones are counted."""
    for reply in sorted(replies, key=lambda c: str(c["created_at"])):
        if is_bot(reply.get("author"), reply.get("author_type")):
            counts["bot_replies"] += 1
            continue
        if reply.get("author_association") not in MAINTAINER_ASSOCIATIONS:
            continue
        text = clean_answer(reply.get("body"))
        if not text:
            counts["empty_replies"] += 1
            continue
        return reply, text
    return None


def build_pairs(issues: Iterable[dict], comments: Iterable[dict]) -> tuple[list[dict], Counter]:
    """Pairs from issues and their comments, and the count of everything filtered out.

    ``issues``: dicts with ``id``, ``number``, ``title``, ``body``, ``created_at``, ``url``,
    ``repo``, ``is_pull_request``. ``comments``: dicts with ``issue_id``, ``body``,
    ``created_at``, ``author``, ``author_type``, ``author_association``.
    """
    replies: dict[object, list[dict]] = {}
    for comment in comments:
        replies.setdefault(comment["issue_id"], []).append(comment)

    counts: Counter = Counter()
    pairs: list[dict] = []
    seen: set[str] = set()
    for issue in sorted(issues, key=lambda i: (str(i["created_at"]), str(i["id"]))):
        counts["issues"] += 1
        if issue.get("is_pull_request"):
            counts["pull_requests"] += 1
            continue
        body = clean_text(issue.get("body"))
        if not body:
            counts["empty_body"] += 1
            continue
        answer = _first_answer(replies.get(issue["id"], []), counts)
        if answer is None:
            counts["no_answer"] += 1
            continue
        question = question_text(issue.get("title") or "", body)
        fingerprint = question_fingerprint(question)
        if fingerprint in seen:
            counts["duplicates"] += 1
            continue
        seen.add(fingerprint)
        reply, text = answer
        counts["cleaned"] += int(body != (issue.get("body") or "").strip() or text != (reply.get("body") or "").strip())
        pairs.append({
            "issue_id": issue["id"],
            "repo": issue.get("repo") or "",
            "number": issue.get("number"),
            "url": issue.get("url") or "",
            "created_at": str(issue["created_at"]),
            "question": question,
            "answer": text,
            "answer_author": reply.get("author") or "",
            "answer_association": reply.get("author_association"),
            "fingerprint": fingerprint,
        })
    counts["pairs"] = len(pairs)
    return pairs, counts


def drop_duplicates(pairs: list[dict]) -> tuple[list[dict], int]:
    """Pairs whose question was already seen (in an earlier month) removed; the oldest is kept."""
    kept, seen = [], set()
    for pair in sorted(pairs, key=lambda p: (p["created_at"], str(p["issue_id"]))):
        if pair["fingerprint"] not in seen:
            seen.add(pair["fingerprint"])
            kept.append(pair)
    return kept, len(pairs) - len(kept)


def redact_pairs(pairs: list[dict], redactor, counts: dict[str, Counter]) -> list[dict]:
    """Pairs with question and answer masked by ``redactor`` (``common.redaction.Redactor``); what was
    masked is added to ``counts[repo]``. The fingerprint stays that of the raw question: duplicates are
    found on what was asked, whatever the masking rules."""
    masked = []
    for pair in pairs:
        found = counts.setdefault(pair["repo"] or "unknown", Counter())
        masked.append({**pair, "question": redactor.redact(pair["question"], found),
                       "answer": redactor.redact(pair["answer"], found)})
    return masked
