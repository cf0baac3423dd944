"""Pretrain step 2, processing: tokenizer -> token shards (static partitions, run concurrently) -> training dataset."""

from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common import settings
from reference_arch.common.locations import asset_defaults
from reference_arch.pretrain import store
from reference_arch.pretrain.defs.ingestion import clean_corpus

N_SHARDS = settings.value("pretrain_shards")
DEFAULT_BLOCK_SIZE = 256


def _shards_def():
    from reference_arch.pretrain.tokenization import shard_keys

    return dg.StaticPartitionsDefinition(shard_keys(N_SHARDS))


SHARDS = _shards_def()


class TokenizerConfig(dg.Config):
    vocab_size: int = 8192
    min_frequency: int = 2
    from_model: Optional[str] = Field(None, description="Reuse the tokenizer of this model (registry spec or "
                                      "path) instead of training one: needed to grow an existing model")
    check_sample: int = 50


@dg.asset(**asset_defaults("pretrain"), kinds={"huggingface", "python"}, deps=[clean_corpus], description=(
    "A byte-level BPE tokenizer trained on the cleaned corpus with `tokenizers` (end-of-text and pad "
    "tokens distinct), saved as a `PreTrainedTokenizerFast`."))
def tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig) -> dg.MaterializeResult:
    import hashlib

    from reference_arch.common.atomic import staging_dir
    from reference_arch.common.trainer.causal_lm import no_control_tokens_from_text
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import PAD, train_tokenizer

    clean = store.read_manifest("clean_corpus")
    if config.from_model:
        from reference_arch.common.trainer.model_init import ModelInitError, load_source

        try:
            _, tok = load_source(config.from_model)
        except ModelInitError as err:
            raise dg.Failure(str(err)) from None
        if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
            tok.add_special_tokens({"pad_token": PAD})
        how = f"from {config.from_model}"
        no_control_tokens_from_text(tok)  # saved with split_special_tokens: corpus text stays text
    else:
        texts = [f["text"] for f in read_parquet(store.path("corpus") / "clean.parquet")]
        tok = train_tokenizer(texts, config.vocab_size, config.min_frequency)
        how = "trained"
    target = store.path("tokenizer")
    with staging_dir(target) as staging:
        tok.save_pretrained(staging)
    digest = hashlib.sha256((target / "tokenizer.json").read_bytes()).hexdigest()
    store.write_manifest("tokenizer", {"path": str(target), "vocab_size": len(tok), "fingerprint": digest,
                                       "how": how, "corpus_hash": clean["corpus_hash"],
                                       "check_sample": config.check_sample})
    return dg.MaterializeResult(metadata={
        "vocab_size": len(tok), "how": how, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
        "path": dg.MetadataValue.path(str(target)), "fingerprint": digest})


# -- tokenization ----------------------------------------------------------------------------------
class ShardConfig(dg.Config):
    """Read by pretrain/training_dataset, which splits and packs every shard's documents."""

    block_size: int = Field(DEFAULT_BLOCK_SIZE, description="Tokens per training block (the model's context)")
    validation_fraction: float = Field(0.05, description="Share of files (by path hash) held out for validation; "
                                       "topped up in hash order to at least one block")


@dg.asset(**asset_defaults("pretrain"), kinds={"huggingface", "python"}, deps=[clean_corpus, tokenizer],
          partitions_def=SHARDS, description=(
              "Token ids of one shard of the cleaned corpus (files assigned by a stable hash of their path), "
              "encoded with `encode_batch`, one document per file ending with end-of-text, stored as "
              "Parquet. Text in a file never becomes a control token. Shards run concurrently."))
def token_shards(context: dg.AssetExecutionContext, config: ShardConfig) -> dg.MaterializeResult:
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import save_documents, shard_of, tokenize_files

    key = context.partition_key
    index = SHARDS.get_partition_keys().index(key)
    tok_manifest = store.read_manifest("tokenizer")
    tok = load_tokenizer(tok_manifest["path"])
    files = [f for f in read_parquet(store.path("corpus") / "clean.parquet") if shard_of(f["path"], N_SHARDS) == index]
    table, stats = tokenize_files(tok, files, tokenizer_path=tok_manifest["path"])  # here or on Ray (engine.py)
    target = save_documents(table, store.path("shards") / f"{key}.parquet")
    manifest = store.write_manifest(f"shards/{key}", {
        "path": str(target), **stats, "block_size": config.block_size,
        "validation_fraction": config.validation_fraction, "tokenizer_fingerprint": tok_manifest["fingerprint"]})
    from reference_arch.pretrain.engine import engine

    return dg.MaterializeResult(metadata={
        "engine": engine(), **{k: manifest[k] for k in ("files", "tokens", "control_tokens")},
        "block_size": config.block_size, "path": dg.MetadataValue.path(str(target))})


# -- training dataset ------------------------------------------------------------------------------
@dg.asset(**asset_defaults("pretrain"), kinds={"huggingface"}, deps=[token_shards], description=(
    "Every shard's documents split by file into train and validation (a stable hash of the path, topped "
    "up to at least one validation block), each side packed into fixed-length blocks and saved as Arrow "
    "`datasets` for the trainer."))
def training_dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.pretrain.tokenization import blocks_dataset, is_validation, pack, read_documents, \
        save_dataset, shard_keys, split_documents

    shards = {}
    for key in shard_keys(N_SHARDS):
        shards[key] = store.read_manifest(f"shards/{key}")
    shapes = {(s["block_size"], s["validation_fraction"]) for s in shards.values()}
    fingerprints = {s["tokenizer_fingerprint"] for s in shards.values()}
    if len(shapes) > 1 or len(fingerprints) > 1 or any("control_tokens" not in s for s in shards.values()):
        raise dg.Failure(f"the shards disagree (block size and validation fraction {sorted(shapes)}, "
                         f"{len(fingerprints)} tokenizers, or an older format): re-materialize every shard of "
                         "pretrain/token_shards with one config")
    block, fraction = shapes.pop()
    paths, sequences = read_documents([s["path"] for s in shards.values()])
    lengths = [len(s) for s in sequences]
    tokens = sum(lengths)
    minimum = 2 * block  # one validation block and one training block
    if tokens < minimum:
        raise dg.Failure(f"the corpus is too small to train on: {tokens:,} tokens in {len(paths)} files; it needs at "
                         f"least {minimum:,} tokens (one validation and one training block of {block}). Add source "
                         "files, raise the corpus byte budget or lower block_size")
    held_out = split_documents(paths, lengths, fraction, min_validation_tokens=block)
    train, train_dropped = pack([s for s, v in zip(sequences, held_out) if not v], block)
    validation, val_dropped = pack([s for s, v in zip(sequences, held_out) if v], block)
    if len(train) == 0 or len(validation) == 0:
        raise dg.Failure(f"the corpus is too small to train on: its {len(paths)} files ({tokens:,} tokens) split by "
                         f"file into {len(train)} training and {len(validation)} validation blocks of {block} tokens; "
                         f"it needs at least one of each (at least {minimum:,} tokens, more when single files are "
                         "large). Add source files or lower block_size")
    splits = {name: str(save_dataset(blocks_dataset(blocks), store.path("dataset") / name))
              for name, blocks in (("train", train), ("validation", validation))}
    clean = store.read_manifest("clean_corpus")
    by_hash = sum(is_validation(p, fraction) for p in paths)
    manifest = store.write_manifest("training_dataset", {
        "train_path": splits["train"], "validation_path": splits["validation"], "train_blocks": len(train),
        "validation_blocks": len(validation), "block_size": block, "tokens": tokens,
        "dropped_tokens": train_dropped + val_dropped, "files": len(paths),
        "shard_tokens": {k: s["tokens"] for k, s in shards.items()},
        "validation_paths": sorted(p for p, v in zip(paths, held_out) if v),
        "validation_files_topped_up": sum(held_out) - by_hash,
        "tokenizer_fingerprint": fingerprints.pop(), "corpus_hash": clean["corpus_hash"],
        "fingerprint": store.fingerprint([s for _, s in sorted(shards.items())], clean["corpus_hash"])})
    return dg.MaterializeResult(metadata={
        "train_blocks": len(train), "validation_blocks": len(validation), "block_size": block,
        "train_tokens": len(train) * block, "validation_tokens": len(validation) * block, "tokens": tokens,
        "validation_files": sum(held_out), "validation_files_topped_up": manifest["validation_files_topped_up"],
        "dropped_tokens": manifest["dropped_tokens"], "fingerprint": manifest["fingerprint"][:16]})
