"""Questions asked at run time, and the answers the question jobs return.

Every question job starts with a ``question`` asset configured by ``QuestionConfig`` and ends
with an ``answer`` asset whose value is an ``answer_record``; the CLI and the GraphQL client
read that value or its metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import dagster as dg

from reference_arch.common.metadata import table

DEFAULT_MAX_QUESTION_CHARS = 4000


class QuestionError(ValueError):
    """A question refused before any model call."""


class QuestionConfig(dg.Config):
    question: str
    max_chars: int = DEFAULT_MAX_QUESTION_CHARS
    model: Optional[str] = None  # this run's model (a name in common/llm/prices.yaml); unset: the resource's
    policy: Optional[str] = None  # this run's routing policy: fixed | cheapest | task; unset: the resource's


@dataclass(frozen=True)
class Question:
    """The value of every ``question`` asset: the validated question, masked (``text``), and this run's model and
    routing policy (``QuestionConfig``; None: the LLM resource's). The assets after it receive it as their
    ``question`` input, so a run's own values flow forward instead of being read back from its event log."""

    text: str
    model: Optional[str] = None
    policy: Optional[str] = None

    def routing(self) -> dict[str, str]:
        """This run's model/policy override as keyword arguments of ``LLMResource.generate``."""
        return {k: v for k, v in (("model", self.model), ("policy", self.policy)) if v}


def validate_question(question: str, max_chars: int = DEFAULT_MAX_QUESTION_CHARS) -> str:
    """The question stripped and made valid Unicode (undecodable bytes and lone surrogates become
    U+FFFD, ``unicode_text.repair_text``); ``QuestionError`` when it is empty or too long."""
    from reference_arch.common.redaction import counted_length
    from reference_arch.common.unicode_text import valid_text

    text = valid_text(question or "").strip()
    if not text:
        raise QuestionError("the question is empty: ask something")
    if (length := counted_length(text)) > max_chars:  # masked in the run config: a placeholder counts as one
        raise QuestionError(
            f"the question is {length} characters long, over the limit of {max_chars} "
            "(raise max_chars in the question config to allow longer questions)"
        )
    return text


def accept_question(context: dg.AssetExecutionContext, config: QuestionConfig) -> Question:
    """The body of every ``question`` asset: the validated question with secrets and personal data
    masked (``common.redaction``: before any model, index, metadata or log sees it), recorded in
    metadata, with this run's model and policy; or a failure naming the problem before any model is called."""
    from collections import Counter

    from reference_arch.common.redaction import placeholder_counts, redactor
    from reference_arch.common.unicode_text import repair_text

    try:
        text = validate_question(config.question, config.max_chars)
        text = redactor().redact(text, Counter())
        masked = placeholder_counts(text)  # masked here, or already in the run config (question_run_config)
    except (QuestionError, ValueError) as err:  # ValueError: a REFERENCE_ARCH_REDACT that names no type
        raise dg.Failure(description=f"question refused: {err}") from None
    repaired = repair_text(config.question or "")[1]
    if repaired:
        context.log.warning(f"the question held {repaired} characters that are not valid Unicode; "
                            "they were replaced with U+FFFD")
    if masked:
        context.log.info(f"masked in the question: {', '.join(f'{n} {k}' for k, n in sorted(masked.items()))}")
    routing = {f"llm_{k}": v for k, v in (("model", config.model), ("policy", config.policy)) if v}
    context.add_output_metadata({"question": text, "characters": len(text), "repaired_characters": repaired,
                                 "redacted": sum(masked.values()), **routing})
    return Question(text, config.model, config.policy)


def question_run_config(location: str, question: str) -> dict[str, Any]:
    """Run config for ``<location>_question_job`` (its first asset is ``<location>/question``), the question
    masked (``common.redaction``): Dagster keeps a run's config in its run database and shows it in the UI.
    ``ValueError`` for a ``REFERENCE_ARCH_REDACT`` that names no type."""
    from reference_arch.common.redaction import redact

    return {"ops": {f"{location}__question": {"config": {"question": redact(question)}}}}


# The models an answer may come from besides the packaged default (REFERENCE_ARCH_LLM_MODEL=registry:NAME@latest):
# pretrain's base model, its supervised fine-tuned variant, or that one preference-tuned. Answer assets list
# them as deps so the UI draws that optional lineage across code locations; by default no answer reads them.
REGISTRY_MODELS = [dg.AssetKey(["pretrain", "published_model"]), dg.AssetKey(["finetune", "published_model"]),
                   dg.AssetKey(["finetune", "preference_published_model"])]

# Keys every answer record has, whatever the question job: what `reference-arch ask --json` prints
# (plus `run_id`, added by the CLI), before any job-specific extras.
ANSWER_KEYS = ("question", "answer", "sources", "model", "usage")


# An answer that declines rather than answers ("I'm sorry, but I can't ..."); "I do not know", which the
# grounded prompt asks for when the sources lack the answer, is an answer.
_REFUSAL = re.compile(r"^\W*(?:i'?m sorry|i am sorry|sorry, but|i (?:can(?:'|no)t|cannot|won'?t) (?:help|assist|answer|"
                      r"provide|comply)|as an ai\b)", re.IGNORECASE)


def require_answer(text: str, model: str) -> str:
    """``text`` when it answers; ``dg.Failure`` in one line when the model returned nothing or refused (the run
    fails and records nothing: earlier answers stay as they were)."""
    if not text.strip():
        raise dg.Failure(description=f"{model} returned an empty answer, so nothing was recorded: ask again, or "
                                     "choose another model (REFERENCE_ARCH_LLM_MODEL, OPENAI_API_KEY)")
    if _REFUSAL.match(text):
        first = " ".join(text.split())[:80]
        raise dg.Failure(description=f"{model} declined to answer ({first!r}), so nothing was recorded: rephrase "
                                     "the question, or choose another model")
    return text


def answer_record(answer: str, model: str, usage: dict[str, Any], sources: list[dict] | None = None, *,
                  question: str, **extra: Any) -> dict[str, Any]:
    """The value of every ``answer`` asset: ``ANSWER_KEYS``, then the job's own ``extra`` keys."""
    return {"question": question, "answer": answer, "sources": sources or [], "model": model, "usage": usage,
            **extra}


# The answer record kept in the answer's metadata (``record_metadata``): the IO manager keeps only the newest
# run's value of an unpartitioned asset, the event log keeps every run's (feedback on an older run reads it).
RECORD_METADATA_KEY = "answer_record"
_HEAVY_SOURCE_KEYS = ("text", "chunk_ids")  # the retrieved chunks themselves stay in the run's sources asset


def record_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """``{"answer_record": JSON}``: the answer record (sources without their chunk text) as metadata of its
    materialization, so a run's answer can be read back from the event log (``common.run_answers``)."""
    sources = [{k: v for k, v in s.items() if k not in _HEAVY_SOURCE_KEYS} for s in record.get("sources", [])]
    return {RECORD_METADATA_KEY: dg.MetadataValue.json({**record, "sources": sources})}


def answer_metadata(question: str, answer_md: str, **extra: Any) -> dict[str, Any]:
    """What every ``answer`` asset shows in the UI first: the question it answered and the answer."""
    return {"question": dg.MetadataValue.text(question), "answer": dg.MetadataValue.md(answer_md), **extra}


def sources_table(sources: list[dict]) -> dg.TableMetadataValue:
    """Retrieved sources as table metadata, best first."""
    return table([{**s, "rank": i + 1, "score": float(s.get("score", 0.0))} for i, s in enumerate(sources)],
                 [("rank", "int"), "title", "source", ("score", "float")])


# CommonMark lets any ASCII punctuation character be backslash-escaped (spec, "Backslash escapes").
_MARKDOWN_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def markdown_text(text: str) -> str:
    """``text`` as Markdown that renders as that plain text: every ASCII punctuation character
    backslash-escaped (so a leading ``#`` is no heading, ``*`` no emphasis, ``<`` no HTML), leading
    spaces kept as no-break spaces (four of them would make a code block), and each line break kept
    (two trailing spaces: a CommonMark hard line break). Model output is shown as text, never as markup."""
    lines = []
    for line in text.splitlines():
        body = line.lstrip(" ")
        escaped = "".join("\\" + c if c in _MARKDOWN_PUNCTUATION else c for c in body)
        lines.append("&nbsp;" * (len(line) - len(body)) + escaped)
    return "  \n".join(lines)


def markdown_code(text: str, language: str = "") -> str:
    """``text`` as a fenced code block whose fence no backtick run inside it can close (CommonMark: a
    closing fence is at least as long as the opening one)."""
    import re

    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}{language}\n{text}\n{fence}"
