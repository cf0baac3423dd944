"""Documents: one shape for everything that was ingested.

A GitHub issue with its human comments, a Slack thread with its replies, a docs page or a docstring
becomes a document: ``id`` (stable: ``github:owner/repo#12``, ``slack:<channel id>:<thread ts>``,
``docs:guides/io.md``, ``docs:pandas.Series.rename``), ``source_type``, ``format`` (how to split it),
``title``, ``source`` (URL, relative path or dotted name), ``url``, ``text``, ``created_at``,
``updated_at`` (ISO, UTC) and ``content_hash`` (what the chunker and the index compare).

``redact_documents`` masks secrets and personal data in titles and texts (``common/redaction.py``) on the
way out of the warehouse, which keeps the raw text.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from collections import Counter
from typing import Any, Iterable

SLACK_ARCHIVE = "https://slack.com/archives"
DOCUMENT_FIELDS = ("id", "source_type", "format", "title", "source", "url", "text", "created_at", "updated_at",
                   "content_hash")


def iso(value: Any) -> str:
    """A UTC ISO timestamp from a datetime, an ISO string or epoch seconds ('' when unknown)."""
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def content_hash(title: str, source: str, url: str, text: str, *extra: str) -> str:
    return hashlib.sha256("\x1f".join([title, source, url, text, *extra]).encode()).hexdigest()


def document(doc_id: str, source_type: str, fmt: str, title: str, source: str, url: str, text: str,
             created_at: Any, updated_at: Any) -> dict:
    digest = content_hash(title, source, url, text)
    return {"id": doc_id, "source_type": source_type, "format": fmt, "title": title.strip(), "source": source,
            "url": url or "", "text": text, "created_at": iso(created_at), "updated_at": iso(updated_at or created_at),
            "content_hash": digest}


# -- GitHub -----------------------------------------------------------------------------------

def _labels(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [value] if value else []
    return [str(v) for v in value or []]


def github_documents(issues: Iterable[dict], comments: Iterable[dict]) -> list[dict]:
    """An issue (or pull request) and its human comments, in order, as one Markdown document."""
    by_issue: dict[Any, list[dict]] = {}
    for comment in comments:
        if not comment.get("is_bot"):  # coverage reports, stale markers: noise for retrieval
            by_issue.setdefault(comment.get("issue_id"), []).append(comment)
    docs = []
    for issue in issues:
        kind = "Pull request" if issue.get("is_pull_request") else "Issue"
        labels = _labels(issue.get("labels"))
        header = (f"{kind} #{issue['number']} in {issue['repo']} opened by {issue.get('user_login') or 'someone'}, "
                  f"{issue.get('state') or 'open'}" + (f"; labels: {', '.join(labels)}" if labels else ""))
        parts = [f"# {issue['title']}", header, (issue.get("body") or "").strip()]
        thread = sorted(by_issue.get(issue["id"], []), key=lambda c: (iso(c.get("created_at")), c["id"]))
        updated = [issue.get("updated_at")]
        for comment in thread:
            who = comment.get("user_login") or "someone"
            role = f" ({comment['author_association'].lower()})" if comment.get("author_association") else ""
            parts += [f"## {who}{role} replied on {iso(comment.get('created_at'))[:10]}",
                      (comment.get("body") or "").strip()]
            updated.append(comment.get("updated_at") or comment.get("created_at"))
        docs.append(document(
            f"github:{issue['repo']}#{issue['number']}", "github", "markdown",
            f"{issue['repo']}#{issue['number']}: {issue['title']}", issue.get("html_url") or "",
            issue.get("html_url") or "", "\n\n".join(p for p in parts if p), issue.get("created_at"),
            max((iso(u) for u in updated if u), default=""),
        ))
    return docs


# -- Slack ------------------------------------------------------------------------------------

def _slack_text(text: str, names: dict[str, str], channels: dict[str, str]) -> str:
    """Slack's mrkdwn references as plain text: ``<@U1>`` -> ``@name``, ``<url|label>`` -> ``label (url)``."""
    text = re.sub(r"<@([A-Z0-9]+)(?:\|[^>]*)?>", lambda m: "@" + names.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<#([A-Z0-9]+)(?:\|([^>]*))?>", lambda m: "#" + (m.group(2) or channels.get(m.group(1), m.group(1))),
                  text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    return re.sub(r"<(https?://[^>]+)>", r"\1", text)


def slack_documents(messages: Iterable[dict], users: Iterable[dict], channels: Iterable[dict]) -> list[dict]:
    """A thread (its first message and the replies) or a lone message, as one document."""
    names = {u["id"]: u.get("real_name") or u.get("display_name") or u.get("name") or u["id"] for u in users}
    channel_names = {c["id"]: c.get("name") or c["id"] for c in channels}
    threads: dict[tuple[str, str], list[dict]] = {}
    for message in messages:
        if message.get("subtype") == "tombstone":  # "This message was deleted.": never a title or text
            continue
        threads.setdefault((message["channel"], message.get("thread_ts") or message["ts"]), []).append(message)
    docs = []
    for (channel, thread_ts), thread in sorted(threads.items()):
        thread.sort(key=lambda m: float(m["ts"]))
        channel_name = thread[0].get("channel_name") or channel_names.get(channel, channel)
        lines = []
        for message in thread:
            who = names.get(message.get("user") or "", None) or ("release bot" if message.get("bot_id") else "someone")
            text = _slack_text(message.get("text") or "", names, channel_names).strip()
            lines.append(f"**{who}** ({iso(float(message['ts']))[:16].replace('T', ' ')}): {text}")
        first = _slack_text(thread[0].get("text") or "", names, channel_names).strip().splitlines() or [""]
        title = f"#{channel_name}: {first[0][:100]}"
        url = f"{SLACK_ARCHIVE}/{channel}/p{thread_ts.replace('.', '')}"
        docs.append(document(f"slack:{channel}:{thread_ts}", "slack", "markdown", title, url, url,
                             "\n\n".join(lines), float(thread[0]["ts"]), float(thread[-1]["ts"])))
    return docs


# -- docs -------------------------------------------------------------------------------------

def docs_documents(pages: Iterable[dict], partitions: Iterable[str] | None = None) -> list[dict]:
    """Docs pages as documents; only those of ``partitions`` when given (the ones configured now)."""
    wanted = None if partitions is None else set(partitions)
    return [document(p["id"], "docs", p.get("format") or "text", p.get("title") or p["source"], p.get("source") or "",
                     p.get("url") or "", p.get("text") or "", p.get("created_at"), p.get("updated_at"))
            for p in pages if p.get("kind") != "partition" and p.get("text")
            and (wanted is None or p.get("partition") in wanted)]


def load_documents() -> list[dict]:
    """The documents of the sources switched on now (``settings.enabled_sources``), sorted by id: a source
    switched off, a package no longer named or a docs folder that is gone leaves the index, though its rows
    stay in the warehouse until that source is loaded again. Empty when nothing is loaded: a valid state."""
    from reference_arch.sources.docs import partition_fingerprints
    from reference_arch.common.settings import source_enabled
    from reference_arch.rag.warehouse import read_table

    docs = []
    if source_enabled("github"):
        docs += github_documents(read_table("github", "issues"), read_table("github", "comments"))
    if source_enabled("slack"):
        docs += slack_documents(read_table("slack", "messages"), read_table("slack", "users"),
                                read_table("slack", "channels"))
    docs += docs_documents(read_table("docs", "pages"), partition_fingerprints())
    return sorted(docs, key=lambda d: d["id"])


# -- redaction --------------------------------------------------------------------------------

def redact_documents(docs: Iterable[dict], redactor) -> tuple[list[dict], dict[str, Counter]]:
    """Documents with their title and text masked by ``redactor`` (``common.redaction.Redactor``), and
    ``{source_type: Counter of what was masked}``. The content hash covers the masked fields and the
    redaction settings, so a change of either re-chunks exactly the documents it changes."""
    counts: dict[str, Counter] = {}
    masked = []
    for doc in docs:
        found = counts.setdefault(doc["source_type"], Counter())
        title, text = redactor.redact(doc["title"], found), redactor.redact(doc["text"], found)
        masked.append({**doc, "title": title, "text": text,
                       "content_hash": content_hash(title, doc["source"], doc["url"], text, redactor.fingerprint())})
    return masked, counts
