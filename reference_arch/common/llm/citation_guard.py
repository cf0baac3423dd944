"""Constrained decoding of citations in a grounded answer (``grounded_prompt``): a local model may cite only
the sources its prompt numbers, each once per run of adjacent citations.

Seen in a demo: the LoRA-tuned SmolLM2 answered one sentence, then ``[1] [2] [3] ... [60] [6`` up to its
256-token cap. A transformers ``LogitsProcessor`` (the library's hook for constraining generation) masks,
after a citation's ``[`` (at the start, after a space or after another citation), the digits that cannot
begin or continue the number of a source not yet cited in the run, and a new ``[`` once the run holds every
source. Brackets elsewhere (``df[0]``, a Markdown link) and all other text are left to the model.
"""

from __future__ import annotations

import re

SOURCE_FENCE = re.compile(r"<source-[0-9a-f]+ n=(\d+)>")
_OPEN = re.compile(r"(?:^|[\s\]])\[(\d*)$")  # a citation begun: "[", "[1" (not "df[")
_RUN = re.compile(r"(?:\[(\d+)\]\s*)+$")  # the citations just written, adjacent
TAIL_TOKENS = 24  # enough text to see the current run of citations


_TOKENS: dict[int, tuple[dict[int, str], list[int]]] = {}


def _bracket_and_digit_tokens(tokenizer) -> tuple[dict[int, str], list[int]]:
    """({id: digits} of the tokens that are only digits, [ids of "[" and " ["]), once per tokenizer (decoding
    each of SmolLM2's 49,152 tokens takes a second)."""
    if id(tokenizer) not in _TOKENS:
        vocab = {i: tokenizer.decode([i]) for i in range(len(tokenizer))}
        _TOKENS[id(tokenizer)] = ({i: t for i, t in vocab.items() if t.isdigit() and t.isascii()},
                                  [i for i, t in vocab.items() if t.strip() == "[" and t.endswith("[")])
    return _TOKENS[id(tokenizer)]


def sources_in_prompt(text: str) -> int:
    """How many sources ``text`` numbers (``build_messages``' fences), 0 when it is no grounded prompt."""
    return max((int(n) for n in SOURCE_FENCE.findall(text or "")), default=0)


class CitationGuard:
    """``LogitsProcessor`` for ``n_sources`` numbered sources (see the module docstring)."""

    def __init__(self, tokenizer, n_sources: int):
        self.tokenizer, self.n = tokenizer, n_sources
        self.digits, self.opens = _bracket_and_digit_tokens(tokenizer)
        self.numbers = [str(k) for k in range(1, n_sources + 1)]

    def banned(self, tail: str) -> list[int]:
        """The token ids that may not follow ``tail`` (the text generated so far, its end)."""
        if opened := _OPEN.search(tail):
            begun = opened.group(1)
            run = _RUN.search(tail[: opened.start() + (1 if tail[opened.start()] in " \t\n]" else 0)])
            cited = set(re.findall(r"\d+", run.group(0))) if run else set()
            allowed = [k for k in self.numbers if k not in cited]
            return [i for i, digits in self.digits.items()
                    if not any(k.startswith(begun + digits) for k in allowed)]
        run = _RUN.search(tail)
        if run and len(set(re.findall(r"\d+", run.group(0)))) >= self.n:
            return self.opens
        return []

    def __call__(self, input_ids, scores):
        for row in range(input_ids.shape[0]):
            tail = self.tokenizer.decode(input_ids[row, -TAIL_TOKENS:].tolist(), skip_special_tokens=True)
            if banned := self.banned(tail):
                scores[row, banned] = float("-inf")
        return scores
