"""Routed generation and what it cost: the model tried in routing order, falling back on failure, and
the spend of every call (``llm/cost_usd`` and the route, in each answer's metadata)."""

from __future__ import annotations

from typing import Any

from reference_arch.common.llm.pricing import PRICES_FILE, ModelPrice, load_prices


class Spend:
    """The calls of one resource instance: the models chosen, why, fallbacks, and their cost in USD."""

    def __init__(self) -> None:
        self.cost_usd = 0.0
        self.last_model = ""
        self.reason = ""
        self.policy = ""
        self.fallbacks: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []

    def record(self, model: str, reason: str, cost: float, policy: str, fallbacks: list, skipped: list) -> None:
        self.cost_usd += cost
        self.last_model, self.reason, self.policy = model, reason, policy
        self.fallbacks += fallbacks
        self.skipped += skipped

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"llm/cost_usd": round(self.cost_usd, 8), "llm/policy": self.policy,
                                "llm/route": self.reason, "llm/fallbacks": len(self.fallbacks)}
        if self.fallbacks:
            meta["llm/fallback_reasons"] = "; ".join(f"{f['model']}: {f['why']}" for f in self.fallbacks)
        if self.skipped:
            meta["llm/skipped"] = "; ".join(f"{s['model']}: {s['why']}" for s in self.skipped)
        return meta


def _prices(llm, names: list[str]) -> list[ModelPrice]:
    """The price-table entries of ``names``; a model not in the table (a local server's own model) is
    priced at 0 and unlimited only when no list was configured (today's single-model behaviour), and so is
    every model of the local provider (it runs here: a registry model, a folder)."""
    table = load_prices(llm.prices_file or PRICES_FILE)
    unknown = [n for n in names if n not in table]
    if unknown and llm.models and llm.resolved_provider() == "openai":
        from reference_arch.common.llm.errors import LLMError

        raise LLMError(f"LLM models {', '.join(unknown)} are not in the price table "
                       f"{llm.prices_file or PRICES_FILE}: add them there (known: {', '.join(table)})")
    return [table.get(n) or ModelPrice(name=n, input=0, output=0, context=10**9, max_output=10**9) for n in names]


def _text(messages) -> str:
    if isinstance(messages, str):
        return messages
    if isinstance(messages, list):
        return "\n".join(m[1] if isinstance(m, tuple) else str(m.get("content", "")) if isinstance(m, dict)
                         else str(getattr(m, "content", m)) for m in messages)
    return str(messages)


def generate_routed(llm, messages, *, max_tokens: int, model: str | None = None, policy: str | None = None) -> str:
    """Ask the routed models in order, each for at most ``max_tokens`` answer tokens;
    the first that answers wins. An OpenAI-compatible error (``LLMError``) moves on to the next model; all
    failing raises one ``LLMError`` naming each."""
    from reference_arch.common.llm.errors import LLMError
    from reference_arch.common.llm.routing import route

    first = model or llm.resolved_model()
    names = list(dict.fromkeys([first, *(llm.models or [])])) if model else list(llm.models or [first])
    chosen_policy = policy or ("fixed" if model else llm.policy)
    try:
        plan = route(_prices(llm, names), policy=chosen_policy, first=first, text=_text(messages),
                     max_tokens=max_tokens, cost_ceiling_usd=llm.cost_ceiling_usd)
    except ValueError as err:
        raise LLMError(str(err)) from None
    skipped = [{"model": n, "why": why} for n, why in plan.skipped]
    if not plan.candidates:
        raise LLMError("no model fits this call: " + "; ".join(f"{s['model']}: {s['why']}" for s in skipped))
    prices = {p.name: p for p in _prices(llm, [n for n, _ in plan.candidates])}
    fallbacks: list[dict[str, str]] = []
    for name, reason in plan.candidates:
        chat = llm.chat_model(name)
        tracker = llm._tracker
        before = (tracker.prompt_tokens, tracker.completion_tokens)
        try:
            with llm.errors_explained(name):
                # passed only when smaller: a call at the resource's own cap keeps its response-cache key
                text = str(chat.invoke(messages, **({"max_tokens": max_tokens} if max_tokens != llm.max_tokens
                                                    else {})).content)
        except LLMError as err:
            fallbacks.append({"model": name, "why": str(err)})
            continue
        cost = prices[name].cost_usd(tracker.prompt_tokens - before[0], tracker.completion_tokens - before[1])
        why = reason if not fallbacks else f"{reason}; after {len(fallbacks)} failed: " + ", ".join(
            f["model"] for f in fallbacks)
        llm._spend.record(name, f"{why} (task {plan.task})", cost, plan.policy, fallbacks, skipped)
        return text
    llm._spend.record("", "every model failed", 0.0, plan.policy, fallbacks, skipped)
    raise LLMError("every routed model failed: " + "; ".join(f"{f['model']}: {f['why']}" for f in fallbacks))
