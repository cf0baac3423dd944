"""The LLM resource: a local Hugging Face model or any OpenAI-compatible server.

``provider`` left unset picks ``openai`` when ``OPENAI_API_KEY`` is set, else ``local``: the instruct model
a package ships (``packaged:smollm2-135m-instruct``, ``common/llm/packaged.py``) unless ``model`` names
another, such as a registry model (``registry:code-lm@latest``, the one the pretrain location trains).
Assets use it as a LangChain chat model (``prompt | llm.chat_model()``) or through
``llm.generate(messages)``; ``llm.usage_metadata()`` gives what to attach to the asset.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Optional

import dagster as dg

from pydantic import PrivateAttr

from reference_arch.common.llm.errors import LLMError
from reference_arch.common.llm.packaged import decoding
from reference_arch.common.settings import home_path

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def _valid_messages(messages, redact: bool = False):
    """Strings, ``(role, text)`` tuples and ``{"role", "content"}`` dicts with valid Unicode text, masked by
    ``common.redaction`` when ``redact`` (text bound for an external model)."""
    from reference_arch.common.unicode_text import valid_text

    if redact:
        from reference_arch.common.redaction import redact as mask

        def clean(text: str) -> str:
            return mask(valid_text(text))
    else:
        clean = valid_text
    if isinstance(messages, str):
        return clean(messages)
    if not isinstance(messages, list):
        return messages  # a prompt value or message objects: built from text already validated
    return [(m[0], clean(m[1])) if isinstance(m, tuple) and len(m) == 2 and isinstance(m[1], str)
            else {**m, "content": clean(m["content"])} if isinstance(m, dict) and isinstance(m.get("content"), str)
            else m for m in messages]


class LLMResource(dg.ConfigurableResource):
    """Chat model: ``local`` (Hugging Face causal LM) or ``openai`` (any OpenAI-compatible server)."""

    provider: Optional[str] = None  # "local" | "openai"; unset: openai when OPENAI_API_KEY is set
    model: Optional[str] = None
    base_url: Optional[str] = None
    api_key: Optional[str] = None
    temperature: float = 0.0
    max_tokens: int = 256
    timeout: float = 60.0  # seconds per attempt (connect, read, write); a call ends within
    max_retries: int = 4  # (max_retries + 1) * timeout plus the client's backoff (at most 8 s a retry)
    cache: Optional[bool] = None
    device: str = "auto"
    # Routing (openai provider; common/llm/routing.py): the models to choose from (names in the price
    # table, common/llm/prices.yaml), the policy (fixed | cheapest | task) and a cost ceiling per call.
    models: Optional[list[str]] = None  # unset: only `model`
    policy: str = "fixed"
    cost_ceiling_usd: Optional[float] = None
    prices_file: Optional[str] = None  # unset: the packaged prices.yaml

    _tracker: Any = PrivateAttr(default=None)
    _chat: Any = PrivateAttr(default=None)
    _chats: Any = PrivateAttr(default=None)
    _cache: Any = PrivateAttr(default=None)
    _spend: Any = PrivateAttr(default=None)

    # -- what is used --------------------------------------------------------------------
    def resolved_provider(self) -> str:
        if self.provider not in (None, "local", "openai"):
            raise LLMError(f"unknown LLM provider {self.provider!r}: use 'local' or 'openai'")
        if self.provider:
            return self.provider
        return "openai" if self._key() or self.base_url else "local"

    def _key(self) -> Optional[str]:
        return self.api_key or os.environ.get("OPENAI_API_KEY")

    def resolved_model(self) -> str:
        """The model's name as recorded in metadata: a ``packaged:`` or registry spec for local models."""
        if self.resolved_provider() == "openai":
            return self.model or DEFAULT_OPENAI_MODEL
        return self._local_model(load=False)[0]

    def _local_model(self, load: bool = True) -> tuple[str, str]:
        """(spec, path) of the local model; ``load=False`` skips preparing a packaged model's folder."""
        from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, PREFIX as PACKAGED, model_dir
        from reference_arch.common.registry import ModelNotFoundError, ModelRegistry, PREFIX

        from reference_arch.common.settings_model import local_model_problem

        spec = self.model or DEFAULT_LOCAL_MODEL
        if problem := local_model_problem(spec):  # a model from run config, checked as the setting is
            raise LLMError(f"local model {spec!r}: {problem}")
        if spec.startswith(PACKAGED):
            return spec, str(model_dir(spec)) if load else ""
        if not spec.startswith(PREFIX):
            return spec, spec  # a folder, or a hub name when the user turned the offline switch off
        try:
            found = ModelRegistry().resolve(spec)
        except ModelNotFoundError as err:
            raise LLMError(
                f"No local model: {err}. Materialize the pretrain location "
                "(`reference-arch materialize pretrain`) or unset REFERENCE_ARCH_LLM_MODEL to use the packaged one."
            ) from None
        return found.spec, str(found.path)

    def use_cache(self) -> bool:
        return self.temperature == 0 if self.cache is None else self.cache

    # -- the chat model ------------------------------------------------------------------
    def chat_model(self, model: Optional[str] = None):
        """A LangChain chat model, built once per resource instance (and per routed ``model``), tracking usage."""
        if model is not None and model != self.resolved_model():
            self.chat_model()
            if model not in self._chats:
                self._chats[model] = self._build_chat(model)
            return self._chats[model]
        if self._chat is None:
            self._chats = {}
            self._chat = self._build_chat(None)
        return self._chat

    def _build_chat(self, model: Optional[str]):
        from reference_arch.common.llm.cache import SQLiteResponseCache
        from reference_arch.common.llm.usage import UsageTracker

        if self._tracker is None:
            self._tracker = UsageTracker()
            cache = SQLiteResponseCache(home_path("cache") / "llm.sqlite") if self.use_cache() else False
            self._cache = cache or None
        common = dict(temperature=self.temperature, max_tokens=self.max_tokens,
                      callbacks=[self._tracker], cache=self._cache or False)
        if self.resolved_provider() == "openai":
            from langchain_openai import ChatOpenAI

            return ChatOpenAI(
                model=model or self.resolved_model(),
                base_url=self.base_url,
                api_key=self._key() or "not-needed",  # local OpenAI-compatible servers take any key
                timeout=self.timeout,
                max_retries=self.max_retries,  # the openai client backs off on 429, 5xx and timeouts
                **common,
            )
        from reference_arch.common.llm.local import LocalChatModel, load_causal_lm

        # a routed local model (``model``) is another local spec: packaged, registry or a folder
        name, path = (self.model_copy(update={"model": model}) if model else self)._local_model()
        try:
            load_causal_lm(path, self.device)
        except Exception as err:  # noqa: BLE001 - OSError, ValueError, safetensors' own error for a damaged file
            detail = (str(err).splitlines() or [type(err).__name__])[0]
            raise LLMError(f"cannot load the local model {name!r} from {path}: {detail}") from None
        return LocalChatModel(model_path=path, model_name=name, device=self.device, **decoding(name), **common)

    @contextlib.contextmanager
    def errors_explained(self, model: Optional[str] = None) -> Iterator[None]:
        """Turn client errors into one clear line that never contains the key (``openai_errors``)."""
        from reference_arch.common.openai_errors import openai_errors_explained

        if model is None:
            model = (self.model or DEFAULT_OPENAI_MODEL) if self.resolved_provider() == "openai" else str(self.model)
        with openai_errors_explained(LLMError, where=self.base_url, model=model, timeout=self.timeout,
                                     max_retries=self.max_retries, key=self._key()):
            yield

    def generate(self, messages, *, model: Optional[str] = None, policy: Optional[str] = None,
                 max_tokens: Optional[int] = None) -> str:
        """One chat completion (messages, a prompt value or a string); returns the text. Message
        text is made valid Unicode first (``unicode_text``): tokenizers and HTTP clients refuse
        lone surrogates, whichever template variable, system prompt or source brought them. Secrets and
        personal data are masked (``common.redaction``) in what goes to an OpenAI-compatible server and in
        the answer, before any asset records or logs it. The model is routed (``routing``; ``model``/``policy``
        override the resource's for this call), local models as OpenAI ones (the price table lists the local
        ones at no cost): a model that fails falls back to the next, and the spend is recorded. ``max_tokens``
        caps this call's answer below the resource's ``max_tokens`` (a reply whose length is known, such as a
        list of rewrites: a small model that rambles stops there instead of at the resource's limit)."""
        from reference_arch.common.llm.spend import Spend, generate_routed
        from reference_arch.common.redaction import redact

        external = self.resolved_provider() == "openai"
        messages = _valid_messages(messages, redact=external)
        if self._spend is None:
            self._spend = Spend()
        cap = min(max_tokens, self.max_tokens) if max_tokens else self.max_tokens
        return redact(generate_routed(self, messages, model=model, policy=policy, max_tokens=cap))

    # -- what the asset records ----------------------------------------------------------
    def usage_metadata(self) -> dict[str, Any]:
        tracker = self._tracker
        rebuilt = {"llm/cache_rebuilt": self._cache.rebuilt} if self._cache is not None and self._cache.rebuilt else {}
        return {
            "llm/provider": self.resolved_provider(),
            "llm/model": (self._spend.last_model if self._spend is not None and self._spend.last_model
                          else self.resolved_model()),
            "llm/calls": tracker.calls if tracker else 0,
            "llm/cache_hits": tracker.cache_hits if tracker else 0,
            "llm/prompt_tokens": tracker.prompt_tokens if tracker else 0,
            "llm/completion_tokens": tracker.completion_tokens if tracker else 0,
            "llm/latency_ms": round(1000 * tracker.latency_s, 1) if tracker else 0.0,
            **(self._spend.metadata() if self._spend is not None else {"llm/cost_usd": 0.0}),
            **rebuilt,  # only when the response cache could not be read and was started afresh
        }

    def usage(self) -> dict[str, Any]:
        """The usage as plain keys (for JSON answers)."""
        return {k.split("/", 1)[1]: v for k, v in self.usage_metadata().items()}
