"""Which model answers: a routing policy over the models of the price table.

Policies:
- ``fixed`` (default): the configured model; the other listed models are only fallbacks, in order.
- ``cheapest``: the listed models by estimated cost of the call, cheapest first.
- ``task``: the question's task (``classify_task``) picks the models whose ``tasks`` in the price table
  include it, cheapest first; the other models follow as fallbacks.
A ``cost_ceiling_usd`` drops every model whose estimated cost (prompt tokens, plus ``max_tokens`` answer
tokens) is over it, and a model over its limits (``ModelPrice.over_limit``) is skipped; both are recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reference_arch.common.llm.pricing import ModelPrice

POLICIES = ("fixed", "cheapest", "task")
LONG_CHARS = 600  # a question (all its messages) longer than this is a `long` task
_CODE = re.compile(r"```|\bdef |\bimport |\bclass |\bcode\b|\bfunction\b|\bsnippet\b|\(\)", re.I)


def classify_task(text: str) -> str:
    """``code`` when the text has a code fence, code keywords or asks for code; else ``long`` when it is
    over ``LONG_CHARS`` characters; else ``short`` (a short factual question)."""
    if _CODE.search(text):
        return "code"
    return "long" if len(text) > LONG_CHARS else "short"


def estimate_tokens(text: str) -> int:
    """About four characters a token (English text): enough to rank and bound models before a call."""
    return max(1, len(text) // 4)


@dataclass
class Route:
    """The models to try, in order, each with why; and the models left out, each with why."""

    policy: str
    task: str
    candidates: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def route(models: list[ModelPrice], *, policy: str, first: str, text: str, max_tokens: int,
          cost_ceiling_usd: float | None = None) -> Route:
    """Order ``models`` (``first`` being the configured model) for a call on ``text``."""
    if policy not in POLICIES:
        raise ValueError(f"unknown routing policy {policy!r}: use one of {', '.join(POLICIES)}")
    task = classify_task(text)
    tokens = estimate_tokens(text)
    cost = {m.name: m.cost_usd(tokens, max_tokens) for m in models}
    by_cost = sorted(models, key=lambda m: (cost[m.name], m.name))
    if policy == "fixed":
        ordered = sorted(models, key=lambda m: m.name != first)  # stable: the rest keep their listed order
        reasons = {m.name: "fixed: the configured model" if m.name == first else "fallback" for m in models}
    elif policy == "cheapest":
        ordered = by_cost
        reasons = {m.name: f"cheapest: estimated ${cost[m.name]:.6f}" for m in models}
    else:
        ordered = [m for m in by_cost if task in m.tasks] + [m for m in by_cost if task not in m.tasks]
        reasons = {m.name: (f"task {task}: cheapest model for it, estimated ${cost[m.name]:.6f}" if task in m.tasks
                            else f"fallback: not listed for task {task}") for m in models}
    result = Route(policy=policy, task=task)
    for m in ordered:
        problem = m.over_limit(tokens, max_tokens)
        if problem is None and cost_ceiling_usd is not None and cost[m.name] > cost_ceiling_usd:
            problem = f"estimated ${cost[m.name]:.6f} is over the cost ceiling ${cost_ceiling_usd:.6f}"
        if problem:
            result.skipped.append((m.name, problem))
        else:
            result.candidates.append((m.name, reasons[m.name]))
    return result
