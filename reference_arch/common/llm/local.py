"""A local Hugging Face causal LM as a LangChain chat model.

Imported only by ``LLMResource`` when the provider is ``local``: it pulls in torch,
transformers and langchain-core, which a code location must not load at import time.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.trainer.device import pick_device

# The chat format of models that have none: the finetune location trains with it, so
# training and inference see the same text.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "### {{ message['role'] | capitalize }}:\n{{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}
_lock = threading.Lock()


def answer_text(generated: str, stop: list[str] | None = None) -> str:
    """The answer in what a local model generated: cut at a stop string, at "### " (a new chat turn) and at
    "<source-" (a copy of the prompt's fenced sources: a tuned model's demo answer went on into one)."""
    for marker in [*(stop or []), "\n### ", "<source-"]:
        generated = generated.split(marker)[0]
    return generated


@functools.lru_cache(maxsize=4)
def load_causal_lm(path: str, device: str = "auto"):
    """Load a model and its tokenizer once per process."""
    from reference_arch.common.trainer.causal_lm import load_model, load_tokenizer

    tokenizer = load_tokenizer(path)  # a question holding "<|endoftext|>" stays text
    if not tokenizer.chat_template:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    model = load_model(path).to(pick_device(device)).eval()
    return model, tokenizer


def to_chat_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """Plain chat messages; a line of text that would read as the template's ``### Role:`` header is escaped."""
    from reference_arch.common.untrusted_text import escape_role_markers

    return [{"role": _ROLES.get(m.type, m.type), "content": escape_role_markers(str(m.content))} for m in messages]


class LocalChatModel(BaseChatModel):
    """Greedy (temperature 0) or sampled generation from a local causal LM."""

    model_path: str
    model_name: str
    temperature: float = 0.0
    max_tokens: int = 256
    device: str = "auto"
    # Small models decoded greedily fall into loops ("\n\n\n..."); these are the usual guards.
    repetition_penalty: float = 1.3
    no_repeat_ngram_size: int = 3

    @property
    def _llm_type(self) -> str:
        return "reference-arch-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "model_path": self.model_path,
                "temperature": self.temperature, "max_tokens": self.max_tokens,
                "repetition_penalty": self.repetition_penalty, "no_repeat_ngram_size": self.no_repeat_ngram_size}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch
        from transformers import LogitsProcessorList

        from reference_arch.common.llm.citation_guard import CitationGuard, sources_in_prompt
        from reference_arch.common.trainer.causal_lm import encode_chat

        model, tokenizer = load_causal_lm(self.model_path, self.device)
        # The same encoding fine-tuning trains on; message text never becomes a control token.
        ids = torch.tensor([encode_chat(tokenizer, to_chat_messages(messages), add_generation_prompt=True)])
        context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024)
        max_new = min(kwargs.get("max_tokens") or self.max_tokens, max(1, context // 2))
        if ids.shape[1] + max_new > context:  # cutting the prompt would drop sources or the question unseen
            raise LLMError(f"the prompt is {ids.shape[1]} tokens and {max_new} answer tokens are asked for, over "
                           f"the {context}-token window of {self.model_name}: shorten the question or give fewer sources")
        ids = ids.to(model.device)
        sampling = self.temperature > 0
        n_sources = sources_in_prompt(messages[-1].content if messages else "")
        guard = LogitsProcessorList([CitationGuard(tokenizer, n_sources)]) if n_sources else None
        with _lock, torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new,
                do_sample=sampling,
                temperature=self.temperature if sampling else None,
                top_p=None,
                top_k=None,
                repetition_penalty=self.repetition_penalty,
                no_repeat_ngram_size=self.no_repeat_ngram_size,
                logits_processor=guard,  # a grounded prompt: only its sources' numbers can be cited
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = out[0, ids.shape[1]:]
        answer = answer_text(tokenizer.decode(new_tokens, skip_special_tokens=True), stop)
        usage = {"input_tokens": int(ids.shape[1]), "output_tokens": int(new_tokens.shape[0]),
                 "total_tokens": int(ids.shape[1] + new_tokens.shape[0])}
        message = AIMessage(content=answer.strip(), usage_metadata=usage,
                            response_metadata={"model_name": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=message)])
