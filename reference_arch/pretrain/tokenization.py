"""The tokenizer (byte-level BPE), sharded tokenization, and the split and packing into blocks.

A file's shard is a stable hash of its relative path; so is its train/validation side, topped up
in hash order when the held-out files would not fill one block (``split_documents``). The split is
by file, so validation text never leaks into training blocks. Each file ends with the end-of-text
token, the only control token its text produces; the token stream of each side is cut into
blocks of ``block_size`` and the tail that does not fill a block is dropped (and counted).
"""

from __future__ import annotations

import contextlib
import functools
import os
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator, Optional

from reference_arch.pretrain.corpus import stable_hash

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, min_frequency: int = 2):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with distinct end-of-text and pad tokens: the
    project's one recipe (pretrain/tokenizer, the tests' tiny models and the benchmarks use it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    with tokenizers_parallelism():
        tok.train_from_iterator(texts, trainer)
    # split_special_tokens: a corpus file holding the text "<|endoftext|>" is not an end of text.
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   clean_up_tokenization_spaces=False, split_special_tokens=True)


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
    """Token ids of each text followed by end-of-text, through the multi-threaded ``encode_batch``.
    Special-token strings inside a text are encoded as text: the end-of-text each file ends with
    is the only control id (see ``control_token_counts``)."""
    eos = tokenizer.eos_token_id
    backend = tokenizer.backend_tokenizer
    before = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        with tokenizers_parallelism():
            encodings = backend.encode_batch(texts, add_special_tokens=False)
    finally:
        backend.encode_special_tokens = before
    return [e.ids + [eos] for e in encodings]


def control_token_counts(tokenizer, sequences) -> list[int]:
    """Control (special) ids in each encoded document (``sequences``: lists or arrays of ids, or an Arrow
    list array): 1 each (its end-of-text) when text from the data produced none. Counted over the flat ids
    in one pass, so the check costs the shard work little."""
    import numpy as np
    import pyarrow as pa

    from reference_arch.common.trainer.causal_lm import control_ids

    if not isinstance(sequences, (pa.ListArray, pa.LargeListArray)):
        sequences = pa.array([np.asarray(s).tolist() for s in sequences], type=pa.large_list(pa.int64()))
    if len(sequences) == 0:
        return []
    offsets = sequences.offsets.to_numpy()
    hits = np.isin(sequences.values.to_numpy(zero_copy_only=False), sorted(control_ids(tokenizer)))
    ends = np.concatenate([[0], np.cumsum(hits)])
    return (ends[offsets[1:]] - ends[offsets[:-1]]).astype(int).tolist()


def pack(sequences: list[list[int]], block_size: int):
    """(blocks as an (n, block_size) int32 array, dropped tail token count)."""
    import numpy as np

    parts = [np.asarray(s, dtype=np.int32) for s in sequences]
    flat = np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)
    n = len(flat) // block_size
    return flat[: n * block_size].reshape(n, block_size), int(len(flat) - n * block_size)


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str):
    from reference_arch.common.trainer.causal_lm import load_tokenizer

    return load_tokenizer(path)


def encode_file(row: dict, tokenizer_path: str) -> dict:
    """``{"input_ids"}`` of one file (``encode``), with the tokenizer saved at ``tokenizer_path``: the unit of
    work ``engine.map_rows`` sends to a Ray worker, which loads the tokenizer once."""
    return {"input_ids": encode(_tokenizer(tokenizer_path), [row["text"]])[0]}


def tokenize_files(tokenizer, files: list[dict], tokenizer_path: Optional[str] = None, where: Optional[str] = None):
    """(an Arrow table of documents: ``path`` and ``input_ids``, each ending with end-of-text;
    counts) for ``files`` of one shard, encoded here (one multi-threaded ``encode_batch``) or on Ray
    (``where``, default ``REFERENCE_ARCH_PRETRAIN_ENGINE``; the same ids, from ``tokenizer_path``). Splitting and
    packing wait for the training dataset, which sees every shard: a small corpus still gets its validation
    block (``split_documents``)."""
    import pyarrow as pa

    from reference_arch.pretrain.engine import engine, map_rows

    if (where or engine()) == "local" or tokenizer_path is None:
        sequences = encode(tokenizer, [f["text"] for f in files])  # one encode_batch call for the whole shard
    else:
        sequences = [r["input_ids"] for r in map_rows(partial(encode_file, tokenizer_path=tokenizer_path),
                                                      [{"text": f["text"]} for f in files], where)]
    ids = pa.array(sequences, type=pa.large_list(pa.int32()))
    controls = control_token_counts(tokenizer, ids)
    table = pa.table({"path": pa.array([f["path"] for f in files], type=pa.string()), "input_ids": ids})
    stats = {"files": len(files), "tokens": sum(map(len, sequences)), "control_tokens": sum(controls),
             "documents_with_stray_control_tokens": sum(c != 1 for c in controls)}
    return table, stats


def save_documents(table, path: Path) -> Path:
    """The documents of one shard as Parquet, written atomically."""
    from reference_arch.common.atomic import write_parquet

    return write_parquet(path, table)


def read_documents(paths: list[str]) -> tuple[list[str], list]:
    """(file paths, token ids of each as a numpy array) of the shards saved at ``paths``."""
    import pyarrow.parquet as pq

    names, sequences = [], []
    for path in paths:
        table = pq.read_table(path)
        names += table.column("path").to_pylist()
        for chunk in table.column("input_ids").chunks:
            offsets, values = chunk.offsets.to_numpy(), chunk.values.to_numpy()
            sequences += [values[offsets[i]:offsets[i + 1]] for i in range(len(chunk))]
    return names, sequences


def split_documents(paths: list[str], lengths: list[int], fraction: float, min_validation_tokens: int) -> list[bool]:
    """Which documents are held out: those whose path hashes below ``fraction`` (the same file is
    always on the same side, whatever else the corpus holds) and, while the held-out documents
    hold fewer than ``min_validation_tokens``, the next ones in hash order, so that a small corpus
    (a new language, a few files) still has a validation block."""
    held_out = [is_validation(p, fraction) for p in paths]
    tokens = sum(n for n, v in zip(lengths, held_out) if v)
    for i in sorted(range(len(paths)), key=lambda i: stable_hash(paths[i], "split:")):
        if tokens >= min_validation_tokens:
            break
        if not held_out[i]:
            held_out[i] = True
            tokens += lengths[i]
    return held_out


def blocks_dataset(blocks):
    """A ``datasets.Dataset`` with one ``input_ids`` row per block of an (n, block_size) array."""
    import datasets
    import pyarrow as pa

    ids = pa.FixedSizeListArray.from_arrays(pa.array(blocks.reshape(-1), type=pa.int32()), blocks.shape[1])
    return datasets.Dataset(pa.table({"input_ids": ids}))


def save_dataset(dataset, path: Path) -> Path:
    """``save_to_disk`` through a temporary directory, replacing what was there only on success."""
    from reference_arch.common.atomic import staging_dir

    with staging_dir(path) as staging:
        dataset.save_to_disk(str(staging))
    return path
