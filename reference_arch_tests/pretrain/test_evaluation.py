"""How completions are cut and judged, and where the prompts come from."""

from __future__ import annotations

from reference_arch.pretrain.metrics import cut_completion, function_prompts, judge
from reference_arch.pretrain.defs.evaluation import evaluation_failures

SOURCE = '''
class A:
    def size(self, items):
        """How many."""
        return len(items)

    def empty(self):
        """Only a docstring."""


def twice(x):
    y = x * 2
    return y
'''


def test_prompts_are_headers_without_the_final_newline():
    prompts = function_prompts([SOURCE, "def broken(:\n"], n=10)
    assert sorted(prompts) == ['def size(self, items):\n    """How many."""', "def twice(x):"]


def test_cut_at_the_end_of_the_function_or_the_last_whole_line():
    prompt = "def twice(x):"
    finished_function = "\n    return x * 2\n\nprint(twice(3))\n"
    assert cut_completion(prompt, finished_function, finished=False) == "def twice(x):\n    return x * 2\n\n"
    ran_out = "\n    y = x * 2\n    return foo(y,"
    assert cut_completion(prompt, ran_out, finished=False) == "def twice(x):\n    y = x * 2\n"
    assert cut_completion(prompt, " # no whole line", finished=False) == prompt


def test_judge_tells_valid_from_incomplete_from_broken():
    assert judge("def f(x):\n    return x\n") == {"parses": True, "valid_prefix": True}
    assert judge("def f(x):\n    return g(x,\n") == {"parses": False, "valid_prefix": True}
    assert judge("def f(x):\n    return = x\n") == {"parses": False, "valid_prefix": False}


def test_gate_names_each_reason():
    good = {"perplexity": 50.0, "initial_perplexity": 400.0, "max_perplexity": 100.0, "parse_rate": 0.5,
            "min_parse_rate": 0.2, "completions": 8}
    assert evaluation_failures(good) == []
    bad = dict(good, perplexity=float("nan"), parse_rate=0.1, completions=0)
    reasons = " | ".join(evaluation_failures(bad))
    assert "perplexity nan" in reasons and "10% of completions" in reasons and "no completion" in reasons
    assert "training did not help" in reasons
    assert evaluation_failures(dict(good, perplexity=500.0, max_perplexity=1000.0)) == [
        "held-out perplexity 500.0 is not below the initial model's 400.0: training did not help"]
