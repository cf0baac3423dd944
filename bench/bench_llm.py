"""The offline chat LLM (the packaged SmolLM2-135M-Instruct, ``common/llm/packaged.py``): how it is set up,
what its features are worth, and what it costs, each beside its baseline in the same run.

1. Decoding, chosen on dev: greedy decoding with repetition penalty 1.0, 1.1 and 1.3 (the last with 3-gram
   blocking, the settings the tiny pretrained model used) on the prompt evaluation set
   (``prompt/evaluation_set.yaml``, the ``pandas`` template): format compliance, cosine similarity to the
   reference answer and the template score (their mean). The best dev score is the packaged default; test
   is only reported.
2. The RAG answerer and the judge, on the ``samples`` question set over an index of the sample exports
   and docs (no package API, to keep it minutes): for each dev and test question the dense top 5, then the
   extractive answer (no LLM) and the generated one, each measured as ``rag/answer_quality`` does
   (groundedness, answer relevance, citation validity). The answerer with the better dev groundedness plus
   relevance is the default. The LLM judge grades each generated answer and an invented one (another
   question's answer, cited as if from this question's sources): its accuracy is the share of pairs where
   the real answer gets the higher faithfulness; 0.5 is a coin. The judge is on by default only when its dev
   accuracy is at least ``JUDGE_BAR``.
3. Multi-query retrieval: ``rag/retrieval_evaluation``'s own comparison on that index (the packaged model's
   rewrites fused with the chosen mode against the chosen mode alone, on the same dev questions).
4. Budgets: ``ask prompt`` generation through ``LLMResource`` against a bare ``model.generate`` of the same
   prompt and token count (target at most 2x), tokens per second of each, and the peak memory of a whole
   ``reference-arch ask prompt`` process (target under 2 GB).

``python -m bench.run bench_llm`` writes ``bench/results/bench_llm.json``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import reference_arch  # noqa: F401  (offline switches)

DECODING = {"penalty 1.0": (1.0, 0), "penalty 1.1": (1.1, 0), "penalty 1.3, 3-gram block": (1.3, 3)}
MAX_TOKENS = 128  # the template evaluation's answer budget
JUDGE_BAR = 0.7  # dev accuracy at telling a real answer from an invented one
QUESTIONS_PER_SPLIT = 10
SPEED_TOKENS = 64


def _row(metric, value, unit="", target="", ok=None):
    return {"metric": metric, "value": value, "unit": unit, "target": target, "ok": ok}


def decoding_rows(model_path: str) -> tuple[list[dict], str]:
    from reference_arch.common.llm.local import LocalChatModel
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.prompt.evaluation_set import load_evaluation_set, score
    from reference_arch.prompt.templates import TEMPLATES, check_format, render

    template, embeddings = TEMPLATES["pandas"], EmbeddingsResource(provider="local")
    results: dict[str, dict[str, float]] = {}
    for name, (penalty, ngram) in DECODING.items():
        chat = LocalChatModel(model_path=model_path, model_name=name, max_tokens=MAX_TOKENS,
                              repetition_penalty=penalty, no_repeat_ngram_size=ngram)
        for split in ("dev", "test"):
            questions = load_evaluation_set(split)
            answers = [str(chat.invoke([(m["role"], m["content"]) for m in render(template, {"question": q.question})]
                                       ).content) for q in questions]
            vectors = embeddings.embed_array([*answers, *(q.reference for q in questions)])
            n = len(questions)
            similarity = statistics.mean(float(vectors[i] @ vectors[n + i]) for i in range(n))
            compliance = statistics.mean(check_format(template, a)[0] for a in answers)
            results[f"{name}/{split}"] = {"score": score(compliance, similarity), "compliance": compliance,
                                          "similarity": similarity}
    chosen = max(DECODING, key=lambda name: results[f"{name}/dev"]["score"])
    rows = [_row(f"prompt template score, {name}, {split}", round(r["score"], 4),
                 f"compliance {r['compliance']:.2f}, similarity {r['similarity']:.3f}",
                 "chosen on dev" if split == "dev" else "reported", None)
            for key, r in results.items() for name, split in [key.rsplit("/", 1)]]
    rows.append(_row("decoding chosen on dev", chosen))
    return rows, chosen


def build_samples_index(home: Path) -> dict:
    """Materialize the rag location over the sample exports and docs only; the retrieval evaluation's metadata."""
    import dagster as dg

    from reference_arch.cli.runs import materialize_location

    os.environ.update({"REFERENCE_ARCH_HOME": str(home / "home"), "DAGSTER_HOME": str(home / "dagster"),
                       "REFERENCE_ARCH_RAG_SOURCES": "docs,github,slack"})  # the samples, no package API
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.ephemeral() as instance:
        results = materialize_location("rag", instance, echo=lambda *a, **k: None)
    for result in results:
        for event in result.get_asset_materialization_events():
            if event.asset_key.path[-1] == "retrieval_evaluation":
                return {k: v.value for k, v in event.materialization.metadata.items()}
    raise RuntimeError("rag/retrieval_evaluation did not materialize")


def answerer_and_judge_rows(evaluation: dict) -> tuple[list[dict], str, bool]:
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch.common.vector_store import VectorStoreResource
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.common.answer_quality import JUDGE_TOKENS, judge_messages, parse_verdict, score_answer
    from reference_arch.rag.config import eval_set_paths
    from reference_arch.rag.defs.answer_quality import judged_questions
    from reference_arch.rag.defs.index import open_collection
    from reference_arch.rag.defs.inference import build_messages, compose_answer
    from reference_arch.rag.question_sets import load_question_sets, sample_order
    from reference_arch.rag.retrieval import retrieve

    embeddings, llm = EmbeddingsResource(provider="local"), LLMResource(provider="local")
    collection = open_collection(embeddings, VectorStoreResource())
    sets = {n: q for n, q in load_question_sets(eval_set_paths()).items() if n == "samples"}
    questions = judged_questions(sets, collection)
    rows: list[dict] = []
    measured: dict[str, dict[str, list]] = {}
    for split in ("dev", "test"):
        chosen = sorted((q for q in questions if q.split == split), key=sample_order)[:QUESTIONS_PER_SPLIT]
        answered = []
        for q in chosen:
            sources = retrieve(collection, q.question, embeddings.embed_query(q.question), "dense", 5)
            for answerer in ("extractive", "generative"):
                started = time.perf_counter()
                text = compose_answer(q.question, sources, answerer, llm, embeddings)[0]
                s = score_answer(q.question, text, sources, embeddings.embed_array)
                cites = s["citations"]
                measured.setdefault(f"{answerer}/{split}", {}).setdefault("rows", []).append(
                    {"groundedness": s["groundedness"], "relevance": s["relevance"],
                     "validity": s["valid_citations"] / cites if cites else 0.0, "seconds": time.perf_counter() - started})
                if answerer == "generative":
                    answered.append((q, sources, text))
        wins = []
        for i, (q, sources, text) in enumerate(answered):
            invented = answered[(i + 1) % len(answered)][2]
            context = build_messages(q.question, sources)[1][1]
            real, fake = (parse_verdict(llm.generate(judge_messages(context, answer), max_tokens=JUDGE_TOKENS))
                          for answer in (text, invented))
            if real and fake:
                wins.append(1.0 if real["faithfulness"] > fake["faithfulness"] else
                            0.5 if real["faithfulness"] == fake["faithfulness"] else 0.0)
            else:
                wins.append(0.0)  # no usable verdict: the judge told nothing apart
        measured.setdefault(f"judge/{split}", {})["accuracy"] = statistics.mean(wins) if wins else 0.0
    for key, found in measured.items():
        if key.startswith("judge/"):
            continue
        answerer, split = key.split("/")
        r = found["rows"]
        for name in ("groundedness", "relevance", "validity"):
            rows.append(_row(f"rag {answerer} answer {name}, samples {split}",
                             round(statistics.mean(x[name] for x in r), 4), f"{len(r)} questions",
                             "chosen on dev" if split == "dev" else "reported"))
        rows.append(_row(f"rag {answerer} answer seconds, samples {split}", round(statistics.mean(x["seconds"] for x in r), 2), "s"))
    quality = {a: statistics.mean(x["groundedness"] + x["relevance"] for x in measured[f"{a}/dev"]["rows"])
               for a in ("extractive", "generative")}
    answerer = max(quality, key=quality.get)
    judge_dev, judge_test = measured["judge/dev"]["accuracy"], measured["judge/test"]["accuracy"]
    rows += [_row("rag answerer chosen on dev (groundedness + relevance)", answerer,
                  ", ".join(f"{a} {v:.3f}" for a, v in quality.items())),
             _row("judge accuracy, real over invented answer, samples dev", round(judge_dev, 4), "share of pairs",
                  f">= {JUDGE_BAR} to be on by default", judge_dev >= JUDGE_BAR),
             _row("judge accuracy, real over invented answer, samples test", round(judge_test, 4), "share of pairs",
                  "reported")]
    for key, value in evaluation.items():
        if key.startswith("multi_query_sample/"):
            rows.append(_row(f"retrieval {key.split('/')[1]} recall@5 on the multi-query dev sample", value))
    rows.append(_row("multi-query", str(evaluation.get("multi_query", ""))[:300]))
    return rows, answerer, judge_dev >= JUDGE_BAR


def speed_rows(model_path: str) -> list[dict]:
    import torch

    from reference_arch.common.llm.local import load_causal_lm
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch.prompt.templates import TEMPLATES, render

    messages = [(m["role"], m["content"]) for m in render(TEMPLATES["pandas"], {"question": "What is a Series?"})]
    llm = LLMResource(provider="local", max_tokens=SPEED_TOKENS, cache=False)
    llm.generate(messages)  # load once
    model, tokenizer = load_causal_lm(model_path)
    ids = tokenizer.apply_chat_template([{"role": m[0].replace("human", "user"), "content": m[1]} for m in messages],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    ours, bare, tokens = [], [], []
    for _ in range(3):  # interleaved, so machine noise hits both alike
        fresh = LLMResource(provider="local", max_tokens=SPEED_TOKENS, cache=False)
        started = time.perf_counter()
        fresh.generate(messages)
        ours.append(time.perf_counter() - started)
        produced = fresh.usage()["completion_tokens"]
        tokens.append(produced)
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=produced, min_new_tokens=produced,
                           do_sample=False, pad_token_id=tokenizer.eos_token_id)
        bare.append(time.perf_counter() - started)
    ratio = statistics.median(ours) / statistics.median(bare)
    n = statistics.median(tokens)
    return [_row("ask prompt generation / bare model.generate, same tokens", round(ratio, 3), "x", "<= 2", ratio <= 2),
            _row("tokens/s through LLMResource", round(n / statistics.median(ours), 1), "tok/s"),
            _row("tokens/s, bare model.generate", round(n / statistics.median(bare), 1), "tok/s")]


def memory_rows(home: Path) -> list[dict]:
    """The peak resident memory of one ``reference-arch ask prompt`` process, read from that child's own
    rusage (``os.wait4``): ``RUSAGE_CHILDREN`` is the largest of every child this bench has waited for, so it
    reported an earlier, bigger one (2,424 MB) for a process that peaks near 1 GB."""
    env = {**os.environ, "REFERENCE_ARCH_HOME": str(home / "ask-home"), "DAGSTER_HOME": str(home / "ask-dagster")}
    (home / "ask-dagster").mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen([sys.executable, "-m", "reference_arch.cli", "ask", "prompt", "What is a Series?"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return [_row("peak memory of `reference-arch ask prompt` (whole process)", round(peak, 1), "MB", "< 2048",
                 child.returncode == 0 and peak < 2048)]


def run() -> dict:
    from reference_arch.common.llm.packaged import DEFAULT_LOCAL_MODEL, SMOLLM2, model_dir

    model_path = str(model_dir(DEFAULT_LOCAL_MODEL))
    rows: list[dict] = []
    chosen: dict = {}

    def stage(name: str, measure):
        """One part's rows; a part that fails is a row naming its error, and the others still run (the
        whole takes most of an hour on two cores)."""
        try:
            return measure()
        except Exception as err:  # noqa: BLE001
            rows.append(_row(f"{name}: failed", repr(err)[:300]))
            return None

    if (decoded := stage("decoding", lambda: decoding_rows(model_path))) is not None:
        rows += decoded[0]
        chosen["decoding"] = decoded[1]
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as root:
        evaluation = stage("samples index", lambda: build_samples_index(Path(root)))
        if evaluation is not None and (answered := stage("answerer and judge",
                                                         lambda: answerer_and_judge_rows(evaluation))) is not None:
            rows += answered[0]
            chosen.update(answerer=answered[1], judge_on_by_default=answered[2])
        rows += stage("speed", lambda: speed_rows(model_path)) or []
        rows += stage("memory", lambda: memory_rows(Path(root))) or []
    return {"title": f"Offline chat LLM: {SMOLLM2.describe()}", "rows": rows, "chosen": chosen}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
