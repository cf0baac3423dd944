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
    import shutil

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
    else:
        texts = [f["text"] for f in read_parquet(store.path("corpus") / "clean.parquet")]
        tok = train_tokenizer(texts, config.vocab_size, config.min_frequency)
        how = "trained"
    target = store.path("tokenizer")
    staging = target.with_name(".tokenizer.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    tok.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    digest = hashlib.sha256((target / "tokenizer.json").read_bytes()).hexdigest()
    store.write_manifest("tokenizer", {"path": str(target), "vocab_size": len(tok), "fingerprint": digest,
                                       "how": how, "corpus_hash": clean["corpus_hash"],
                                       "check_sample": config.check_sample})
    return dg.MaterializeResult(metadata={
        "vocab_size": len(tok), "how": how, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
        "path": dg.MetadataValue.path(str(target)), "fingerprint": digest})


# -- tokenization ----------------------------------------------------------------------------------
class ShardConfig(dg.Config):
    block_size: int = Field(DEFAULT_BLOCK_SIZE, description="Tokens per training block (the model's context)")
    validation_fraction: float = Field(0.05, description="Share of files (by path hash) held out for validation")


@dg.asset(**COMMON, kinds={"huggingface", "python"}, deps=[clean_corpus, tokenizer], partitions_def=SHARDS,
          description=(
              "Token ids of one shard of the cleaned corpus (files assigned by a stable hash of their path), "
              "encoded with `encode_batch`, packed into fixed-length blocks and stored as Arrow (HF `datasets`); "
              "each file's side of the train/validation split is a stable hash too. Shards run concurrently."))
def token_shards(context: dg.AssetExecutionContext, config: ShardConfig) -> dg.MaterializeResult:
    from transformers import AutoTokenizer

    from reference_arch.pretrain.corpus import read_parquet
    from reference_arch.pretrain.tokenization import save_dataset, shard_of, tokenize_files

    key = context.partition_key
    index = SHARDS.get_partition_keys().index(key)
    tok_manifest = store.read_manifest("tokenizer")
    tok = AutoTokenizer.from_pretrained(tok_manifest["path"])
    files = [f for f in read_parquet(store.path("corpus") / "clean.parquet") if shard_of(f["path"], N_SHARDS) == index]
    dataset, stats = tokenize_files(tok, files, config.block_size, config.validation_fraction)
    target = save_dataset(dataset, store.path("shards") / key)
    manifest = store.write_manifest(f"shards/{key}", {
        "path": str(target), **stats, "block_size": config.block_size,
        "validation_fraction": config.validation_fraction, "tokenizer_fingerprint": tok_manifest["fingerprint"]})
    return dg.MaterializeResult(metadata={
        **{k: manifest[k] for k in ("files", "tokens", "train_blocks", "validation_blocks", "dropped_tokens")},
        "block_size": config.block_size, "path": dg.MetadataValue.path(str(target))})


# -- training dataset ------------------------------------------------------------------------------
@dg.asset(**COMMON, kinds={"huggingface"}, deps=[token_shards], description=(
    "Every shard's blocks concatenated into `datasets.Dataset`s, split deterministically into train and "
    "validation (by each file's path hash), saved as Arrow for the trainer."))
def training_dataset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    import datasets

    from reference_arch.pretrain.tokenization import save_dataset, shard_keys

    shards = {}
    for key in shard_keys(N_SHARDS):
        shards[key] = store.read_manifest(f"shards/{key}")
    sizes = {s["block_size"] for s in shards.values()}
    fingerprints = {s["tokenizer_fingerprint"] for s in shards.values()}
    if len(sizes) > 1 or len(fingerprints) > 1:
        raise dg.Failure(f"the shards disagree (block sizes {sorted(sizes)}, {len(fingerprints)} tokenizers): "
                         "re-materialize every shard of pretrain/token_shards with one config")
    block = sizes.pop()
    train_blocks = sum(s["train_blocks"] for s in shards.values())
    val_blocks = sum(s["validation_blocks"] for s in shards.values())
    tokens = sum(s["tokens"] for s in shards.values())
    if train_blocks == 0:
        raise dg.Failure(f"the corpus is too small for one training block: {tokens:,} tokens in all, blocks of "
                         f"{block} tokens; add source files, raise the corpus byte budget or lower block_size")
    if val_blocks == 0:
        raise dg.Failure(f"no validation block: the validation files hold fewer than {block} tokens; raise "
                         "validation_fraction or add source files")
    parts = [datasets.load_from_disk(s["path"]) for s in shards.values() if s["train_blocks"] + s["validation_blocks"]]
    every = datasets.concatenate_datasets(parts)
    splits = {}
    for split in ("train", "validation"):
        subset = every.filter(lambda batch: [s == split for s in batch["split"]], batched=True,
                              keep_in_memory=True).remove_columns("split")
        splits[split] = str(save_dataset(subset, store.path("dataset") / split))
    clean = store.read_manifest("clean_corpus")
    manifest = store.write_manifest("training_dataset", {
        "train_path": splits["train"], "validation_path": splits["validation"], "train_blocks": train_blocks,
        "validation_blocks": val_blocks, "block_size": block, "tokens": tokens,
        "dropped_tokens": sum(s["dropped_tokens"] for s in shards.values()),
        "files": sum(s["files"] for s in shards.values()),
        "shard_tokens": {k: s["tokens"] for k, s in shards.items()},
        "validation_paths": sorted(p for s in shards.values() for p in s["validation_paths"]),
        "tokenizer_fingerprint": fingerprints.pop(), "corpus_hash": clean["corpus_hash"],
        "fingerprint": store.fingerprint([s for _, s in sorted(shards.items())], clean["corpus_hash"])})
    return dg.MaterializeResult(metadata={
        "train_blocks": train_blocks, "validation_blocks": val_blocks, "block_size": block,
        "train_tokens": train_blocks * block, "validation_tokens": val_blocks * block, "tokens": tokens,
        "dropped_tokens": manifest["dropped_tokens"], "fingerprint": manifest["fingerprint"][:16]})
