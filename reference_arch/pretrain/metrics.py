"""Evaluation of a code model: held-out perplexity and how often its completions are valid Python.

Prompts are function headers (signature and docstring) taken from the validation files, which
training never saw. A sampled completion is cut where the function ends (the first line indented
no deeper than its ``def``) or at its last whole line, then judged twice: ``parses`` (the
function, as completed, is valid Python by ``ast``) and ``valid_prefix`` (no syntax error yet:
Python's own ``codeop`` says the code is complete or could still be completed).
"""

from __future__ import annotations

import ast
import codeop
import math
import random
import textwrap
import warnings
from typing import Any

from reference_arch.pretrain.cleaning import parse_python, parses


def perplexity(model, blocks, batch_size: int = 8) -> tuple[float, float]:
    """(mean token loss, perplexity) of ``model`` on an (n, block) tensor of token ids."""
    import torch

    from reference_arch.common.trainer.causal_lm import use_causal_lm_loss

    use_causal_lm_loss(model).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = blocks[start:start + batch_size].to(model.device)
            loss = model(input_ids=ids, labels=ids).loss
            n = ids.numel() - ids.shape[0]  # predicted positions
            total += float(loss) * n
            count += n
    mean = total / max(count, 1)
    return mean, math.exp(min(mean, 50.0))


def function_prompts(texts: list[str], n: int, seed: int = 0, max_chars: int = 600) -> list[str]:
    """Up to ``n`` function headers (``def`` line(s) plus docstring, dedented, no final newline)."""
    found: list[str] = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        try:
            tree = parse_python(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
                continue
            first = node.body[0]
            has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                and isinstance(first.value.value, str)
            if has_doc and len(node.body) < 2:
                continue  # nothing but a docstring: no body to complete
            end = first.end_lineno if has_doc else first.lineno - 1
            header = textwrap.dedent("".join(lines[node.lineno - 1:end]))
            if header.strip() and len(header) <= max_chars and header.endswith("\n"):
                # Without the final newline: BPE merges a newline with the indentation after it, so a
                # prompt ending in a bare newline would ask for a token pair training never shows.
                found.append(header[:-1])
    random.Random(seed).shuffle(found)
    return found[:n]


def cut_completion(prompt: str, completion: str, finished: bool) -> str:
    """The prompt plus the completion up to the end of the function or its last whole line."""
    text = prompt + completion
    if not finished:
        text = text[: text.rfind("\n") + 1] if "\n" in completion else prompt
    lines = text.splitlines(keepends=True)
    head = len(prompt.splitlines())
    for i in range(head, len(lines)):
        line = lines[i]
        if line.strip() and not line[0].isspace():  # back at the def's indentation: the function ended
            return "".join(lines[:i])
    return text


def judge(snippet: str) -> dict[str, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prefix = True
            codeop.compile_command(snippet, symbol="exec")
        except (SyntaxError, ValueError, OverflowError):
            prefix = False
    return {"parses": parses(snippet), "valid_prefix": prefix}


def sample_completions(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 64,
                       temperature: float = 0.8, seed: int = 0) -> list[dict[str, Any]]:
    """Sample one completion per prompt and judge it."""
    import torch

    model.eval()
    torch.manual_seed(seed)
    context = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    results = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt").input_ids[:, -(context - max_new_tokens):].to(model.device)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                                 top_k=50 if temperature > 0 else None, top_p=None,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = out[0, ids.shape[1]:]
        finished = bool(len(new) and int(new[-1]) == tokenizer.eos_token_id)
        completion = tokenizer.decode(new, skip_special_tokens=True)
        snippet = cut_completion(prompt, completion, finished)
        empty = not snippet[len(prompt):].strip()  # a bare header proves nothing about the model
        verdict = {"parses": False, "valid_prefix": False} if empty else judge(snippet)
        results.append({"prompt": prompt, "completion": completion, "snippet": snippet, **verdict})
    return results
