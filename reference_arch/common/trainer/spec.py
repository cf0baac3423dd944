"""The training settings, one schema for every caller: ``TrainSpec``.

An asset builds a ``TrainSpec`` in its own process (``parse_spec``: a bad key or value fails there,
in one line naming it), ``TrainerResource`` sends it as JSON in the Dagster Pipes extras, and the
entry point parses it back with the same model. ``TrainSchedule`` is the part a run config exposes
(pretrain's ``TrainConfig`` is a ``TrainSchedule`` with the demo's defaults); the rest says what to
train, on what, where, and how.

Light on purpose: pydantic only, so code locations and the training process both import it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal, Mapping, Optional, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, \
    model_validator

# Settings that change what a run writes down and how often, not the weights it ends with.
BOOKKEEPING = ("checkpoint_every", "keep_checkpoints", "log_every")
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# Hugging Face Trainer's reporting integrations (TrainingArguments.report_to) a run may send its logs to.
ReportTo = Literal["none", "tensorboard", "mlflow", "wandb"]
REPORT_TO: tuple[str, ...] = get_args(ReportTo)


class TrainSchedule(BaseModel):
    """How long and how to optimise: AdamW (beta2 0.95), linear warm-up, cosine decay to a floor."""

    max_steps: int = Field(100, description="Optimizer steps in all (a resumed run stops here too)")
    batch_size: int = Field(8, description="Blocks per device per micro-batch")
    grad_accum: int = Field(1, description="Micro-batches per optimizer step")
    lr: float = Field(1e-3, description="Peak learning rate")
    min_lr_ratio: float = Field(0.1, description="The cosine schedule's floor, as a fraction of lr")
    warmup_steps: int = Field(10, description="Steps of linear warm-up")
    weight_decay: float = Field(0.1, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, description="Gradient clipping norm (0: no clipping)")
    checkpoint_every: int = Field(50, description="Steps between checkpoints (0: none)")
    keep_checkpoints: Optional[int] = Field(None, description="Newest checkpoints kept (unset: all)")
    log_every: int = Field(10, description="Steps between metrics reports")
    seed: int = Field(0, description="Seeds the weights' dropout, the data order and the sampler")

    def schedule(self) -> dict[str, Any]:
        """The schedule's settings (a subclass's own fields left out)."""
        return self.model_dump(include=set(TrainSchedule.model_fields))

    def weight_settings(self) -> dict[str, Any]:
        """The settings that decide the trained weights: what a run's identity is made of."""
        return {k: v for k, v in self.schedule().items() if k not in BOOKKEEPING}


def schedule_field(name: str, default: Any) -> Any:
    """``TrainSchedule``'s field ``name`` with another default (for a run config's own budget)."""
    return Field(default, description=TrainSchedule.model_fields[name].description)


class LoraSpec(BaseModel):
    """A LoRA adapter (peft) on the model's linear layers."""

    model_config = ConfigDict(extra="forbid")

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: Optional[list[str]] = None  # unset: every linear layer


class InitSpec(BaseModel):
    """``model_init.build_model``'s arguments: a model built in the training process."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "tiny"
    arch: str = "gpt2"
    context_length: int = 256
    vocab_size: Optional[int] = None
    init_from: Optional[str] = None
    n_layer: Optional[int] = None
    seed: int = 0


# The least value each number may take.
AT_LEAST = {"max_steps": 1, "batch_size": 1, "grad_accum": 1, "log_every": 1, "warmup_steps": 0,
            "checkpoint_every": 0, "keep_checkpoints": 1, "eval_every": 0, "weight_decay": 0, "max_grad_norm": 0}


class TrainSpec(TrainSchedule):
    """Everything one training run needs: the schedule, the model, the data and the output directory.

    ``objective`` says what the run optimises: ``causal_lm`` (next-token loss on fixed-length
    ``input_ids`` blocks) or ``dpo`` (Direct Preference Optimization, trl's ``DPOTrainer``, on pairs
    of ``prompt_ids``/``chosen_ids``/``rejected_ids``; the reference model is the base, or the base
    with the LoRA adapter switched off; ``dpo_beta`` is DPO's beta, the strength of the pull towards it).
    """

    model_config = ConfigDict(extra="forbid")

    output_dir: str
    train_data: list[str]  # datasets.save_to_disk directories: input_ids blocks, or preference pairs (dpo)
    objective: Literal["causal_lm", "dpo"] = "causal_lm"
    dpo_beta: float = 0.1
    model_dir: Optional[str] = None  # a saved Hugging Face model ...
    init: Optional[InitSpec] = None  # ... or one built here
    tokenizer_dir: Optional[str] = None  # default: model_dir's
    eval_data: Optional[list[str]] = None
    eval_every: int = 0  # steps between evaluations (0: only at the end, when eval_data is set)
    resume: bool = True  # from the newest complete checkpoint in output_dir
    lora: Optional[LoraSpec] = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU (bf16 is slower there)
    compile: bool = False
    peak_flops: Optional[float] = None  # measured with a large matmul when unset
    log_batches: bool = False  # append each step's block hashes to batches.jsonl (audits the data order)
    report_to: ReportTo = "none"  # the Trainer's reporting integration (TrainerResource.report_to fills it in)

    @field_validator("train_data", "eval_data", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator(*AT_LEAST)
    @classmethod
    def _at_least(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and value < AT_LEAST[info.field_name]:
            raise ValueError(f"must be at least {AT_LEAST[info.field_name]}")
        return value

    @field_validator("lr", "dpo_beta")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("min_lr_ratio")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("must be between 0 and 1")
        return value

    @field_validator("train_data")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("names no dataset")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE.match(value):
            raise ValueError("is not auto, cpu, mps, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _a_model(self) -> "TrainSpec":
        if not self.model_dir and not self.init:
            raise ValueError("set model_dir (a saved model) or init (a model_init spec)")
        if self.objective == "dpo" and (self.eval_data or not self.model_dir):
            raise ValueError("dpo tunes a saved model (model_dir) and takes no eval_data")
        return self


class TrainSpecError(ValueError):
    """Training settings that do not make a ``TrainSpec``; the message is one line."""


def parse_spec(settings: Mapping[str, Any] | TrainSpec) -> TrainSpec:
    """``settings`` as a ``TrainSpec``, or ``TrainSpecError`` naming every bad setting in one line."""
    if isinstance(settings, TrainSpec):
        return settings
    try:
        return TrainSpec.model_validate(dict(settings))
    except ValidationError as err:
        raise TrainSpecError("bad training settings: " + "; ".join(_describe(e) for e in err.errors())) from None


def _known_names() -> list[str]:
    return sorted({*TrainSpec.model_fields, *LoraSpec.model_fields, *InitSpec.model_fields})


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), _known_names(), n=1)
        return f"unknown setting {where!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if error["type"] == "missing":
        return f"{where} is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not where:
        return message
    if error["type"] == "value_error":  # ours: "max_steps must be at least 1 (got 0)"
        return f"{where} {message} (got {error['input']!r})"
    return f"{where}: {message} (got {error['input']!r})"
