"""DPO in the shared trainer: preference pairs and trl's ``DPOTrainer`` (``TrainSpec.objective == "dpo"``).

The pairs come tokenized, as the asset that built them tokenized them (``causal_lm.encode_chat``:
text never becomes a control token): a ``datasets.save_to_disk`` directory with the columns
``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` (lists of token ids; each completion ends with
the end-of-text id). ``PairTrainer`` trains on them as they are, so the model is tuned on exactly
the ids the evaluation scores. The reference model of the DPO loss is the base: with LoRA, the same
model with its adapter switched off (no second copy); without, a frozen copy made by trl.

Imported only by the training process (``entry.train``): it loads trl, transformers and torch at import.
"""

from __future__ import annotations

import warnings

from trl import DPOConfig, DPOTrainer

from reference_arch.common.trainer.data import load_datasets
from reference_arch.common.trainer.loop import RetiedOnResume, training_arguments
from reference_arch.common.trainer.spec import TrainSpec

PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")

# trl (1.16) toggles gradient checkpointing through transformers 5's deprecated names around each
# reference forward pass: FutureWarnings about trl's code, not ours, silenced in this process only.
warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing\w*` is deprecated", category=FutureWarning)


def load_pairs(paths: list[str]):
    """The preference pairs at ``paths``, one dataset after the other; ``ValueError`` naming what is missing."""
    return load_datasets(paths, PAIR_COLUMNS).select_columns(list(PAIR_COLUMNS))


def longest_pair(data) -> int:
    """Tokens of the longest prompt + completion (chosen or rejected) in ``data``."""
    return max(len(p) + max(len(c), len(r)) for p, c, r in zip(*(data[c] for c in PAIR_COLUMNS)))


class PairTrainer(RetiedOnResume, DPOTrainer):
    """``DPOTrainer`` on pairs already tokenized by the caller (its own tokenization is skipped)."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def pair_trainer(model, spec: TrainSpec, device: str, bf16: bool, train_data, tokenizer, callbacks: list) -> PairTrainer:
    """trl's DPO trainer on ``train_data`` with the shared schedule (``loop.training_arguments``) and
    ``spec.dpo_beta``; reporting through ``callbacks`` instead of printing."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    args = training_arguments(spec, device, bf16, evaluate=False, kind=DPOConfig, beta=spec.dpo_beta,
                              max_length=longest_pair(train_data), precompute_ref_log_probs=False)
    trainer = PairTrainer(model=model, args=args, train_dataset=train_data, processing_class=tokenizer,
                          callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer

