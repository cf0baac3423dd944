"""Feedback turned into evaluation cases: rejected answers become candidate questions for review,
approved ones regression cases that the prompt and RAG evaluations score (when the file exists).

Both files are YAML under ``<home>/feedback/eval/``, rebuilt from the feedback store
(``common.feedback.read_feedback``) by the ``prompt/feedback_eval_cases`` asset:

- ``candidates.yaml``: ``{"questions": [{id, question, rejected_answer, comment, target, model,
  template, sources, run_id}]}``, newest last. A person reviews them, writes a reference answer and
  moves the good ones into an evaluation set; nothing reads this file automatically.
- ``regression.yaml``: ``{"name": "feedback", "questions": [{id, question, reference, relevant, target,
  model, template, run_id}]}``: ``reference`` is the approved answer (prompt's evaluation set shape),
  ``relevant`` the ids of the documents the approved RAG answer cited (a RAG question set's shape;
  empty for answers without sources).

Ids are ``feedback/<run id>``: the evaluations' sha256 split puts each case in dev or test for good.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

REGRESSION_SET_NAME = "feedback"


def eval_cases_dir() -> Path:
    from reference_arch.common.settings import home_path

    return home_path("feedback", "eval")


def candidates_path() -> Path:
    return eval_cases_dir() / "candidates.yaml"


def regression_path() -> Path:
    return eval_cases_dir() / "regression.yaml"


def case_id(run_id: str) -> str:
    return f"feedback/{run_id}"


def _document_ids(sources: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(s.get("document_id") or s.get("id")) for s in sources
                              if s.get("document_id") or s.get("id")))


def eval_cases(records: Iterable[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """``(candidates, regression cases)`` of feedback ``records``: one per ``down`` and per ``up`` verdict."""
    candidates, regression = [], []
    for r in records:
        shared = {"id": case_id(r["run_id"]), "question": r["question"]}
        about = {"target": r["target"], "model": r["model"], "template": r["template"], "run_id": r["run_id"]}
        if r["verdict"] == "down":
            candidates.append({**shared, "rejected_answer": r["answer"], "comment": r["comment"], **about,
                               "sources": [{k: s.get(k) for k in ("id", "title", "source", "url") if s.get(k)}
                                           for s in r["sources"]]})
        else:
            regression.append({**shared, "reference": r["answer"], "relevant": _document_ids(r["sources"]), **about})
    return candidates, regression


def write_eval_cases(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Rewrite both files (atomically) from ``records``; returns ``{"candidates", "regression": counts,
    "candidates_path", "regression_path"}``."""
    import yaml

    from reference_arch.common.atomic import write_text

    candidates, regression = eval_cases(records)
    dump = dict(allow_unicode=True, sort_keys=False, width=100)
    write_text(candidates_path(), "# Rejected answers: candidate evaluation questions, for review (written by "
                                  "prompt/feedback_eval_cases)\n" + yaml.safe_dump({"questions": candidates}, **dump))
    write_text(regression_path(), "# Approved answers: regression cases of the prompt and RAG evaluations (written "
                                  "by prompt/feedback_eval_cases)\n"
               + yaml.safe_dump({"name": REGRESSION_SET_NAME, "questions": regression}, **dump))
    return {"candidates": len(candidates), "regression": len(regression),
            "candidates_path": str(candidates_path()), "regression_path": str(regression_path())}


def regression_cases(target: str | None = None) -> list[dict[str, Any]]:
    """The regression cases (all, or those of ask ``target``: prompt | rag | finetuned); [] when the file
    is missing. ``ValueError`` in one line when it is not the YAML ``write_eval_cases`` writes."""
    import yaml

    path = regression_path()
    if not path.exists():
        return []
    try:
        cases = yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]
        cases = [c for c in cases if c["id"] and c["question"] and c["reference"] is not None]
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise ValueError(f"regression cases {path}: not the file prompt/feedback_eval_cases writes "
                         f"({type(err).__name__}: {err}); materialize it again") from None
    return [c for c in cases if target is None or c.get("target") == target]
