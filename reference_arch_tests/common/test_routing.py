"""Model routing and spend: policies over the price table, fallback on a failing model, cost arithmetic,
against the local server speaking OpenAI's chat API."""

import pytest

from reference_arch.testkit.tiny_model import TINY_LLM
from reference_arch.common.llm.pricing import PriceError, load_prices, price_of
from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.llm.routing import classify_task, route
from reference_arch_tests.fake_openai import FakeOpenAI

MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-4.1-mini"]


def llm_for(server, **config):
    return LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False, max_retries=0,
                       **config)


def test_cost_arithmetic_from_the_price_table():
    mini = price_of("gpt-4o-mini")
    assert (mini.input, mini.output) == (0.15, 0.60)
    assert mini.cost_usd(1_000_000, 0) == pytest.approx(0.15)
    assert mini.cost_usd(11, 7) == pytest.approx((11 * 0.15 + 7 * 0.60) / 1e6)
    assert price_of("gpt-4o").over_limit(100, 20000) == "max_tokens 20000 is over its max_output 16384"
    with pytest.raises(PriceError, match="'nope' is not in the price table"):
        price_of("nope")


def test_bad_price_table_is_one_clear_line(tmp_path):
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  m:\n    input: -1\n    output: 1\n    context: 10\n    max_output: 5\n")
    with pytest.raises(PriceError, match=r"prices.yaml: input: Input should be greater than or equal to 0"):
        load_prices(bad)


@pytest.mark.parametrize("text, task", [
    ("What is a series?", "short"),
    ("Write code that sums a column", "code"),
    ("Why does ```df.sum()``` fail?", "code"),
    ("Explain, in detail, " + "the index alignment rules " * 40, "long"),
])
def test_task_rule(text, task):
    assert classify_task(text) == task


def test_policies_order_the_models():
    prices = [price_of(n) for n in MODELS]
    fixed = route(prices, policy="fixed", first="gpt-4o", text="What is a series?", max_tokens=100)
    assert [n for n, _ in fixed.candidates] == MODELS and fixed.candidates[1][1] == "fallback"
    cheapest = route(prices, policy="cheapest", first="gpt-4o", text="What is a series?", max_tokens=100)
    assert [n for n, _ in cheapest.candidates] == ["gpt-4.1-nano", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"]
    code = route(prices, policy="task", first="gpt-4o", text="Write code to read a CSV", max_tokens=100)
    assert code.task == "code"
    assert [n for n, _ in code.candidates] == ["gpt-4.1-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4o-mini"]
    capped = route(prices, policy="task", first="gpt-4o", text="Write code", max_tokens=1000, cost_ceiling_usd=0.005)
    assert "gpt-4o" not in [n for n, _ in capped.candidates]
    assert capped.skipped[0][0] == "gpt-4o" and "over the cost ceiling" in capped.skipped[0][1]
    with pytest.raises(ValueError, match="unknown routing policy 'best'"):
        route(prices, policy="best", first="gpt-4o", text="x", max_tokens=1)


def test_default_is_fixed_and_records_the_cost(tmp_home):
    with FakeOpenAI() as server:
        llm = llm_for(server)
        llm.generate("What is a series?")
    meta = llm.usage_metadata()
    assert server.requests[0]["body"]["model"] == "gpt-4o-mini"
    assert meta["llm/model"] == "gpt-4o-mini" and meta["llm/policy"] == "fixed"
    assert meta["llm/cost_usd"] == pytest.approx((11 * 0.15 + 7 * 0.60) / 1e6)
    assert isinstance(meta["llm/cost_usd"], float) and meta["llm/fallbacks"] == 0


def test_cheapest_policy_and_a_per_call_override(tmp_home):
    with FakeOpenAI() as server:
        llm = llm_for(server, models=MODELS, policy="cheapest")
        llm.generate("What is a series?")
        assert server.requests[-1]["body"]["model"] == "gpt-4.1-nano"
        llm.generate("What is a series?", model="gpt-4o")
        assert server.requests[-1]["body"]["model"] == "gpt-4o"
    meta = llm.usage_metadata()
    assert meta["llm/model"] == "gpt-4o" and meta["llm/route"].startswith("fixed: the configured model")
    assert meta["llm/cost_usd"] == pytest.approx((11 * 0.10 + 7 * 0.40 + 11 * 2.5 + 7 * 10) / 1e6)


def test_a_failing_model_falls_back_to_the_next_and_says_so(tmp_home):
    missing = {"error": {"message": "The model `gpt-4.1-nano` does not exist", "type": "invalid_request_error",
                         "code": "model_not_found"}}
    with FakeOpenAI(script=[(404, missing)]) as server:
        llm = llm_for(server, models=MODELS, policy="cheapest")
        assert llm.generate("What is a series?").startswith("A Series")
    assert [r["body"]["model"] for r in server.requests] == ["gpt-4.1-nano", "gpt-4o-mini"]
    meta = llm.usage_metadata()
    assert meta["llm/model"] == "gpt-4o-mini" and meta["llm/fallbacks"] == 1
    assert meta["llm/fallback_reasons"].startswith("gpt-4.1-nano:") and "after 1 failed: gpt-4.1-nano" in meta["llm/route"]
    assert meta["llm/cost_usd"] == pytest.approx((11 * 0.15 + 7 * 0.60) / 1e6)  # the failed call cost nothing


def test_every_model_failing_or_over_its_limit_is_one_clear_error(tmp_home):
    with FakeOpenAI(script=[(400, None), (400, None)]) as server:
        llm = llm_for(server, models=["gpt-4.1-nano", "gpt-4o"], max_tokens=20000)
        with pytest.raises(LLMError, match="every routed model failed: gpt-4.1-nano: .*") as err:
            llm.generate("hi")
    assert "gpt-4o" not in str(err.value).split("failed:")[1]  # over its max_output: skipped, never called
    assert [r["body"]["model"] for r in server.requests] == ["gpt-4.1-nano"]
    assert "gpt-4o: max_tokens 20000 is over its max_output 16384" in llm.usage_metadata()["llm/skipped"]


def test_local_model_costs_nothing(registry_with_tiny_model):
    llm = LLMResource(model=TINY_LLM, max_tokens=8)
    llm.generate("What is a series?")
    meta = llm.usage_metadata()
    assert meta["llm/cost_usd"] == 0.0 and meta["llm/policy"] == "fixed" and meta["llm/model"] == TINY_LLM


def test_local_models_are_routed_like_remote_ones(registry_with_tiny_model):
    """Routing by task over two local models: a short question goes to the packaged instruct model (its
    price-table entry lists the short task), a code question falls through to the other; each costs 0."""
    llm = LLMResource(model=TINY_LLM, models=[TINY_LLM, "packaged:smollm2-135m-instruct"], policy="task",
                      max_tokens=8, cache=False)
    llm.generate("What is a Series?")
    assert llm.usage_metadata()["llm/model"] == "packaged:smollm2-135m-instruct"
    llm.generate("Write a function: def add(a, b)")
    meta = llm.usage_metadata()
    assert meta["llm/model"] == TINY_LLM and meta["llm/cost_usd"] == 0.0 and "task code" in meta["llm/route"]
