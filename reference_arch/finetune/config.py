"""The fine-tuning settings every finetune asset reads: one resource, so the prompts, the training,
the evaluation and the publishing always agree on the backend and the base model.

``backend`` is ``local`` (LoRA on the packaged instruct model, ``common/llm/packaged.py``) unless set to ``openai``:
an OpenAI fine-tuning job is billed and takes minutes to hours, so an exported ``OPENAI_API_KEY``
alone does not start one. ``REFERENCE_ARCH_FINETUNE_BACKEND`` and ``REFERENCE_ARCH_FINETUNE_BASE_MODEL``
set them from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg

from reference_arch.common import settings
from reference_arch.common.settings import home_path
from reference_arch.finetune.chat_format import OPENAI_MIN_EXAMPLES, SYSTEM_PROMPT

FINETUNED_MODEL = "code-lm-github"  # what this location publishes
DEFAULT_OPENAI_BASE_MODEL = "gpt-4o-mini-2024-07-18"


class FineTuningResource(dg.ConfigurableResource):
    """How the finetune location fine-tunes: backend, base model, LoRA and job settings."""

    backend: Optional[str] = None  # "local" (unset) | "openai" (needs OPENAI_API_KEY)
    # local: packaged:NAME (default: the packaged instruct model), a registry spec such as
    # registry:code-lm@latest (the model pretrained here) or a folder; openai: a fine-tunable model
    base_model: Optional[str] = None
    output_name: str = FINETUNED_MODEL
    system_prompt: str = SYSTEM_PROMPT
    validation_fraction: float = 0.2
    min_examples: int = OPENAI_MIN_EXAMPLES
    # local LoRA: sized for SmolLM2-135M on a CPU (an example holds three short sources and the question:
    # 530-650 tokens on the sample export, finetune/grounding.py; one epoch is a few CPU minutes)
    max_seq_len: int = 768
    epochs: int = 1
    batch_size: int = 4
    learning_rate: float = 1e-3
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: Optional[list[str]] = None  # unset: peft's default for the architecture
    seed: int = 0
    # validation examples both local models answer (generated) for the format and groundedness measures
    format_examples: int = 6
    # OpenAI
    openai_epochs: Optional[int] = None  # unset: OpenAI picks
    openai_suffix: str = "github"
    poll_interval_s: float = 10.0
    poll_max_interval_s: float = 120.0
    poll_timeout_s: float = 6 * 3600.0
    eval_max_examples: int = 50  # validation examples the OpenAI evaluation asks both models about

    def resolved_backend(self) -> str:
        if self.backend not in (None, "local", "openai"):
            raise dg.Failure(f"unknown fine-tuning backend {self.backend!r}: use 'local' or 'openai'")
        return self.backend or "local"

    def resolved_base_model(self) -> str:
        """The base model: a registry spec or path (local), or an OpenAI model name."""
        if self.base_model:
            return self.base_model
        from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL

        return DEFAULT_OPENAI_BASE_MODEL if self.resolved_backend() == "openai" else DEFAULT_LOCAL_MODEL

    def base_model_path(self) -> tuple[str, str]:
        """(spec, directory) of the local base model; a clear failure when there is none yet."""
        from reference_arch.common.llm.errors import LLMError
        from reference_arch.common.llm.packaged import PREFIX as PACKAGED, model_dir
        from reference_arch.common.registry import PREFIX, ModelNotFoundError, ModelRegistry

        spec = self.resolved_base_model()
        if spec.startswith(PACKAGED):
            try:
                return spec, str(model_dir(spec))
            except LLMError as err:
                raise dg.Failure(str(err)) from None
        if not spec.startswith(PREFIX):
            if not Path(spec).is_dir():
                raise dg.Failure(f"base model {spec!r} is not a registry model (registry:NAME@VERSION) "
                                 "or a directory holding a saved Hugging Face model")
            return spec, spec
        try:
            found = ModelRegistry().resolve(spec)
        except ModelNotFoundError as err:
            raise dg.Failure(f"no base model to fine-tune: {err}. Materialize the pretrain location first "
                             "(`reference-arch materialize pretrain`) or set base_model to a model directory.")
        return found.spec, str(found.path)


def finetune_dir(*parts: str) -> Path:
    return home_path("finetune", *parts)


def split_path() -> Path:
    """The train/validation split of the Q&A pairs, one JSON line per pair."""
    return finetune_dir() / "split.jsonl"


def prompts_path(side: str) -> Path:
    """The OpenAI chat JSONL of ``side`` ("train" or "validation")."""
    return finetune_dir("prompts") / f"{side}.jsonl"


def sources_path() -> Path:
    """The sources of each validation example, in order (a JSON list per line)."""
    return finetune_dir("prompts") / "validation_sources.jsonl"


def fine_tuning_resource() -> FineTuningResource:
    return FineTuningResource(backend=settings.value("finetune_backend"),
                              base_model=settings.value("finetune_base_model"))


PREFERENCE_MODEL = "code-lm-preference"  # what preference tuning publishes


class PreferenceTuningResource(dg.ConfigurableResource):
    """How ``finetune/preference_*`` builds pairs and tunes with DPO. Small by default (two dozen pairs,
    6 steps on SmolLM2-135M: a few CPU minutes); raise ``max_pairs`` and ``steps`` for a bigger model. The system prompt is the fine-tuning resource's. The model tuned is the supervised
    fine-tuned one (``registry:code-lm-github@latest``): preference optimisation follows SFT, as in the RLHF
    recipe (Ouyang et al. 2022, "Training language models to follow instructions with human feedback"), so
    the newest local model is the last one trained. With the OpenAI fine-tuning backend there is no local SFT
    model, and the packaged instruct model is tuned. ``base_model`` names another (a registry spec or a directory)."""

    output_name: str = PREFERENCE_MODEL
    base_model: Optional[str] = None  # unset: the SFT model (local fine-tuning backend), else the pretrained base
    max_pairs: int = 24  # pairs in all (feedback first, then generated from the fine-tuning Q&A)
    heldout_fraction: float = 0.25  # of the questions, by a stable hash: the gate's held-out pairs
    max_seq_len: int = 256  # tokens of prompt + answer; longer questions are cut from the start
    max_new_tokens: int = 48  # tokens of a generated alternative answer (a CPU second or two each)
    # a demo's DPO loss on its 18 training pairs: 0.69 at step 1, 0.14 at step 4, 0.001 at step 10 (each step about
    # 30 s on two CPU cores); past 6 it only fits the training pairs harder
    steps: int = 6
    batch_size: int = 4
    learning_rate: float = 1e-3
    beta: float = 0.1  # DPO's beta
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0

    def resolved_base_model(self, fine_tuning: FineTuningResource) -> str:
        """The registry spec (or directory) of the model to tune (see the class docstring)."""
        if self.base_model:
            return self.base_model
        if fine_tuning.resolved_backend() == "local":
            return f"registry:{fine_tuning.output_name}@latest"
        from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL

        return DEFAULT_LOCAL_MODEL

    def base_model_path(self, fine_tuning: FineTuningResource) -> tuple[str, str]:
        """(spec, directory) of the model to tune; a clear failure naming what publishes it when there is none yet."""
        from reference_arch.common.registry import ModelNotFoundError, ModelRegistry

        spec = self.resolved_base_model(fine_tuning)
        if spec == f"registry:{fine_tuning.output_name}@latest":
            try:
                ModelRegistry().get(fine_tuning.output_name)
            except ModelNotFoundError:
                raise dg.Failure(f"no supervised fine-tuned model {fine_tuning.output_name!r} to preference-tune yet: "
                                 "materialize finetune/published_model first (its better_than_base gate may have "
                                 "held it back), or set preference_tuning.base_model to another model") from None
        return fine_tuning.model_copy(update={"base_model": spec}).base_model_path()


def preference_dir(*parts: str) -> Path:
    return finetune_dir("preference", *parts)
