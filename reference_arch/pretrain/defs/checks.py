"""Asset checks of the pretrain location: each re-derives its claim from the stored data."""

import collections

import dagster as dg

from reference_arch.common.questions import markdown_code
from reference_arch.pretrain import store
from reference_arch.pretrain.defs.evaluation import evaluation, evaluation_failures, published_model
from reference_arch.pretrain.defs.ingestion import clean_corpus
from reference_arch.pretrain.defs.processing import SHARDS, token_shards, tokenizer, training_dataset


def _clean_files() -> list[dict]:
    from reference_arch.pretrain.corpus import read_parquet

    return read_parquet(store.path("corpus") / "clean.parquet")


@dg.asset_check(asset=clean_corpus, description="No two kept files have the same content hash.")
def no_exact_duplicates() -> dg.AssetCheckResult:
    counts = collections.Counter(f["sha256"] for f in _clean_files())
    dupes = sum(n - 1 for n in counts.values() if n > 1)
    return dg.AssetCheckResult(passed=dupes == 0, metadata={"exact_duplicates": dupes})


@dg.asset_check(asset=clean_corpus, description="The share of kept files that still have a near-duplicate "
                "among the kept files (MinHash LSH, same threshold) is below the configured ceiling.")
def near_duplicate_rate() -> dg.AssetCheckResult:
    from reference_arch.pretrain.cleaning import Rules, near_duplicates

    manifest = store.read_manifest("clean_corpus")
    settings = dict(manifest["rules"])
    ceiling = settings.pop("max_near_duplicate_rate")
    files = _clean_files()
    _, pairs = near_duplicates(files, Rules(**settings))
    rate = len(pairs) / max(len(files), 1)
    return dg.AssetCheckResult(passed=rate <= ceiling, metadata={
        "near_duplicate_rate": rate, "ceiling": ceiling, "pairs": len(pairs),
        "examples": dg.MetadataValue.md("\n".join(f"- {a} ~ {b} ({j:.2f})" for a, b, j in pairs[:10]) or "none")})


@dg.asset_check(asset=clean_corpus, description="Every kept file parses as Python (`ast.parse`).")
def all_files_parse() -> dg.AssetCheckResult:
    from reference_arch.pretrain.cleaning import parses

    failing = [f["path"] for f in _clean_files() if not parses(f["text"])]
    return dg.AssetCheckResult(passed=not failing, metadata={"not_parsing": len(failing),
                                                             "examples": ", ".join(failing[:10]) or "none"})


@dg.asset_check(asset=tokenizer, description="Encoding then decoding a sample of files gives back the exact text; "
                "end-of-text and pad are distinct special tokens; the text of every special token encodes to no "
                "control id (text from data never becomes a control token).")
def tokenizer_round_trips() -> dg.AssetCheckResult:
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.pretrain.corpus import stable_hash
    from reference_arch.pretrain.tokenization import control_token_counts, encode, round_trips

    manifest = store.read_manifest("tokenizer")
    tok = load_tokenizer(manifest["path"])
    sample = sorted(_clean_files(), key=lambda f: stable_hash(f["path"], "sample:"))[: manifest["check_sample"]]
    failing = [f["path"] for f in sample if not round_trips(tok, f["text"])]
    distinct = tok.eos_token_id is not None and tok.pad_token_id is not None and tok.eos_token_id != tok.pad_token_id
    probe = "x = '" + "', '".join(tok.all_special_tokens) + "'\n"  # a file quoting every special token
    probe_controls = control_token_counts(tok, encode(tok, [probe]))[0] - 1
    return dg.AssetCheckResult(passed=not failing and distinct and probe_controls == 0, metadata={
        "files_checked": len(sample), "failures": len(failing), "eos_pad_distinct": distinct,
        "control_ids_from_special_token_text": probe_controls, "examples": ", ".join(failing[:10]) or "none"})


@dg.asset_check(asset=token_shards, partitions_def=SHARDS, description="Each stored document holds exactly one "
                "control id, the end-of-text that closes it: text in a file never became a control token.")
def one_control_token_per_document(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    from reference_arch.common.trainer.causal_lm import load_tokenizer
    from reference_arch.pretrain.tokenization import control_token_counts, read_documents

    manifest = store.read_manifest(f"shards/{context.partition_key}")
    tok = load_tokenizer(store.read_manifest("tokenizer")["path"])
    paths, sequences = read_documents([manifest["path"]])
    counts = control_token_counts(tok, sequences)
    wrong = [(p, c) for p, c in zip(paths, counts) if c != 1]
    return dg.AssetCheckResult(passed=not wrong, metadata={
        "documents": len(counts), "control_tokens": sum(counts), "documents_wrong": len(wrong),
        "examples": ", ".join(f"{p} ({c})" for p, c in wrong[:10]) or "none"})


@dg.asset_check(asset=token_shards, partitions_def=SHARDS, description="The shard holds at least one file (a warning: a corpus smaller than the shard count "
                "leaves some shards empty, and still trains).")
def shard_not_empty(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    manifest = store.read_manifest(f"shards/{context.partition_key}")
    return dg.AssetCheckResult(passed=manifest["files"] > 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"files": manifest["files"], "tokens": manifest["tokens"]})


@dg.asset_check(asset=training_dataset, description="Token counts add up across shards: every kept file is in "
                "exactly one shard, and the blocks plus the dropped tails account for every token.")
def token_counts_add_up() -> dg.AssetCheckResult:
    import datasets

    data = store.read_manifest("training_dataset")
    clean = store.read_manifest("clean_corpus")
    stored = {split: len(datasets.load_from_disk(data[f"{split}_path"])) for split in ("train", "validation")}
    in_blocks = (stored["train"] + stored["validation"]) * data["block_size"]
    files_ok = data["files"] == clean["files"]
    tokens_ok = in_blocks + data["dropped_tokens"] == data["tokens"] == sum(data["shard_tokens"].values())
    blocks_ok = stored["train"] == data["train_blocks"] and stored["validation"] == data["validation_blocks"]
    return dg.AssetCheckResult(passed=files_ok and tokens_ok and blocks_ok, metadata={
        "files_in_shards": data["files"], "files_kept": clean["files"], "tokens": data["tokens"],
        "tokens_in_blocks": in_blocks, "dropped_tokens": data["dropped_tokens"]})


@dg.asset_check(asset=evaluation, blocking=True, description="The publishing gate: held-out perplexity below the "
                "initial model's and at most max_perplexity, and at least min_parse_rate of completions parse. "
                "Blocking: a failing model is not published.")
def evaluation_gate() -> dg.AssetCheckResult:
    result = store.read_manifest("evaluation")
    failures = evaluation_failures(result)
    return dg.AssetCheckResult(passed=not failures, description="; ".join(failures) or "passed", metadata={
        "perplexity": result["perplexity"], "initial_perplexity": result["initial_perplexity"],
        "max_perplexity": result["max_perplexity"],
        "parse_rate": result["parse_rate"], "min_parse_rate": result["min_parse_rate"]})


@dg.asset_check(asset=published_model, description="The published model loads from the registry through "
                "LLMResource and completes a prompt.")
def published_model_loads() -> dg.AssetCheckResult:
    from reference_arch.common.llm.resource import LLMResource

    spec = store.read_manifest("published_model")["spec"]
    # short: the chat template and the answer must fit the smallest preset's 32-token window (a longer prompt is
    # refused, not cut)
    llm = LLMResource(provider="local", model=spec, max_tokens=4, cache=False)
    text = llm.generate("def")
    return dg.AssetCheckResult(passed=isinstance(text, str), metadata={
        "model": spec, "completion": dg.MetadataValue.md(markdown_code(text))})


