"""The data half of pretraining: corpus -> cleaned corpus -> tokenizer -> token shards -> training dataset."""

import os
from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common.locations import OWNERS
from reference_arch.pretrain import store
from reference_arch.pretrain.cleaning import REASONS, Rules
from reference_arch.pretrain.corpus import DEFAULT_EXCLUDE, SKIP_REASONS, CorpusError

N_SHARDS = int(os.environ.get("REFERENCE_ARCH_PRETRAIN_SHARDS", "8"))
# The demo's budget: enough Python for a few hundred steps of the tiny model (see trained_model).
DEMO_CORPUS_BYTES = 3_000_000
DEFAULT_BLOCK_SIZE = 256

COMMON = dict(key_prefix=["pretrain"], group_name="pretrain", owners=OWNERS)


def _shards_def():
    from reference_arch.pretrain.tokenization import shard_keys

    return dg.StaticPartitionsDefinition(shard_keys(N_SHARDS))


SHARDS = _shards_def()


def _table(records: list[dict], columns: list[tuple[str, str]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: r.get(c) for c, _ in columns}) for r in records],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, t) for c, t in columns]))


# -- ingestion -------------------------------------------------------------------------------------
class CorpusConfig(dg.Config):
    source_dir: Optional[str] = Field(None, description="Directory of source code; default "
                                      "REFERENCE_ARCH_CORPUS_DIR, else the running Python's standard library")
    git_url: Optional[str] = Field(None, description="Clone this git repository (shallow) instead")
    github_repo: Optional[str] = Field(None, description="owner/name: download through the GitHub API instead")
    ref: Optional[str] = Field(None, description="Branch, tag or commit for git_url / github_repo")
    extensions: list[str] = [".py"]
    max_bytes: int = Field(DEMO_CORPUS_BYTES, description="Byte budget of the corpus (files sampled by path hash)")
    max_file_bytes: int = 1_000_000
    exclude: list[str] = list(DEFAULT_EXCLUDE)


@dg.asset(**COMMON, kinds={"python"}, description=(
    "Source files of the pretraining corpus: a local directory (default: the Python standard library), "
    "a git checkout or a GitHub repository, sampled by a stable path hash up to a byte budget. Binary, "
    "non-UTF-8, empty, over-large files and symlinks are skipped and counted."))
def raw_corpus(context: dg.AssetExecutionContext, config: CorpusConfig) -> dg.MaterializeResult:
    from reference_arch.pretrain.corpus import default_corpus_dir, git_checkout, github_tarball, scan_directory, \
        write_parquet

    try:
        if config.git_url:
            root, source = git_checkout(config.git_url, store.path("sources") / "git", config.ref), config.git_url
        elif config.github_repo:
            root = github_tarball(config.github_repo, store.path("sources") / "github", config.ref,
                                  token=os.environ.get("GITHUB_TOKEN"),
                                  api_url=os.environ.get("GITHUB_API_URL", "https://api.github.com"))
            source = f"github:{config.github_repo}"
        else:
            root = config.source_dir or default_corpus_dir()
            source = str(root)
        scan = scan_directory(root, extensions=tuple(config.extensions), max_bytes=config.max_bytes,
                              max_file_bytes=config.max_file_bytes, exclude=tuple(config.exclude))
    except CorpusError as err:
        raise dg.Failure(str(err)) from None
    if not scan.files:
        raise dg.Failure(f"no usable {'/'.join(config.extensions)} files under {source} "
                         f"(skipped: {dict(scan.skipped)})")
    write_parquet(scan.files, store.path("corpus") / "raw.parquet")
    manifest = store.write_manifest("raw_corpus", {
        "source": source, "files": len(scan.files), "bytes": scan.total_bytes, "corpus_hash": scan.corpus_hash(),
        "skipped": dict(scan.skipped), "max_bytes": config.max_bytes})
    context.log.info(f"{len(scan.files)} files ({scan.total_bytes:,} bytes) from {source}; skipped {dict(scan.skipped)}")
    return dg.MaterializeResult(metadata={
        "source": source, "files": len(scan.files), "bytes": scan.total_bytes, "files_seen": scan.seen,
        "corpus_hash": manifest["corpus_hash"],
        **{f"skipped/{r}": scan.skipped.get(r, 0) for r in SKIP_REASONS},
        "sample": _table(scan.files[:20], [("path", "string"), ("bytes", "int")]),
    })


# -- cleaning --------------------------------------------------------------------------------------
class CleaningConfig(dg.Config):
    min_bytes: int = 200
    max_bytes: int = 100_000
    max_line_length: int = 1000
    max_mean_line_length: float = 100.0
    near_duplicate_threshold: float = Field(0.85, description="Estimated Jaccard similarity above which "
                                            "a file is a near-duplicate of one already kept")
    num_perm: int = 128
    shingle_size: int = 5
    max_near_duplicate_rate: float = Field(0.01, description="The check's ceiling on near-duplicates left")


@dg.asset(**COMMON, kinds={"python"}, deps=[raw_corpus], description=(
    "The corpus cleaned: exact duplicates (content hash) and near-duplicates (MinHash LSH, datasketch) "
    "removed, files that do not parse as Python removed, auto-generated, minified, too-short and "
    "too-long files removed; each removal counted."))
def clean_corpus(context: dg.AssetExecutionContext, config: CleaningConfig) -> dg.MaterializeResult:
    from reference_arch.pretrain.cleaning import clean
    from reference_arch.pretrain.corpus import read_parquet, write_parquet

    raw = store.read_manifest("raw_corpus")
    files = read_parquet(store.path("corpus") / "raw.parquet")
    rules = Rules(**config.model_dump(exclude={"max_near_duplicate_rate"}))
    kept, removed, counts = clean(files, rules)
    if not kept:
        raise dg.Failure(f"cleaning removed every file of the corpus ({dict(counts)}); relax the rules or "
                         "point the corpus at more Python")
    write_parquet(kept, store.path("corpus") / "clean.parquet")
    from reference_arch.pretrain.corpus import Scan

    corpus_hash = Scan(files=kept).corpus_hash()
    store.write_manifest("clean_corpus", {
        "files": len(kept), "bytes": sum(f["bytes"] for f in kept), "removed": dict(counts),
        "corpus_hash": corpus_hash, "raw_corpus_hash": raw["corpus_hash"], "rules": config.model_dump()})
    return dg.MaterializeResult(metadata={
        "files_in": len(files), "files_kept": len(kept), "bytes_kept": sum(f["bytes"] for f in kept),
        **{f"removed/{r}": counts.get(r, 0) for r in REASONS}, "corpus_hash": corpus_hash,
        "removed_sample": _table(removed[:50], [("path", "string"), ("reason", "string"), ("detail", "string")]),
    })


# -- tokenizer -------------------------------------------------------------------------------------
class TokenizerConfig(dg.Config):
    vocab_size: int = 8192
    min_frequency: int = 2
    from_model: Optional[str] = Field(None, description="Reuse the tokenizer of this model (registry spec or "
                                      "path) instead of training one: needed to grow an existing model")
    check_sample: int = 50


@dg.asset(**COMMON, kinds={"huggingface", "python"}, deps=[clean_corpus], description=(
    "A byte-level BPE tokenizer trained on the cleaned corpus with `tokenizers` (end-of-text and pad "
    "tokens distinct), saved as a `PreTrainedTokenizerFast`."))
def tokenizer(context: dg.AssetExecutionContext, config: TokenizerConfig) -> dg.MaterializeResult:
    import hashlib

    from reference_arch.common.atomic import staging_dir
    from reference_arch.common.causal_lm import no_control_tokens_from_text
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import PAD, train_tokenizer

    clean = store.read_manifest("clean_corpus")
    if config.from_model:
        from reference_arch.common.model_init import ModelInitError, load_source

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


@dg.asset(**COMMON, kinds={"huggingface", "python"}, deps=[clean_corpus, tokenizer], partitions_def=SHARDS,
          description=(
              "Token ids of one shard of the cleaned corpus (files assigned by a stable hash of their path), "
              "encoded with `encode_batch`, one document per file ending with end-of-text, stored as "
              "Parquet. Text in a file never becomes a control token. Shards run concurrently."))
def token_shards(context: dg.AssetExecutionContext, config: ShardConfig) -> dg.MaterializeResult:
    from reference_arch.common.causal_lm import load_tokenizer
    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import save_documents, shard_of, tokenize_files

    key = context.partition_key
    index = SHARDS.get_partition_keys().index(key)
    tok_manifest = store.read_manifest("tokenizer")
    tok = load_tokenizer(tok_manifest["path"])
    files = [f for f in read_parquet(store.path("corpus") / "clean.parquet") if shard_of(f["path"], N_SHARDS) == index]
    table, stats = tokenize_files(tok, files)
    target = save_documents(table, store.path("shards") / f"{key}.parquet")
    manifest = store.write_manifest(f"shards/{key}", {
        "path": str(target), **stats, "block_size": config.block_size,
        "validation_fraction": config.validation_fraction, "tokenizer_fingerprint": tok_manifest["fingerprint"]})
    return dg.MaterializeResult(metadata={
        **{k: manifest[k] for k in ("files", "tokens", "control_tokens")},
        "block_size": config.block_size, "path": dg.MetadataValue.path(str(target))})


# -- training dataset ------------------------------------------------------------------------------
@dg.asset(**COMMON, kinds={"huggingface"}, deps=[token_shards], description=(
    "Every shard's documents split by file into train and validation (a stable hash of the path, topped "
    "up to at least one validation block), each side packed into fixed-length blocks and saved as Arrow "
    "`datasets` for the trainer."))
def training_dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.pretrain.tokenization import blocks_dataset, is_validation, pack, read_documents, \
        save_dataset, shard_keys, split_documents

    shards = {}
    for key in shard_keys(N_SHARDS):
        shards[key] = store.read_manifest(f"shards/{key}")
    settings = {(s["block_size"], s["validation_fraction"]) for s in shards.values()}
    fingerprints = {s["tokenizer_fingerprint"] for s in shards.values()}
    if len(settings) > 1 or len(fingerprints) > 1 or any("control_tokens" not in s for s in shards.values()):
        raise dg.Failure(f"the shards disagree (block size and validation fraction {sorted(settings)}, "
                         f"{len(fingerprints)} tokenizers, or an older format): re-materialize every shard of "
                         "pretrain/token_shards with one config")
    block, fraction = settings.pop()
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

