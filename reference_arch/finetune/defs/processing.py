"""Processing: the leak-free train/validation split and the prompts in OpenAI chat JSONL.

``finetune/train_validation_split`` gathers every month's pairs, drops questions already asked in an
earlier month, and puts each issue on the side its id hashes to. ``finetune/prompts`` writes the two
chat JSONL files both backends train from: grounded examples (``grounding.py``: the question with three
maintainers' replies as numbered sources, answered in two cited sentences), within the token limit of the
model they are for (an example over it is dropped). Checks: the sides are disjoint; the files follow
OpenAI's format rules.
"""


import json
from collections import Counter
from pathlib import Path

import dagster as dg

from reference_arch.common.locations import asset_defaults
from reference_arch.common.questions import markdown_text
from reference_arch.finetune.config import FineTuningResource, prompts_path, sources_path, split_path
from reference_arch.finetune.defs.ingestion import MONTHLY, pairs_path, qa_pairs
from reference_arch.finetune.split import TRAIN, VALIDATION

SPLIT_KEY = dg.AssetKey(["finetune", "train_validation_split"])
PROMPTS_KEY = dg.AssetKey(["finetune", "prompts"])


def read_split() -> dict[str, list[dict]]:
    from reference_arch.finetune.jsonl import read_jsonl

    if not split_path().exists():
        raise dg.Failure(f"no train/validation split at {split_path()}: materialize finetune/train_validation_split")
    sides: dict[str, list[dict]] = {TRAIN: [], VALIDATION: []}
    for record in read_jsonl(split_path()):
        sides[record["side"]].append(record)
    return sides


@dg.asset(
    **asset_defaults("finetune"),
    deps=[qa_pairs],
    kinds={"python"},
    description="Every month's pairs, questions asked before removed, split into train and validation by a "
                "stable hash of the issue id: the same issue always lands on the same side.",
)
def train_validation_split(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource) -> dg.MaterializeResult:
    from reference_arch.finetune.jsonl import read_jsonl, write_jsonl
    from reference_arch.finetune.qa import drop_duplicates
    from reference_arch.finetune.split import split_pairs

    months = [m for m in MONTHLY.get_partition_keys() if pairs_path(m).exists()]
    pairs, duplicates = drop_duplicates([p for month in months for p in read_jsonl(pairs_path(month))])
    sides = split_pairs(pairs, fine_tuning.validation_fraction)
    write_jsonl(split_path(), [{**pair, "side": side} for side, rows in sides.items() for pair in rows])
    context.log.info(f"{len(pairs)} pairs from {len(months)} months: {len(sides[TRAIN])} train, "
                     f"{len(sides[VALIDATION])} validation")
    return dg.MaterializeResult(metadata={
        "months": len(months),
        "pairs": len(pairs),
        "train": len(sides[TRAIN]),
        "validation": len(sides[VALIDATION]),
        "duplicates_across_months": duplicates,
        "validation_fraction": fine_tuning.validation_fraction,
        "path": dg.MetadataValue.path(str(split_path())),
    })


@dg.asset_check(asset=train_validation_split, blocking=True,
                description="No issue, and no question text, is on both sides of the split.")
def split_is_disjoint() -> dg.AssetCheckResult:
    sides = read_split()
    shared_ids = {p["issue_id"] for p in sides[TRAIN]} & {p["issue_id"] for p in sides[VALIDATION]}
    shared_texts = {p["fingerprint"] for p in sides[TRAIN]} & {p["fingerprint"] for p in sides[VALIDATION]}
    return dg.AssetCheckResult(
        passed=not shared_ids and not shared_texts,
        metadata={"shared_issues": len(shared_ids), "shared_questions": len(shared_texts),
                  "train": len(sides[TRAIN]), "validation": len(sides[VALIDATION])},
        description=None if not (shared_ids or shared_texts) else
        f"{len(shared_ids)} issues and {len(shared_texts)} questions are on both sides",
    )


def model_context_length(model_dir: str) -> int:
    config = json.loads((Path(model_dir) / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        if config.get(key):
            return int(config[key])
    return 1024


def token_rules(fine_tuning: FineTuningResource):
    """(token counter, limit) for the model the examples are for."""
    from reference_arch.finetune.chat_format import (
        chat_template_counter, openai_token_limit, tiktoken_counter)

    if fine_tuning.resolved_backend() == "openai":
        model = fine_tuning.resolved_base_model()
        return tiktoken_counter(model), openai_token_limit(model)
    from reference_arch.finetune.local_backend import load_chat_tokenizer

    _, path = fine_tuning.base_model_path()
    return chat_template_counter(load_chat_tokenizer(path)), min(fine_tuning.max_seq_len, model_context_length(path))


@dg.asset(
    **asset_defaults("finetune"),
    deps=[train_validation_split],
    kinds={"python", "openai"},
    description="Train and validation prompts in OpenAI chat JSONL, in the RAG answer's format: the grounded-"
                "answer instructions, the issue with three maintainers' replies as numbered sources (its own and two "
                "others), and as the answer to learn the reply's first two sentences, each citing its source "
                "(weight 1); examples over the model's token limit are dropped.",
)
def prompts(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource) -> dg.MaterializeResult:
    from reference_arch.common.redaction import counts_metadata
    from reference_arch.finetune.grounding import grounded_example
    from reference_arch.finetune.jsonl import write_jsonl

    sides = read_split()
    counter, limit = token_rules(fine_tuning)
    kept: dict[str, list[dict]] = {}
    sources: dict[str, list[list[dict]]] = {}
    masked: dict[str, Counter] = {}  # placeholders per source repository (qa_pairs masked the pairs)
    too_long = no_sentence = train_too_long = 0
    for side, pairs in sides.items():
        kept[side], sources[side] = [], []
        for pair in pairs:
            built = grounded_example(pair, pairs if side == TRAIN else [*pairs, *sides[TRAIN]])
            if built is None:
                no_sentence += 1
                continue
            example, example_sources = built
            if counter.count(example["messages"]) > limit:
                too_long += 1
                train_too_long += side == TRAIN
                continue
            kept[side].append(example)
            sources[side].append(example_sources)
            count_placeholders(example, masked.setdefault(pair.get("repo") or "unknown", Counter()))
    # Refuse before anything is written, uploaded or trained: the files of the last good run stay.
    if len(kept[TRAIN]) < fine_tuning.min_examples:
        raise dg.Failure(
            f"only {len(kept[TRAIN])} training examples (of {len(sides[TRAIN])} training pairs, {train_too_long} over "
            f"the {limit}-token limit); fine-tuning needs at least {fine_tuning.min_examples}. "
            + (f"Raise max_seq_len (the model reads {limit}) or ingest more months of issues." if train_too_long else
               "Ingest more months of issues or lower min_examples (OpenAI requires 10)."))
    if not kept[VALIDATION]:
        raise dg.Failure(f"no validation examples (of {len(sides[VALIDATION])} pairs): ingest more issues or raise "
                         "validation_fraction")
    for side, examples in kept.items():
        write_jsonl(prompts_path(side), examples)
    write_jsonl(sources_path(), sources[VALIDATION])  # what the evaluation measures groundedness against
    sample = kept[TRAIN][0]["messages"]
    return dg.MaterializeResult(metadata={
        **counts_metadata(masked),
        "train_examples": len(kept[TRAIN]),
        "validation_examples": len(kept[VALIDATION]),
        "no_sentence_to_learn": no_sentence,
        "too_long": too_long,
        "token_limit": limit,
        "token_counter": counter.name,
        "backend": fine_tuning.resolved_backend(),
        "sample": dg.MetadataValue.md("\n\n".join(f"**{m['role']}**: {markdown_text(m['content'])}" for m in sample)),
        "train_file": dg.MetadataValue.path(str(prompts_path(TRAIN))),
        "validation_file": dg.MetadataValue.path(str(prompts_path(VALIDATION))),
    })


def count_placeholders(example: dict, counts) -> None:
    """Add the redaction placeholders of an example's user and assistant messages to ``counts``."""
    from reference_arch.common.redaction import placeholder_counts

    for message in example["messages"]:
        if message["role"] != "system":
            counts.update(placeholder_counts(message["content"]))


def check_prompt_files(fine_tuning: FineTuningResource) -> dict:
    """OpenAI's format rules on both files: ``{side: FormatReport}``."""
    from reference_arch.finetune.chat_format import check_examples
    from reference_arch.finetune.jsonl import read_jsonl

    counter, limit = token_rules(fine_tuning)
    reports = {}
    for side, minimum in ((TRAIN, fine_tuning.min_examples), (VALIDATION, 1)):
        path = prompts_path(side)
        examples = read_jsonl(path) if path.exists() else []
        reports[side] = check_examples(examples, counter, limit, minimum)
    return reports


@dg.asset_check(asset=prompts, blocking=True,
                description="Both files follow OpenAI's fine-tuning format: roles, non-empty content, an assistant "
                            "message, weights 0/1, at least the minimum number of examples, tokens under the limit.")
def openai_format(fine_tuning: FineTuningResource) -> dg.AssetCheckResult:
    reports = check_prompt_files(fine_tuning)
    metadata = {f"{side}/{key}": value for side, report in reports.items() for key, value in report.metadata().items()}
    failed = [f"{side}: {report.summary()}" for side, report in reports.items() if not report.ok]
    return dg.AssetCheckResult(passed=not failed, metadata=metadata, description="; ".join(failed) or None)


@dg.asset_check(asset=prompts, blocking=True,
                description="No message in the train or validation file holds a known secret pattern "
                            "(detect-secrets' plugins, common/redaction.py): nothing is uploaded or trained on "
                            "until the files are clean.")
def no_secrets_in_prompts() -> dg.AssetCheckResult:
    from reference_arch.common.redaction import secrets_check
    from reference_arch.finetune.jsonl import read_jsonl

    texts = {}
    for side in (TRAIN, VALIDATION):
        path = prompts_path(side)
        for n, example in enumerate(read_jsonl(path) if path.exists() else [], 1):
            texts[f"{side}:{n}"] = "\n".join(str(m.get("content") or "") for m in example.get("messages", []))
    return secrets_check(texts, "examples")
