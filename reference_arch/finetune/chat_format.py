"""Fine-tuning examples in OpenAI's chat JSONL format, and OpenAI's rules for such files.

One example per line: ``{"messages": [system, user, assistant with "weight": 1]}``. The same
files feed both backends: OpenAI reads them as they are, the local LoRA backend renders them with
the model's chat template. The rules follow OpenAI's fine-tuning data guide: known roles, non-empty
string content, an assistant message to learn from, weights 0 or 1, at least 10 examples, every
example under the model's token limit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

# The seed's system prompt: the tone the fine-tuned model learns.
SYSTEM_PROMPT = "You answer Github issues in an upbeat and helpful way to ensure user success."
OPENAI_MIN_EXAMPLES = 10
ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
# Tokens per training example that OpenAI accepts, by base model family (longest prefix wins).
OPENAI_TOKEN_LIMITS = {"gpt-3.5-turbo": 16_385, "gpt-4o-mini": 65_536, "gpt-4o": 65_536, "gpt-4.1": 65_536}
DEFAULT_OPENAI_TOKEN_LIMIT = 65_536


def chat_example(question: str, answer: str, system_prompt: str = SYSTEM_PROMPT) -> dict:
    return {"messages": [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer, "weight": 1},
    ]}


def openai_token_limit(model: str) -> int:
    matches = [prefix for prefix in OPENAI_TOKEN_LIMITS if model.startswith(prefix)]
    return OPENAI_TOKEN_LIMITS[max(matches, key=len)] if matches else DEFAULT_OPENAI_TOKEN_LIMIT


# -- token counting ------------------------------------------------------------------------
@dataclass
class TokenCounter:
    """Counts an example's tokens; ``name`` says how (it goes into metadata)."""

    name: str
    count: Callable[[list[dict]], int]


def tiktoken_counter(model: str) -> TokenCounter:
    """OpenAI's tokenizer for ``model``, counted the way OpenAI's cookbook does for chat.

    tiktoken downloads its encodings on first use; offline (and not cached) the UTF-8 byte count
    stands in: a byte-level BPE token covers at least one byte, so it is an upper bound.
    """
    import tiktoken

    try:
        try:
            encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            encoding = tiktoken.get_encoding("o200k_base")
        encode = lambda text: len(encoding.encode(text))  # noqa: E731
        name = f"tiktoken {encoding.name}"
    except Exception:  # noqa: BLE001 - no network for the encoding file: fall back to the bound
        encode = lambda text: len(text.encode("utf-8"))  # noqa: E731
        name = "utf-8 bytes (upper bound: tiktoken encoding not available offline)"

    def count(messages: list[dict]) -> int:
        total = 3  # every reply is primed with <|start|>assistant<|message|>
        for message in messages:
            total += 3 + encode(str(message.get("content") or ""))
            if message.get("name"):
                total += 1 + encode(message["name"])
        return total

    return TokenCounter(name, count)


def chat_template_counter(tokenizer) -> TokenCounter:
    """Exactly the tokens a local model trains on (see ``encode_chat``)."""
    return TokenCounter(f"{type(tokenizer).__name__} chat template",
                        lambda messages: len(encode_chat(tokenizer, messages)[0]))


def encode_chat(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids of an example as the model sees it at inference, and its labels.

    The prompt is everything before the last message, rendered with the generation prompt exactly as
    ``LocalChatModel`` renders a question; the target is the last (assistant) message and the end
    of text. Prompt tokens get label -100 (no loss), so the model learns to answer, not to ask.
    Text in the messages never becomes a control token (``causal_lm.encode_chat``): the end of
    text that closes the answer is the only one the example adds.
    """
    from reference_arch.common.trainer.causal_lm import encode_chat as encode_messages
    from reference_arch.common.trainer.causal_lm import encode_text

    target = messages[-1]
    prompt_ids = encode_messages(tokenizer, messages[:-1], add_generation_prompt=True)
    target_ids = encode_text(tokenizer, target["content"]) + [tokenizer.eos_token_id]
    learn = target.get("role") == "assistant" and target.get("weight", 1) != 0
    return prompt_ids + target_ids, [-100] * len(prompt_ids) + (target_ids if learn else [-100] * len(target_ids))


# -- the rules -----------------------------------------------------------------------------
@dataclass
class FormatReport:
    examples: int = 0
    errors: Counter = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    token_counts: list[int] = field(default_factory=list)
    token_limit: int = 0
    counter: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.ok:
            return f"{self.examples} examples follow OpenAI's fine-tuning format"
        listed = ", ".join(f"{name}: {n}" for name, n in sorted(self.errors.items()))
        return f"{sum(self.errors.values())} format errors ({listed}); first: {'; '.join(self.first_errors)}"

    def metadata(self) -> dict:
        tokens = self.token_counts or [0]
        return {
            "examples": self.examples,
            "format_errors": sum(self.errors.values()),
            "tokens_max": max(tokens),
            "tokens_mean": round(sum(tokens) / len(tokens), 1),
            "tokens_total": sum(tokens),
            "token_limit": self.token_limit,
            "token_counter": self.counter,
        }


def check_examples(examples: list, counter: TokenCounter, token_limit: int,
                   min_examples: int = OPENAI_MIN_EXAMPLES) -> FormatReport:
    """Every rule OpenAI applies to a chat fine-tuning file, counted by kind of error."""
    report = FormatReport(examples=len(examples), token_limit=token_limit, counter=counter.name)

    def error(kind: str, line: int, detail: str) -> None:
        report.errors[kind] += 1
        if len(report.first_errors) < 3:
            report.first_errors.append(f"example {line}: {detail}")

    if len(examples) < min_examples:
        error("too_few_examples", 0, f"{len(examples)} examples, at least {min_examples} are required")
    for line, example in enumerate(examples, start=1):
        messages = example.get("messages") if isinstance(example, dict) else None
        if not isinstance(messages, list) or not messages:
            error("missing_messages", line, "no 'messages' list")
            continue
        bad = False
        for message in messages:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                error("message_missing_key", line, "a message without 'role' or 'content'")
                bad = True
                continue
            if set(message) - MESSAGE_KEYS:
                error("message_unrecognized_key", line, f"unknown keys {sorted(set(message) - MESSAGE_KEYS)}")
                bad = True
            if message["role"] not in ROLES:
                error("unrecognized_role", line, f"role {message['role']!r}")
                bad = True
            content = message["content"]
            if not isinstance(content, str) or not content.strip():
                error("empty_content", line, f"the {message['role']} message has no text")
                bad = True
            if message.get("weight", 1) not in (0, 1):
                error("invalid_weight", line, f"weight {message['weight']!r} is not 0 or 1")
                bad = True
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            error("no_assistant_message", line, "nothing for the model to learn (no assistant message)")
            bad = True
        if bad:
            continue
        tokens = counter.count(messages)
        report.token_counts.append(tokens)
        if tokens > token_limit:
            error("too_many_tokens", line, f"{tokens} tokens, over the limit of {token_limit}")
    return report
