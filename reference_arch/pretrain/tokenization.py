"""The tokenizer (byte-level BPE) and sharded tokenization into fixed-length blocks.

A file's shard and its train/validation side are stable hashes of its relative path: the same
file always lands in the same shard and on the same side, whatever else the corpus holds, so
validation text never leaks into training blocks. Each file ends with the end-of-text token; the
token stream of each side is cut into blocks of ``block_size`` and the tail that does not fill a
block is dropped (and counted).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Iterator

from reference_arch.pretrain.corpus import stable_hash

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: list[str], vocab_size: int = 8192, min_frequency: int = 2):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with distinct end-of-text and pad tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    with tokenizers_parallelism():
        tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False)


@contextlib.contextmanager
def tokenizers_parallelism() -> Iterator[None]:
    """Let the Rust tokenizer use its threads here; the process keeps it off elsewhere, so that a
    fork after tokenizing cannot deadlock (the env var is read at each call)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def round_trips(tokenizer, text: str) -> bool:
    return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def shard_keys(n: int) -> list[str]:
    return [f"shard-{i:02d}" for i in range(n)]


def shard_of(path: str, n: int) -> int:
    return stable_hash(path, "shard:") % n


def is_validation(path: str, fraction: float) -> bool:
    return stable_hash(path, "split:") % 10_000 < fraction * 10_000


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text followed by end-of-text, through the multi-threaded ``encode_batch``."""
    eos = tokenizer.eos_token_id
    with tokenizers_parallelism():
        encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [e.ids + [eos] for e in encodings]


def pack(sequences: list[list[int]], block_size: int):
    """(blocks as an (n, block_size) int32 array, dropped tail token count)."""
    import numpy as np

    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int32)
    n = len(flat) // block_size
    return flat[: n * block_size].reshape(n, block_size), int(len(flat) - n * block_size)


def tokenize_files(tokenizer, files: list[dict], block_size: int, validation_fraction: float):
    """(a ``datasets.Dataset`` of blocks with a ``split`` column, counts) for ``files`` of one shard."""
    held_out = [is_validation(f["path"], validation_fraction) for f in files]
    sequences = encode(tokenizer, [f["text"] for f in files])  # one encode_batch call for the whole shard
    train, train_dropped = pack([s for s, v in zip(sequences, held_out) if not v], block_size)
    validation, val_dropped = pack([s for s, v in zip(sequences, held_out) if v], block_size)
    stats = {"files": len(files), "tokens": sum(map(len, sequences)), "train_blocks": len(train),
             "validation_blocks": len(validation), "dropped_tokens": train_dropped + val_dropped,
             "validation_paths": sorted(f["path"] for f, v in zip(files, held_out) if v)}
    return blocks_dataset(train, validation, block_size), stats


def blocks_dataset(train, validation, block_size: int):
    """A ``datasets.Dataset`` of ``input_ids`` blocks with a ``split`` column."""
    import datasets
    import numpy as np
    import pyarrow as pa

    both = np.concatenate([train, validation]).reshape(-1)
    ids = pa.FixedSizeListArray.from_arrays(pa.array(both, type=pa.int32()), block_size)
    split = pa.array(["train"] * len(train) + ["validation"] * len(validation))
    return datasets.Dataset(pa.table({"input_ids": ids, "split": split}))


def save_dataset(dataset, path: Path) -> Path:
    """``save_to_disk`` through a temporary directory, replacing what was there only on success."""
    import shutil

    staging = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)
    return path
