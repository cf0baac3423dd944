"""Evaluation question sets: loading, the dev/test split, which questions the index can answer, scores.

A question set is a YAML file (the format is in the README)::

    name: my_docs                      # optional (default: the file name)
    questions:
      - id: install/python-versions    # optional (default: the question); decides dev or test
        question: Which Python versions are supported?
        relevant: ["docs:install.md"]  # ids of the documents that answer it, all of them
        source: https://...            # optional, not read here: where the question was asked

The shipped sets are ``rag/eval_sets/*.yaml``: ``samples`` (the tidepool samples and pandas
``Series``), ``pandas_dataframe`` and ``numpy`` (questions written in users' words, no function names),
and ``users_pandas`` and ``users_numpy`` (real users' questions copied verbatim from Stack Overflow and
GitHub issues, each citing its ``source``).

**Dev and test.** Every question falls in ``dev`` or ``test`` by a hash of its id (sha256, so the split
is the same on every machine and run, and adding a question never moves another): about half each.
Retrieval choices (the mode, k, chunk size, thresholds) are made on dev only; test is only reported.

**What can be judged.** A question is judged only against the answering documents that are in the
index: a docstring shared by several names is one document, found under any of its names; a question
none of whose documents are indexed (a user's own corpus, a package not ingested) is not judged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("eval_sets")
SPLITS = ("dev", "test")
TEST_SHARE = 50  # percent of the questions in the test part
MRR_DEPTH = 10
ALSO_DOCUMENTED = re.compile(r"^Also documented as: (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Question:
    set_name: str
    id: str
    question: str
    relevant: tuple[str, ...]

    @property
    def split(self) -> str:
        return split_of(self.id)


def split_of(question_id: str) -> str:
    """``dev`` or ``test``: the first 8 hex digits of sha256(id), mod 100, below ``TEST_SHARE`` -> test."""
    return "test" if int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % 100 < TEST_SHARE else "dev"


def shipped_sets() -> list[Path]:
    return sorted(SHIPPED_DIR.glob("*.yaml"))


class QuestionSetError(ValueError):
    """A question set that cannot be used; the message names the file and the fault."""


def load_question_set(path: str | Path) -> list[Question]:
    """The questions of one YAML set; ``QuestionSetError`` naming the file and the faulty entry."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise QuestionSetError(f"evaluation set not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise QuestionSetError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise QuestionSetError(f"{path}: expected a mapping with a 'questions' list")
    name = str(data.get("name") or path.stem)
    questions, seen = [], set()
    for n, item in enumerate(data["questions"], 1):
        relevant = item.get("relevant") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not item.get("question") or not relevant or not isinstance(relevant, list):
            raise QuestionSetError(f"{path}: question {n} needs 'question' and a list 'relevant' of the ids "
                                   f"of the documents that answer it: {item!r}")
        qid = str(item.get("id") or item["question"])
        if qid in seen:
            raise QuestionSetError(f"{path}: question id {qid!r} appears twice")
        seen.add(qid)
        questions.append(Question(name, qid, str(item["question"]), tuple(str(r) for r in relevant)))
    return questions


def load_question_sets(paths: list[str | Path] | None = None) -> dict[str, list[Question]]:
    """``{set name: questions}`` of the given files (default: the shipped sets)."""
    sets: dict[str, list[Question]] = {}
    for path in paths or shipped_sets():
        questions = load_question_set(path)
        name = questions[0].set_name if questions else Path(path).stem
        if name in sets:
            raise QuestionSetError(f"{path}: a second set named {name!r}")
        sets[name] = questions
    return sets


def document_names(docs: list[dict]) -> dict[str, str]:
    """``{name: document id}``: each document (``id``, ``format``, ``text``) under its id and, for a
    docstring shared by several names (its text's ``Also documented as:`` line), under
    ``docs:<each other name>`` too."""
    names = {}
    for doc in docs:
        names[doc["id"]] = doc["id"]
        if doc.get("format") == "docstring":
            for line in ALSO_DOCUMENTED.findall(doc.get("text") or ""):
                for other in line.split(","):
                    names.setdefault(f"docs:{other.strip()}", doc["id"])
    return names


def answerable(question: Question, names: dict[str, str]) -> list[str]:
    """The ids of the indexed documents that answer ``question`` (empty: it cannot be judged here)."""
    return list(dict.fromkeys(names[r] for r in question.relevant if r in names))


def score(rankings: list[list[str]], relevant: list[list[str]], k: int) -> dict:
    """Mean recall@k (the share of a question's answering documents in its top k), MRR (reciprocal rank
    of the first answering document within ``MRR_DEPTH``, else 0) and hit rate@k; all 0 for no questions."""
    recalls, reciprocal, hits = [], [], []
    for ranked, wanted in zip(rankings, relevant):
        wanted = set(wanted)
        top = set(ranked[:k])
        recalls.append(len(wanted & top) / len(wanted))
        hits.append(1.0 if wanted & top else 0.0)
        reciprocal.append(1.0 / first_rank(ranked, wanted) if first_rank(ranked, wanted) else 0.0)
    n = max(1, len(rankings))
    return {"questions": len(rankings), "recall": sum(recalls) / n, "mrr": sum(reciprocal) / n,
            "hit_rate": sum(hits) / n}


def sample_order(question) -> str:
    """A stable order spreading the sets (sha256 of ``sample:`` and the question id): a sample of the first
    questions in this order is the same from run to run."""
    import hashlib

    return hashlib.sha256(f"sample:{question.set_name}/{question.id}".encode()).hexdigest()


def first_rank(ranked: list[str], relevant) -> int:
    """Rank of the first answering document (0: not in the top ``MRR_DEPTH``)."""
    relevant = set(relevant)
    return next((i for i, doc in enumerate(ranked[:MRR_DEPTH], 1) if doc in relevant), 0)


def select_mode(dev_scores: dict[str, dict[str, dict]], modes) -> tuple[str, dict[str, float]]:
    """The mode with the best mean dev recall@k over the sets that have judged dev questions (then the
    best mean dev MRR; then the order of ``modes``). ``dev_scores``: ``{set: {mode: score}}``.
    Returns the mode and ``{mode: mean dev recall}`` (empty when no set has dev questions)."""
    judged = [s for s in dev_scores.values() if next(iter(s.values()))["questions"]]
    if not judged:
        return modes[0], {}
    mean = {m: sum(s[m]["recall"] for s in judged) / len(judged) for m in modes}
    mean_mrr = {m: sum(s[m]["mrr"] for s in judged) / len(judged) for m in modes}
    best = max(modes, key=lambda m: (round(mean[m], 6), round(mean_mrr[m], 6), -modes.index(m)))
    return best, mean
