"""Constrained citations (common/llm/citation_guard.py), on the packaged model's own tokenizer: a demo's tuned
model wrote "[1] [2] [3] ... [60] [6" to its token cap over three sources."""

import pytest
import torch

from reference_arch.common.grounded_prompt import build_messages
from reference_arch.common.llm.citation_guard import CitationGuard, sources_in_prompt


@pytest.fixture(scope="module")
def tokenizer():
    from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, model_dir
    from reference_arch.common.trainer.causal_lm import load_tokenizer

    return load_tokenizer(str(model_dir(DEFAULT_LOCAL_MODEL)))


def digits(tokenizer, ids) -> set[str]:
    return {tokenizer.decode([i]) for i in ids if tokenizer.decode([i]).isdigit() and len(tokenizer.decode([i])) == 1}


def test_only_the_sources_numbers_each_once_a_run(tokenizer):
    guard = CitationGuard(tokenizer, 3)
    assert set("0123456789") - digits(tokenizer, guard.banned("It reads CSV. [")) == {"1", "2", "3"}
    assert set("0123456789") - digits(tokenizer, guard.banned("It reads CSV. [1] [")) == {"2", "3"}
    assert set("0123456789") - digits(tokenizer, guard.banned("It reads CSV.[2][")) == {"1", "3"}
    assert guard.banned("It reads CSV. [1] [2] [3] ") == guard.opens and guard.opens  # every source cited: no "["
    assert guard.banned("It reads CSV. [1] [2] ") == []
    assert guard.banned("Use df[") == [] and guard.banned("See [the docs") == []  # not citations
    many = CitationGuard(tokenizer, 12)
    assert set("0123456789") - digits(tokenizer, many.banned("Yes. [1")) == {"0", "1", "2"}  # 10, 11, 12


def test_the_guard_masks_the_scores_and_reads_the_prompts_sources(tokenizer):
    messages = build_messages("How?", [{"title": t, "source": t, "text": "x"} for t in ("a", "b")])
    assert sources_in_prompt(messages[1][1]) == 2 and sources_in_prompt("no sources") == 0
    ids = torch.tensor([tokenizer.encode("Set it. [1] [2] ", add_special_tokens=False)])
    scores = torch.zeros(1, len(tokenizer))
    guarded = CitationGuard(tokenizer, 2)(ids, scores.clone())
    opens = CitationGuard(tokenizer, 2).opens
    assert torch.isinf(guarded[0, opens]).all() and torch.isfinite(guarded).sum() == len(tokenizer) - len(opens)


def test_a_copy_of_the_sources_is_not_part_of_the_answer():
    from reference_arch.common.llm.local import answer_text

    echoed = "rolling(period='7d') is wrong across DST [1].\n<source-06d4ea8feb1f n=1>\n`rolling` measured wall time"
    assert answer_text(echoed) == "rolling(period='7d') is wrong across DST [1].\n"
    assert answer_text("Use sep. [1]\n### User: more") == "Use sep. [1]"
