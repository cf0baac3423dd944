"""Evaluation and publishing: the fine-tuned model must beat its base on the validation set.

The blocking check compares the two (see ``metrics``) and writes its verdict next to the
fine-tuned model's record; ``finetune/published_model`` publishes only a model whose verdict
passed, so a worse model is never published, even when the check ran in another run.
"""

import json
from pathlib import Path

import dagster as dg

from reference_arch.common.atomic import write_json
from reference_arch.common.grounded_prompt import INSTRUCTIONS
from reference_arch.common.locations import asset_defaults
from reference_arch.common.pools import pool_for
from reference_arch.finetune.config import FineTuningResource, fine_tuning_resource, finetune_dir
from reference_arch.finetune.openai_client import OpenAIClientResource
from reference_arch.finetune.config import prompts_path, sources_path
from reference_arch.finetune.split import VALIDATION
from reference_arch.finetune.defs.training import fine_tuned_model, read_record


def evaluation_path() -> Path:
    return finetune_dir() / "evaluation.json"


def _validation_examples() -> list[dict]:
    from reference_arch.finetune.jsonl import read_jsonl

    return read_jsonl(prompts_path(VALIDATION))


def held_out_answer_scores(model_path: str, base_spec: str, fine_tuning: FineTuningResource) -> dict | None:
    """The model's generated answers to the first ``format_examples`` validation examples, measured for the
    grounded format, citation validity and groundedness (``metrics.generated_answer_scores``), decoded as the
    packaged model ``base_spec`` is or was tuned from; None when the prompts hold no sources to measure against."""
    from reference_arch.common.llm.packaged import decoding
    from reference_arch.finetune.jsonl import read_jsonl
    from reference_arch.finetune.metrics import generated_answer_scores

    if not (prompts_path(VALIDATION).exists() and sources_path().exists()):  # DPO run without the SFT prompts
        return None
    examples, sources = _validation_examples(), read_jsonl(sources_path())
    if not examples or len(sources) != len(examples):
        return None
    n = fine_tuning.format_examples
    return generated_answer_scores(model_path, examples[:n], sources[:n], decoding(base_spec))


ANSWER_SCORES = ("format_compliance", "citation_validity", "groundedness", "format_examples", "example_answer")


def measured_answer_scores(model_path: str, fine_tuning: FineTuningResource) -> dict | None:
    """``held_out_answer_scores`` of the fine-tuned model at ``model_path`` as ``better_than_base`` measured
    them (same examples, same decoding), or None when its verdict is of another model or another count:
    DPO's check compares against its base, which is that model, and need not generate its answers again."""
    if not evaluation_path().exists():
        return None
    from reference_arch.common.registry import CARD

    verdict = json.loads(evaluation_path().read_text())
    scores = {name: verdict.get(f"finetuned_{name}") for name in ANSWER_SCORES}
    card = Path(model_path) / CARD  # published: the registry's copy of the model the verdict is of
    published_from = json.loads(card.read_text()).get("trained_at") if card.is_file() else None
    same = verdict.get("model") == model_path or (published_from is not None and published_from == verdict.get("trained_at"))
    if not same or None in scores.values() or \
            scores["format_examples"] != min(fine_tuning.format_examples, len(_validation_examples())):
        return None
    return scores


def evaluate_local(record: dict, fine_tuning: FineTuningResource) -> dict:
    """Validation loss of base and fine-tuned (the gate), and both models' generated answers to the first
    ``format_examples`` validation examples measured for the grounded format, citation validity and
    groundedness (reported beside it, with the first example's two answers)."""
    from reference_arch.finetune.metrics import answer_loss

    examples = _validation_examples()
    base = answer_loss(record["base_path"], examples, fine_tuning.max_seq_len)
    tuned = answer_loss(record["model"], examples, fine_tuning.max_seq_len)
    measured = {}
    for side, path in (("base", record["base_path"]), ("finetuned", record["model"])):
        if (scores := held_out_answer_scores(path, record["base_model"], fine_tuning)) is not None:
            measured[side] = scores
    return {
        "metric": "validation loss (answer tokens)",
        "passed": tuned["loss"] < base["loss"],
        "base_loss": base["loss"], "finetuned_loss": tuned["loss"],
        "base_perplexity": base["perplexity"], "finetuned_perplexity": tuned["perplexity"],
        "loss_improvement": base["loss"] - tuned["loss"],
        "validation_examples": len(examples), "answer_tokens": tuned["tokens"],
        **{f"{side}_{name}": value for side, scores in measured.items() for name, value in scores.items()},
    }


def evaluate_openai(context, record: dict, fine_tuning: FineTuningResource,
                    openai: OpenAIClientResource) -> dict:
    from reference_arch.finetune.metrics import token_f1

    examples = _validation_examples()[: fine_tuning.eval_max_examples]
    scores = {"base": [], "finetuned": []}
    with openai.get_client(context) as client:
        for example in examples:
            prompt, reference = example["messages"][:-1], example["messages"][-1]["content"]
            for side, model in (("base", record["base_model"]), ("finetuned", record["model"])):
                reply = client.chat.completions.create(model=model, messages=prompt, temperature=0, max_tokens=512)
                scores[side].append(token_f1(reply.choices[0].message.content or "", reference))
    base, tuned = (sum(s) / max(len(s), 1) for s in (scores["base"], scores["finetuned"]))
    return {"metric": "token F1 against the maintainers' answers", "passed": tuned > base,
            "base_token_f1": base, "finetuned_token_f1": tuned, "f1_improvement": tuned - base,
            "validation_examples": len(examples)}


@dg.asset_check(
    asset=fine_tuned_model,
    blocking=True,
    pool=pool_for(fine_tuning_resource().backend),  # OpenAI: two chat completions per validation example
    description="The fine-tuned model beats its base on the validation set: lower answer loss (local) or higher "
                "token F1 against the maintainers' answers (OpenAI). A model that is not better is not published. "
                "Locally, both models' answers to validation examples are measured too: the grounded format (1-2 "
                "sentences, valid citations, no code block), citation validity and groundedness.",
)
def better_than_base(context: dg.AssetCheckExecutionContext, fine_tuning: FineTuningResource,
                     openai: OpenAIClientResource) -> dg.AssetCheckResult:
    record = read_record()
    if record["backend"] == "openai":
        verdict = evaluate_openai(context, record, fine_tuning, openai)
    else:
        verdict = evaluate_local(record, fine_tuning)
    verdict = {**verdict, "model": record["model"], "run_id": record["run_id"], "trained_at": record.get("trained_at")}
    write_json(evaluation_path(), verdict)
    numbers = {k: round(v, 6) if isinstance(v, float) else v for k, v in verdict.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    answers = {k: dg.MetadataValue.md(f"**{k}**: {v}") for k, v in verdict.items() if k.endswith("_answer")}
    return dg.AssetCheckResult(
        passed=verdict["passed"],
        metadata={**numbers, **answers, "metric": verdict["metric"], "base_model": record["base_model"]},
        description=None if verdict["passed"] else f"the fine-tuned model is not better than its base "
                                                   f"({verdict['metric']}): it will not be published",
    )


@dg.asset(
    **asset_defaults("finetune"),
    deps=[fine_tuned_model],
    kinds={"huggingface", "openai"},
    description="The fine-tuned model, published once it beat its base: the merged LoRA model in the registry as "
                "code-lm-github (local), or the OpenAI fine-tuned model's name (openai).",
)
def published_model(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource) -> dg.MaterializeResult:
    from reference_arch.common.registry import ModelRegistry

    record = read_record()
    verdict = json.loads(evaluation_path().read_text()) if evaluation_path().exists() else None
    if verdict is None or verdict.get("run_id") != record["run_id"]:
        raise dg.Failure("the fine-tuned model has not been evaluated: run the finetune/fine_tuned_model "
                         "better_than_base check first")
    if not verdict["passed"]:
        raise dg.Failure(f"not published: the fine-tuned model is not better than its base ({verdict['metric']})")
    metrics = {k: v for k, v in verdict.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if record["backend"] == "openai":
        published = {"name": record["model"], "job_id": record["job_id"], "base_model": record["base_model"],
                     "metrics": metrics, "run_id": context.run_id}
        path = finetune_dir() / "openai_model.json"
        write_json(path, published)
        return dg.MaterializeResult(metadata={"model": record["model"], **metrics})
    from reference_arch.common.llm.packaged import defaults_for

    packaged = defaults_for(record["base_model"])
    card = {
        "kind": "lora-merged",
        "base_model": record["base_model"],
        "packaged_base": packaged.name if packaged else None,  # its decoding and RAG defaults carry over
        "adapter": record.get("adapter_path"),
        "lora": record.get("lora"),
        "trainable_fraction": record.get("trainable_fraction"),
        "train_examples": record["train_examples"],
        "validation_examples": record["validation_examples"],
        "metrics": metrics,
        "system_prompt": INSTRUCTIONS,  # what it was trained with: grounded examples (finetune/grounding.py)
        "trained_at": record["trained_at"],
        "dagster_run_id": context.run_id,
    }
    model = ModelRegistry().publish(fine_tuning.output_name, record["model"], card, unless_same="trained_at")
    context.log.info(f"published {model.spec} from {record['model']}")
    return dg.MaterializeResult(metadata={"model": model.spec, "version": model.version,
                                          "path": dg.MetadataValue.path(str(model.path)), **metrics})
