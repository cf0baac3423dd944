"""User feedback on answers: one record per verdict, the store every feedback consumer reads.

A verdict (``up``/``down``) on a question run's answer is kept with what was judged (question, answer,
sources, model, template) in ``<home>/feedback/<YYYY-MM-DD>.jsonl``, one JSON object per line, one file
per day (the ``feedback`` asset's daily partitions). These files are the source of truth: they are
only appended to, each append rewriting the day's file atomically, and never rebuilt.

    append_feedback(record)            # FeedbackError when the run already has a verdict
    read_feedback()                    # every record, oldest first
    read_feedback(day="2026-11-30")    # one day's
    approval(records)                  # {"up", "down", "total", "approval_rate"}

A comment is user text at the door, as a question is: made valid Unicode (bytes the command line could not
decode become U+FFFD) and bounded (``MAX_COMMENT_CHARS``), by ``feedback_record``, whoever launched the run,
and by ``feedback_run_config`` before a run is made.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

VERDICTS = ("up", "down")
# Keys of every feedback record (``target`` is the ask target: prompt | rag | finetuned).
FEEDBACK_KEYS = ("run_id", "verdict", "comment", "target", "question", "answer", "sources", "model",
                 "template", "recorded_at")


# A comment says why, in a few words; the day's file is rewritten whole on every verdict.
MAX_COMMENT_CHARS = 2000


class FeedbackError(ValueError):
    """A verdict refused: unknown run, not a question run, bad verdict, or given twice."""


def feedback_dir() -> Path:
    from reference_arch.common.settings import home_path

    return home_path("feedback")


def day_of(recorded_at: str) -> str:
    return recorded_at[:10]


def check_verdict(verdict: str) -> str:
    """``verdict`` when it is one of ``VERDICTS``; ``FeedbackError`` in one line otherwise."""
    if verdict not in VERDICTS:
        raise FeedbackError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    return verdict


def check_comment(comment: str | None) -> str:
    """``comment`` stripped and made valid Unicode (``unicode_text.valid_text``, as questions are);
    ``FeedbackError`` in one line when it is longer than ``MAX_COMMENT_CHARS``."""
    from reference_arch.common.redaction import counted_length
    from reference_arch.common.unicode_text import valid_text

    text = valid_text(comment or "").strip()
    if (length := counted_length(text)) > MAX_COMMENT_CHARS:  # masked once already: a placeholder counts as one
        raise FeedbackError(f"the comment is {length} characters long, over the limit of {MAX_COMMENT_CHARS}: "
                            "say why in fewer words")
    return text


def feedback_run_config(run_id: str, verdict: str, comment: str = "") -> dict[str, Any]:
    """Run config for ``feedback_job``, the comment checked (``check_comment``) and masked (``common.redaction``):
    Dagster keeps a run's config in its run database and shows it in the UI (``record_feedback`` masks it
    again, for config sent another way). ``FeedbackError`` for a comment over the limit, ``ValueError`` for a
    ``REFERENCE_ARCH_REDACT`` that names no type."""
    from reference_arch.common.redaction import redact

    comment = check_comment(comment)
    return {"ops": {"record_feedback": {"config": {"run_id": run_id, "verdict": verdict,
                                                   "comment": redact(comment) if comment else ""}}}}


def approval(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"up", "down", "total": counts, "approval_rate": up / total (0.0 for no records)}``."""
    verdicts = [r["verdict"] for r in records]
    up, down = verdicts.count("up"), verdicts.count("down")
    return {"up": up, "down": down, "total": up + down, "approval_rate": round(up / (up + down), 4) if verdicts else 0.0}


def feedback_record(run_id: str, verdict: str, *, target: str, question: str, answer: str,
                    sources: list[dict] | None = None, model: str = "", template: str | None = None,
                    comment: str = "", recorded_at: str | None = None) -> dict[str, Any]:
    """A feedback record with every ``FEEDBACK_KEYS`` key; ``FeedbackError`` for a verdict not in ``VERDICTS``
    or a comment over ``MAX_COMMENT_CHARS`` (see ``check_comment``)."""
    check_verdict(verdict)
    return {"run_id": run_id, "verdict": verdict, "comment": check_comment(comment), "target": target,
            "question": question, "answer": answer, "sources": list(sources or []), "model": model,
            "template": template, "recorded_at": recorded_at or datetime.now(timezone.utc).isoformat()}


def read_feedback(day: str | None = None, root: Path | None = None) -> list[dict[str, Any]]:
    """The records of ``day`` (``YYYY-MM-DD``), or of every day, oldest first."""
    root = root or feedback_dir()
    files = [root / f"{day}.jsonl"] if day else sorted(root.glob("*.jsonl"))
    records: list[dict[str, Any]] = []
    for path in files:
        if path.exists():
            records += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return records


def verdict_for(run_id: str, records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in records if r["run_id"] == run_id), None)


def append_feedback(record: dict[str, Any], root: Path | None = None) -> Path:
    """Add ``record`` to its day's file (atomically, under the store's file lock: two feedback runs at once,
    each in its own process, neither lose a verdict nor judge one run twice); ``FeedbackError`` when its run
    already has a verdict."""
    from filelock import FileLock

    from reference_arch.common.atomic import write_text

    root = root or feedback_dir()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".lock"), timeout=60):
        earlier = verdict_for(record["run_id"], read_feedback(root=root))
        if earlier is not None:
            raise FeedbackError(f"run {record['run_id']} already has a verdict ({earlier['verdict']!r}, "
                                f"recorded {earlier['recorded_at']}): one verdict per answer")
        day = day_of(record["recorded_at"])
        lines = [json.dumps(r, ensure_ascii=False) for r in read_feedback(day, root)]
        lines.append(json.dumps(record, ensure_ascii=False))
        return write_text(root / f"{day}.jsonl", "\n".join(lines) + "\n")
