"""What the trainer trains on: Arrow datasets (``datasets.save_to_disk`` directories) of
fixed-length ``input_ids`` blocks, with optional ``labels`` (-100: no loss, so prompt tokens can be
masked) and ``attention_mask`` columns; and the batches they make."""

from __future__ import annotations

import dataclasses
import os

COLUMNS = ("input_ids", "labels", "attention_mask")


def load_datasets(paths: list[str], columns: tuple[str, ...]):
    """The datasets at ``paths``, one after the other; ``ValueError`` when one is missing, lacks one of
    ``columns``, or all are empty."""
    import datasets

    parts = []
    for path in paths:
        try:
            parts.append(datasets.load_from_disk(path))
        except FileNotFoundError:
            raise ValueError(f"no dataset at {path} (expected a datasets.save_to_disk directory)") from None
    data = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(f"the dataset at {paths} has no {', '.join(missing)} column (columns: {data.column_names})")
    if len(data) == 0:
        raise ValueError(f"the dataset at {paths} is empty")
    return data


def load_blocks(paths: list[str]):
    """The datasets at ``paths``, one after the other, as torch tensors of their block columns."""
    data = load_datasets(paths, ("input_ids",))
    return data.with_format("torch", columns=[c for c in COLUMNS if c in data.column_names])


def collate_blocks(rows: list[dict]) -> dict:
    """Stack fixed-length blocks; the labels are the inputs unless the dataset masks some."""
    import torch

    ids = torch.stack([r["input_ids"] for r in rows])
    batch = {"input_ids": ids, "labels": torch.stack([r["labels"] for r in rows]) if "labels" in rows[0] else ids}
    if "attention_mask" in rows[0]:
        batch["attention_mask"] = torch.stack([r["attention_mask"] for r in rows])
    return batch


def world_size() -> int:
    """Processes training together (torchrun sets WORLD_SIZE; 1 alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@dataclasses.dataclass(frozen=True)
class BatchShape:
    """Tokens per block and per optimizer step, across every process."""

    block: int
    world: int
    tokens_per_step: int

    @classmethod
    def of(cls, data, model, batch_size: int, grad_accum: int) -> "BatchShape":
        """The shape of ``data``'s batches for ``model``; ``ValueError`` when the blocks exceed the
        model's context or the data cannot fill one batch."""
        return cls.of_length(int(data[0]["input_ids"].shape[0]), len(data), model, batch_size, grad_accum)

    @classmethod
    def of_length(cls, block: int, rows: int, model, batch_size: int, grad_accum: int) -> "BatchShape":
        """The shape of ``rows`` rows of ``block`` tokens; the same ``ValueError`` as ``of``."""
        config = model.config
        context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", block)
        if block > context:
            raise ValueError(f"blocks of {block} tokens exceed the model's context of {context}")
        world = world_size()
        if rows < batch_size * world:
            raise ValueError(f"{rows} training rows cannot fill one batch of {batch_size * world}")
        return cls(block=block, world=world, tokens_per_step=batch_size * grad_accum * world * block)
