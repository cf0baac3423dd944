"""The prompt templates' evaluation set (``evaluation_set.yaml``): questions with reference answers, split
into dev and test by sha256 of each id, and the score ``prompt/template_evaluation`` compares versions by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

EVALUATION_SET = Path(__file__).resolve().parent / "evaluation_set.yaml"
TEST_SHARE = 30  # percent of the ids in the test split


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    reference: str

    @property
    def split(self) -> str:
        return split_of(self.id)


def split_of(question_id: str) -> str:
    """``test`` when the first 8 hex digits of sha256(id), mod 100, are below ``TEST_SHARE``; else ``dev``."""
    return "test" if int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % 100 < TEST_SHARE else "dev"


def load_evaluation_set(split: str, path: Path = EVALUATION_SET) -> list[EvalQuestion]:
    """The questions of ``split`` (dev | test), in file order; ``ValueError`` in one line otherwise."""
    if split not in ("dev", "test"):
        raise ValueError(f"unknown split {split!r}: use dev or test")
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]
        questions = [EvalQuestion(str(q["id"]), str(q["question"]), str(q["reference"])) for q in items]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise ValueError(f"evaluation set {path}: each question needs id, question, reference "
                         f"({type(err).__name__}: {err})") from None
    return [q for q in questions if q.split == split]


def score(compliance_rate: float, mean_similarity: float) -> float:
    """The one number versions are compared by: the mean of the format compliance rate and the mean
    cosine similarity of answer to reference (both in [0, 1] for sentence embeddings of text)."""
    return round(0.5 * compliance_rate + 0.5 * max(0.0, mean_similarity), 6)


def feedback_questions(split: str) -> list[EvalQuestion]:
    """The approved answers to ``ask prompt`` questions (``common.feedback_cases.regression_cases``: the question,
    its approved answer as reference) that fall in ``split``, oldest first; [] before any feedback. RAG and
    fine-tuned answers are left out: they cite sources a template is not given. ``ValueError`` in one line for
    a damaged regression file."""
    from reference_arch.common.feedback_cases import regression_cases

    cases = [EvalQuestion(str(c["id"]), str(c["question"]), str(c["reference"])) for c in regression_cases("prompt")]
    return [q for q in cases if q.split == split]
