"""Preference tuning from feedback (the RLHF pattern, DPO as its practical form).

``finetune/preference_pairs`` pairs a chosen and a rejected answer to one question, from user feedback
or generated from the fine-tuning Q&A (``finetune/preference.py``), split into train and held-out.
``finetune/preference_tuned_model`` tunes a LoRA adapter on the local base model with DPO (trl) in the
shared trainer's process (``TrainSpec(objective="dpo")``, the gpu pool). Its blocking check
``prefers_chosen`` compares the tuned model with its base on the held-out pairs (preference accuracy);
``finetune/preference_published_model`` publishes only a model whose check passed.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from reference_arch.common.atomic import write_json
from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.pools import GPU_POOL
from reference_arch.common.trainer.resource import TrainerResource
from reference_arch.finetune.config import (PREFERENCE_MODEL, FineTuningResource, PreferenceTuningResource,
                                            preference_dir)
from reference_arch.finetune.defs.processing import read_split, train_validation_split
from reference_arch.finetune.defs.evaluation import held_out_answer_scores, measured_answer_scores, published_model

PAIRS_KEY = dg.AssetKey(["finetune", "preference_pairs"])
PUBLISHED_KEY = dg.AssetKey(["finetune", "preference_published_model"])
# The preference-tuning step, in order: pairs -> DPO -> the published model.
PREFERENCE_KEYS = (PAIRS_KEY, dg.AssetKey(["finetune", "preference_tuned_model"]), PUBLISHED_KEY)


def pairs_path() -> Path:
    return preference_dir() / "pairs.jsonl"


def record_path() -> Path:
    return preference_dir() / "tuned.json"


def verdict_path() -> Path:
    return preference_dir() / "evaluation.json"


def read_pairs() -> list[dict]:
    from reference_arch.finetune.jsonl import read_jsonl

    if not pairs_path().exists():
        raise dg.Failure(f"no preference pairs at {pairs_path()}: materialize finetune/preference_pairs")
    return read_jsonl(pairs_path())


def read_json(path: Path, what: str) -> dict:
    if not path.exists():
        raise dg.Failure(f"no {what} yet ({path} is missing): materialize finetune/preference_tuned_model")
    return json.loads(path.read_text())


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(str(text).split())
    if not text:
        return "(blank)"
    return text if len(text) <= n else text[: n - 1] + "…"


@dg.asset(
    **asset_defaults("finetune"),
    # The model tuned (the SFT one: PreferenceTuningResource) answers the generated pairs. The verdicts are
    # read from the feedback store (prompt/feedback) with no drawn dependency: the loop answers -> feedback ->
    # tuned model -> answers would run the prompt location before finetune (common/locations.LOCATIONS).
    deps=[train_validation_split, published_model],
    kinds={"python"},
    description="Pairs of a chosen and a rejected answer to one question: from user feedback (up against down, "
                "an approved answer against the model's own, a rejected one against the maintainer's), else "
                "generated from the fine-tuning Q&A (the maintainer's answer against the base model's), ranked "
                "by token F1; split into train and held-out by a stable hash of the question.",
)
def preference_pairs(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource,
                     preference_tuning: PreferenceTuningResource) -> dg.MaterializeResult:
    from collections import Counter

    from reference_arch.common.feedback import read_feedback
    from reference_arch.finetune import preference as pref
    from reference_arch.finetune.jsonl import write_jsonl
    from reference_arch.finetune.qa import question_fingerprint
    from reference_arch.finetune.split import TRAIN, VALIDATION

    settings = preference_tuning
    sides = read_split()
    qa = sides[TRAIN] + sides[VALIDATION]
    references = {p["fingerprint"]: p["answer"] for p in qa}
    records = read_feedback()
    from_feedback = pref.feedback_pairs(records, references)
    taken = {question_fingerprint(p["question"]) for p in from_feedback}
    candidates = (from_feedback + pref.reference_pairs(qa, taken))[: settings.max_pairs]
    _, base_path = preference_tuning.base_model_path(fine_tuning)

    def generate(questions: list[str]) -> list[str]:
        return pref.generate_answers(base_path, questions, fine_tuning.system_prompt, settings.max_new_tokens,
                                     settings.max_seq_len // 2)

    filled = pref.fill_rejected(candidates, generate, [p["answer"] for p in qa])
    pairs, dropped = pref.ranked(filled)
    pairs = [{**p, "side": pref.side_of(p["question"], settings.heldout_fraction)} for p in pairs]
    counts = Counter(p["side"] for p in pairs)
    if counts[pref.TRAIN] < settings.batch_size or not counts[pref.HELDOUT]:
        raise dg.Failure(f"too few preference pairs: {counts[pref.TRAIN]} to train on (a batch is "
                         f"{settings.batch_size}) and {counts[pref.HELDOUT]} held out, from {len(records)} feedback "
                         f"records and {len(qa)} Q&A pairs. Ingest more months of issues or raise heldout_fraction.")
    write_jsonl(pairs_path(), pairs)
    origins = Counter(p["origin"] for p in pairs)
    context.log.info(f"{len(pairs)} preference pairs ({dict(origins)}): {counts[pref.TRAIN]} train, "
                     f"{counts[pref.HELDOUT]} held out")
    from reference_arch.common.redaction import redactor

    masker = redactor()  # metadata is shown before no_secrets_in_pairs runs: mask what it shows

    def shown(text: str | None) -> str:
        return _clip(masker.redact(text, Counter()))

    preview = table([{"side": p["side"], "origin": p["origin"], "how": p["how"], "question": shown(p["question"]),
                      "chosen": shown(p["chosen"]), "rejected": shown(p["rejected"])} for p in pairs[:10]],
                    [("side", "text"), ("origin", "text"), ("how", "text"), ("question", "text"),
                     ("chosen", "text"), ("rejected", "text")])
    return dg.MaterializeResult(metadata={
        "pairs": len(pairs),
        "origin/feedback": origins[pref.FEEDBACK],
        "origin/generated": origins[pref.GENERATED],
        "train": counts[pref.TRAIN],
        "heldout": counts[pref.HELDOUT],
        "feedback_records": len(records),
        "dropped_not_ranked_higher": dropped,
        "preview": preview,
        "path": dg.MetadataValue.path(str(pairs_path())),
    })


@dg.asset_check(asset=preference_pairs, blocking=True,
                description="No question or answer in the pairs holds a known secret pattern (feedback records "
                            "hold answers as given): nothing is trained on until the pairs are clean.")
def no_secrets_in_pairs() -> dg.AssetCheckResult:
    from reference_arch.common.redaction import secrets_check

    return secrets_check({f"pair:{n}": "\n".join((p["question"], p["chosen"], p["rejected"]))
                          for n, p in enumerate(read_pairs(), 1)}, "pairs")


def save_encoded(tokenizer, pairs: list[dict], system_prompt: str, max_seq_len: int, target: Path) -> list[dict]:
    """The pairs tokenized (``preference.encode_pair``), saved at ``target`` as a ``datasets`` dataset."""
    from datasets import Dataset

    from reference_arch.common.atomic import staging_dir
    from reference_arch.finetune.preference import encode_pair

    encoded = [e for e in (encode_pair(tokenizer, p, system_prompt, max_seq_len) for p in pairs) if e]
    with staging_dir(target) as staging:
        Dataset.from_list(encoded).save_to_disk(str(staging))
    return encoded


@dg.asset(
    **asset_defaults("finetune"),
    deps=[preference_pairs, published_model],
    kinds={"pytorch", "huggingface"},
    pool=GPU_POOL,
    description="The base model tuned with DPO (trl) on the training pairs: a LoRA adapter, merged, trained in "
                "the shared trainer's process (TrainSpec objective 'dpo'; the reference model is the base).",
)
def preference_tuned_model(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource,
                           preference_tuning: PreferenceTuningResource,
                           trainer: TrainerResource) -> dg.MaterializeResult:
    import shutil

    from reference_arch.common.atomic import staging_dir
    from reference_arch.common.trainer.resource import train_spec
    from reference_arch.finetune.local_backend import load_chat_tokenizer, training_key
    from reference_arch.finetune.preference import TRAIN

    settings = preference_tuning
    pairs = [p for p in read_pairs() if p["side"] == TRAIN]
    base_spec, base_path = preference_tuning.base_model_path(fine_tuning)
    lora = {"r": settings.lora_r, "alpha": settings.lora_alpha}
    schedule = {"steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.learning_rate,
                "beta": settings.beta, "max_seq_len": settings.max_seq_len, "seed": settings.seed}
    key = training_key([pairs_path().read_bytes(), base_spec, base_path, lora, schedule, fine_tuning.system_prompt])
    root = preference_dir("dpo")
    workdir = root / key
    spec = train_spec(
        model_dir=base_path, tokenizer_dir=str(workdir / "tokenizer"), output_dir=str(workdir / "output"),
        train_data=[str(workdir / "pairs")], objective="dpo", dpo_beta=settings.beta,
        max_steps=settings.steps, batch_size=min(settings.batch_size, len(pairs)), lr=settings.learning_rate,
        warmup_steps=max(1, settings.steps // 10), weight_decay=0.0, seed=settings.seed,
        checkpoint_every=max(1, settings.steps // 2), keep_checkpoints=1, log_every=max(1, settings.steps // 10),
        lora=lora)
    tokenizer = load_chat_tokenizer(base_path)
    with staging_dir(workdir / "tokenizer") as staging:
        tokenizer.save_pretrained(str(staging))
    encoded = save_encoded(tokenizer, pairs, fine_tuning.system_prompt, settings.max_seq_len, workdir / "pairs")
    context.log.info(f"DPO on {base_spec}: {len(encoded)} pairs, {spec.max_steps} steps of {spec.batch_size}")
    run = trainer.run(context, spec)
    for stale in root.iterdir():
        if stale.is_dir() and stale.name != key:
            shutil.rmtree(stale, ignore_errors=True)
    done = run.summary
    record = {"base_model": base_spec, "base_path": base_path, "model": done["model_dir"],
              "adapter_path": done["adapter_dir"], "lora": lora, "schedule": schedule, "train_pairs": len(encoded),
              "steps": done["global_step"], "train_loss": done["train_loss"], "run_id": context.run_id,
              "trained_at": datetime.now(timezone.utc).isoformat()}
    write_json(record_path(), record)
    return dg.MaterializeResult(metadata={
        "base_model": base_spec, "train_pairs": len(encoded), "beta": settings.beta,
        "model_dir": dg.MetadataValue.path(done["model_dir"]), **run.metadata()})


@dg.asset_check(
    asset=preference_tuned_model,
    blocking=True,
    description="On the held-out pairs, DPO's implicit reward (the tuned model's margin log p(chosen) - "
                "log p(rejected), per token, over its base's) ranks the chosen answer first on more than half, the "
                "mean margin widens by 0.01 nats per token, and the tuned model prefers the chosen answer on no fewer "
                "pairs than its base; and its answers to the held-out grounded prompts keep its base's format and "
                "groundedness (within one answer). Else it is not published.",
)
def prefers_chosen(fine_tuning: FineTuningResource, preference_tuning: PreferenceTuningResource) -> dg.AssetCheckResult:
    from reference_arch.finetune.local_backend import load_chat_tokenizer
    from reference_arch.finetune.preference import HELDOUT, answers_worse, beats_base, encode_pair, preference_accuracy

    record = read_json(record_path(), "preference-tuned model")
    tokenizer = load_chat_tokenizer(record["base_path"])
    heldout = [p for p in read_pairs() if p["side"] == HELDOUT]
    encoded = [e for e in (encode_pair(tokenizer, p, fine_tuning.system_prompt, preference_tuning.max_seq_len)
                           for p in heldout) if e]
    scores = preference_accuracy(record["base_path"], record["model"], encoded)
    # Its answers to the held-out grounded prompts, and its base's: a wider margin must not cost the format
    answers = held_out_answer_scores(record["model"], record["base_model"], fine_tuning) or {}
    base_answers = (measured_answer_scores(record["base_path"], fine_tuning)  # SFT's check measured them
                    or held_out_answer_scores(record["base_path"], record["base_model"], fine_tuning)) if answers else {}
    worse = answers_worse(answers, base_answers or {})
    passed = beats_base(scores) and not worse
    answers = {**{f"answers_{k}": v for k, v in answers.items()},
               **{f"base_answers_{k}": v for k, v in (base_answers or {}).items() if k != "example_answer"}}
    write_json(verdict_path(), {**scores, **answers, "passed": passed, "run_id": record["run_id"],
                                "model": record["model"]})
    return dg.AssetCheckResult(
        passed=passed,
        metadata={**{k: round(v, 6) if isinstance(v, float) else v for k, v in {**scores, **answers}.items()},
                  "base_model": record["base_model"]},
        description=None if passed else (
            f"on {len(encoded)} held-out pairs the tuned model's margin rose over its base's on "
            f"{scores['reward_accuracy']:.0%} (mean {scores['base_margin']:.3f} -> {scores['tuned_margin']:.3f} "
            f"nats/token); it prefers the chosen answer on {scores['tuned_accuracy']:.0%}, its base on "
            f"{scores['base_accuracy']:.0%}{'; its answers are worse: ' + worse if worse else ''}: it will not be "
            "published"),
    )


@dg.asset(
    **asset_defaults("finetune"),
    deps=[preference_tuned_model],
    kinds={"huggingface"},
    description="The preference-tuned model, published once it beat its base on the held-out pairs: the merged "
                "LoRA model in the registry as code-lm-preference.",
)
def preference_published_model(context: dg.AssetExecutionContext, fine_tuning: FineTuningResource,
                               preference_tuning: PreferenceTuningResource) -> dg.MaterializeResult:
    from reference_arch.common.registry import ModelRegistry

    record = read_json(record_path(), "preference-tuned model")
    verdict = json.loads(verdict_path().read_text()) if verdict_path().exists() else None
    if verdict is None or verdict.get("run_id") != record["run_id"]:
        raise dg.Failure("the preference-tuned model has not been evaluated: run the "
                         "finetune/preference_tuned_model prefers_chosen check first")
    if not verdict["passed"]:
        raise dg.Failure(f"not published: the tuned model prefers the chosen answer on "
                         f"{verdict['tuned_accuracy']:.0%} of held-out pairs, its base on {verdict['base_accuracy']:.0%}")
    metrics = {k: v for k, v in verdict.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    from reference_arch.common.llm.packaged import defaults_for

    packaged = defaults_for(record["base_model"])  # its decoding and RAG defaults carry over
    card = {"kind": "lora-merged-dpo", "base_model": record["base_model"], "adapter": record["adapter_path"],
            "packaged_base": packaged.name if packaged else None,
            "lora": record["lora"], "schedule": record["schedule"], "train_pairs": record["train_pairs"],
            "metrics": metrics, "system_prompt": fine_tuning.system_prompt, "trained_at": record["trained_at"],
            "dagster_run_id": context.run_id}
    model = ModelRegistry().publish(preference_tuning.output_name, record["model"], card, unless_same="trained_at")
    context.log.info(f"published {model.spec} from {record['model']}")
    return dg.MaterializeResult(metadata={"model": model.spec, "version": model.version,
                                          "path": dg.MetadataValue.path(str(model.path)), **metrics})


def preference_result(output_name: str = PREFERENCE_MODEL) -> dict:
    """What the demo prints: ``{"heldout_pairs", "base_accuracy", "tuned_accuracy", "base_margin", "tuned_margin",
    "reward_accuracy", "passed", "published", "run_id"}`` and, when measured, ``answers_*`` (the tuned model's held-out answers, as
    ``metrics.generated_answer_scores`` names them) of the last ``prefers_chosen`` check (accuracies are shares in [0, 1],
    margins nats per token, ``run_id`` the run that trained the model it judged; ``published`` is the registry spec
    of the newest version of ``output_name``, or None); ``dg.Failure`` when the check has not run."""
    from reference_arch.common.registry import ModelNotFoundError, ModelRegistry

    verdict = read_json(verdict_path(), "preference evaluation")
    try:
        published = ModelRegistry().resolve(f"registry:{output_name}@latest").spec
    except ModelNotFoundError:
        published = None
    return {"heldout_pairs": verdict["pairs"], "base_accuracy": verdict["base_accuracy"],
            "tuned_accuracy": verdict["tuned_accuracy"], "base_margin": verdict["base_margin"],
            "tuned_margin": verdict["tuned_margin"], "reward_accuracy": verdict["reward_accuracy"],
            "passed": verdict["passed"], "published": published,
            "run_id": verdict["run_id"], **{k: v for k, v in verdict.items() if k.startswith("answers_")}}
