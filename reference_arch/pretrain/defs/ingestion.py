"""Pretrain step 1, ingestion: the corpus (a folder, a git checkout or a GitHub tarball) and its cleaning."""

import os
from typing import Optional

import dagster as dg
from pydantic import Field

from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.pretrain import store
from reference_arch.pretrain.cleaning import REASONS, Rules
from reference_arch.pretrain.corpus import DEFAULT_EXCLUDE, SKIP_REASONS, CorpusError

# The demo's budget: enough Python for a few hundred steps of the tiny model (see trained_model).
DEMO_CORPUS_BYTES = 3_000_000


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


@dg.asset(**asset_defaults("pretrain"), kinds={"python"}, description=(
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
        "sample": table(scan.files[:20], [("path", "string"), ("bytes", "int")]),
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


@dg.asset(**asset_defaults("pretrain"), kinds={"python"}, deps=[raw_corpus], description=(
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
    from reference_arch.pretrain.engine import engine

    return dg.MaterializeResult(metadata={
        "engine": engine(), "files_in": len(files), "files_kept": len(kept), "bytes_kept": sum(f["bytes"] for f in kept),
        **{f"removed/{r}": counts.get(r, 0) for r in REASONS}, "corpus_hash": corpus_hash,
        "removed_sample": table(removed[:50], [("path", "string"), ("reason", "string"), ("detail", "string")]),
    })
