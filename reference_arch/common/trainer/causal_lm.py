"""Loading a causal LM and its tokenizer, and encoding text for it, one way everywhere.

Text that comes from data (a corpus file, a fine-tuning example, a user's question) never becomes
a control token: a file that contains the literal string ``<|endoftext|>`` is encoded as those
characters, not as the end-of-text id. Tokenizers parse special-token strings out of text by
default; here they are loaded with ``split_special_tokens=True`` (the Rust tokenizer's
``encode_special_tokens``), and control ids are only ever added explicitly (the end-of-text that
closes a document, the chat template's own markers).

Imports torch and transformers inside the functions: code locations import this module at load.
"""

from __future__ import annotations

from typing import Any, Sequence


def no_control_tokens_from_text(tokenizer):
    """Make ``tokenizer`` encode special-token strings in text as plain text; returns it."""
    tokenizer.split_special_tokens = True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.encode_special_tokens = True
    return tokenizer


def load_tokenizer(path: str, **kwargs: Any):
    """``AutoTokenizer.from_pretrained(path)`` that never turns text into control tokens."""
    from transformers import AutoTokenizer

    return no_control_tokens_from_text(AutoTokenizer.from_pretrained(path, **kwargs))


def use_causal_lm_loss(model):
    """Name the loss of a causal LM whose class name does not (``GPT2LMHeadModel``): transformers
    otherwise warns "loss_type=None ... unrecognized" and falls back to the same loss."""
    if getattr(model, "loss_type", None) is None:
        model.loss_type = "ForCausalLM"
    return model


def load_model(path: str, **kwargs: Any):
    """``AutoModelForCausalLM.from_pretrained(path, **kwargs)`` with its loss named."""
    from transformers import AutoModelForCausalLM

    return use_causal_lm_loss(AutoModelForCausalLM.from_pretrained(path, **kwargs))


def control_ids(tokenizer) -> set[int]:
    """Every special token id of ``tokenizer`` (end-of-text, pad, template markers, ...)."""
    return set(tokenizer.all_special_ids)


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no control token, whatever the text holds."""
    backend = tokenizer.backend_tokenizer
    before = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        return backend.encode(text, add_special_tokens=False).ids
    finally:
        backend.encode_special_tokens = before


def encode_chat(tokenizer, messages: Sequence[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of ``messages`` rendered with the tokenizer's chat template: the template's own text
    may hold control tokens (``<|im_start|>``), the messages' content never does.

    Each content is found, in order, in the rendered text and encoded as plain text; what lies
    between is the template's and is encoded with its special tokens. A template that rewrites
    the content (so it cannot be found) is encoded wholly as plain text.
    """
    from reference_arch.common.untrusted_text import escape_role_markers

    # role-header lines inside the text are escaped, so an issue cannot forge a message of its own
    plain = [{"role": m["role"], "content": escape_role_markers(str(m["content"]))} for m in messages]
    rendered = tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt)
    backend = tokenizer.backend_tokenizer
    before = backend.encode_special_tokens
    pieces: list[tuple[str, bool]] = []  # (text, is content)
    cursor = 0
    for message in plain:
        content = str(message["content"])
        at = rendered.find(content, cursor) if content else -1
        if at < 0:
            if content:
                pieces = [(rendered, True)]
                cursor = len(rendered)
                break
            continue
        pieces += [(rendered[cursor:at], False), (content, True)]
        cursor = at + len(content)
    pieces.append((rendered[cursor:], False))
    ids: list[int] = []
    try:
        for text, is_content in pieces:
            if text:
                backend.encode_special_tokens = is_content
                ids += backend.encode(text, add_special_tokens=False).ids
    finally:
        backend.encode_special_tokens = before
    return ids
