"""Retrieval variants a RAG engineer would try next, scored on the dev parts beside the default.

Part of ``bench_rag_quality``: over the index and question sets that ``retrieval_quality`` just built
(samples + the pandas and numpy APIs), each variant ranks documents for every judged question from the
stored chunk vectors (exact cosine, so the ANN index plays no part; the default's figures here can
differ from the evaluation asset's by that much). The variant with the best mean dev recall@5 over the
sets is the candidate (``question_sets.select_mode``); it would replace the default only if it beats it
in 95% of bootstrap resamples of the dev questions; test is only reported.

The variants (standard techniques; each parameter is one point, not a sweep on test):
- ``dense``: a document ranked by its best chunk (what ``rag/retrieval.py`` does);
- ``dense+keyword(w)``: reciprocal rank fusion (k=60, ``multi_query.reciprocal_rank_fusion``) of the dense
  and the BM25 (LanceDB full-text)
  document rankings, the keyword side weighted ``w`` (the project's hybrid mode is ``w=1`` over chunks);
- ``dense+doc_mean``: best chunk + 0.25 x cosine to the mean of the document's chunk vectors;
- ``dense+prf``: Rocchio pseudo-relevance feedback: the query vector plus 0.3 x the mean of its top 5
  chunks, searched again;
- ``near_duplicates_merged(j)``: docstrings whose token 3-shingle Jaccard similarity is at least ``j``
  (MinHash, as the pretrain corpus is deduplicated) made one document (as identical docstrings already
  are), found under any of their names.
"""

from __future__ import annotations

import re
from pathlib import Path

DEPTH = 20  # documents ranked per question
# A variant replaces the default only if it beats it in this share of bootstrap resamples of the dev
# questions: a gain of one question in a set of ~30 is within what resampling moves.
ADOPT_WIN_RATE = 0.95
VARIANTS = ("dense", "dense+keyword(0.1)", "dense+keyword(0.3)", "dense+doc_mean", "dense+prf",
            "near_duplicates_merged(0.9)", "near_duplicates_merged(0.6)")


def load(home: Path):
    """``(chunk document ids, unit chunk vectors, the LanceDB table, documents, judged questions,
    question vectors)`` of the index under ``home`` (REFERENCE_ARCH_HOME is ``home``)."""
    import lancedb
    import numpy as np

    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.rag.defs.processing import COLLECTION, documents_path, read_rows
    from reference_arch.rag.question_sets import answerable, document_names, load_question_sets

    table = lancedb.connect(str(home / "lancedb")).open_table(COLLECTION)
    chunks = table.to_arrow().select(["document_id", "vector"])
    ids = np.array(chunks.column("document_id").to_pylist())
    vectors = np.stack(chunks.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = read_rows(documents_path(), ["id", "format", "text"])
    names = document_names(docs)
    judged = [(q, rel) for qs in load_question_sets().values() for q in qs if (rel := answerable(q, names))]
    questions = EmbeddingsResource(provider="local").embed_array([q.question for q, _ in judged])
    questions = np.asarray(questions, dtype=np.float32)
    questions /= np.linalg.norm(questions, axis=1, keepdims=True)
    return ids, vectors, table, docs, judged, questions


def by_best_chunk(scores, ids) -> list[str]:
    import numpy as np

    ranked: list[str] = []
    for i in np.argsort(-scores)[: DEPTH * 20]:
        if ids[i] not in ranked:
            ranked.append(ids[i])
            if len(ranked) == DEPTH:
                break
    return ranked


def keyword_ranking(table, question: str) -> list[str]:
    rows = table.search(question, query_type="fts", fts_columns="text").limit(DEPTH * 5).to_arrow()
    return list(dict.fromkeys(rows.column("document_id").to_pylist()))[:DEPTH]


def near_duplicates(docs: list[dict], threshold: float) -> dict[str, str]:
    """``{document id: the id it is merged into}`` for docstrings whose token 3-shingles are at least
    ``threshold`` alike (estimated Jaccard; the pretrain corpus's MinHash LSH dedup, ``cleaning.near_duplicates``),
    compared without their name line and "Also documented as" line; the shortest name of a group is kept."""
    import dataclasses

    from reference_arch.pretrain.cleaning import Rules, near_duplicates as minhash_near_duplicates

    def body(doc: dict) -> str:
        return re.sub(r"\n\nAlso documented as: .*$", "", doc["text"].split("\n\n", 1)[-1]).lower()

    files = sorted(({"path": d["id"], "text": body(d)} for d in docs if d["format"] == "docstring"),
                   key=lambda f: (len(f["path"]), f["path"]))  # first kept: the shortest name
    rules = dataclasses.replace(Rules(), shingle_size=3, near_duplicate_threshold=threshold)
    _, pairs = minhash_near_duplicates(files, rules)
    return {removed: kept for removed, kept, _ in pairs}


def rankings(name: str, ids, vectors, table, docs, judged, questions) -> tuple[list[list[str]], list[list[str]]]:
    """Each judged question's ranked documents under variant ``name``, and its answering documents."""
    import numpy as np

    from reference_arch.rag.multi_query import reciprocal_rank_fusion

    relevant = [list(rel) for _, rel in judged]
    if name.startswith("near_duplicates_merged"):
        merged = near_duplicates(docs, float(name.split("(")[1].rstrip(")")))
        keep = np.array([doc not in merged for doc in ids])
        relevant = [list(dict.fromkeys(merged.get(d, d) for d in rel)) for rel in relevant]
        return [by_best_chunk(vectors[keep] @ q, ids[keep]) for q in questions], relevant
    if name == "dense":
        return [by_best_chunk(vectors @ q, ids) for q in questions], relevant
    if name.startswith("dense+keyword"):
        weight = float(name.split("(")[1].rstrip(")"))
        fused = [reciprocal_rank_fusion([by_best_chunk(vectors @ q, ids), keyword_ranking(table, question.question)],
                                        weights=[1.0, weight]) for (question, _), q in zip(judged, questions)]
        return [[doc for doc, _ in ranked[:DEPTH]] for ranked in fused], relevant
    if name == "dense+doc_mean":
        unique, inverse = np.unique(ids, return_inverse=True)
        means = np.zeros((len(unique), vectors.shape[1]), np.float32)
        np.add.at(means, inverse, vectors)
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        out = []
        for q in questions:
            best = np.full(len(unique), -2.0, np.float32)
            np.maximum.at(best, inverse, vectors @ q)
            out.append(list(unique[np.argsort(-(best + 0.25 * (means @ q)))[:DEPTH]]))
        return out, relevant
    if name == "dense+prf":
        out = []
        for q in questions:
            expanded = q + 0.3 * vectors[np.argsort(-(vectors @ q))[:5]].mean(axis=0)
            out.append(by_best_chunk(vectors @ (expanded / np.linalg.norm(expanded)), ids))
        return out, relevant
    raise ValueError(f"unknown variant {name!r}")


def bootstrap_win_rate(per_question: dict[str, dict[str, list[float]]], variant: str, default: str = "dense",
                       resamples: int = 1000) -> float:
    """The share of bootstrap resamples of the dev questions (each set resampled on its own, fixed seed) in
    which ``variant``'s mean dev recall over the sets is above ``default``'s. ``per_question``: ``{set:
    {variant: [recall of each dev question]}}``."""
    import numpy as np

    rng = np.random.default_rng(0)
    wins = 0
    for _ in range(resamples):
        gain = 0.0
        for recalls in per_question.values():
            pick = rng.integers(0, len(recalls[default]), len(recalls[default]))
            gain += np.mean(np.asarray(recalls[variant])[pick]) - np.mean(np.asarray(recalls[default])[pick])
        wins += gain > 0
    return wins / resamples


def compare(home: Path, k: int = 5) -> dict:
    """``{"scores": {set: {split: {variant: score}}}, "best": variant, "mean_dev": {variant: recall},
    "win_rate": the best's bootstrap win rate over dense, "chosen": the best if that rate is at least
    ``ADOPT_WIN_RATE``, else dense}``."""
    from reference_arch.rag.question_sets import SPLITS, score, select_mode

    ids, vectors, table, docs, judged, questions = load(home)
    ranked = {name: rankings(name, ids, vectors, table, docs, judged, questions) for name in VARIANTS}
    scores: dict = {}
    per_question: dict = {}
    for set_name in sorted({q.set_name for q, _ in judged}):
        for split in SPLITS:
            rows = [i for i, (q, _) in enumerate(judged) if q.set_name == set_name and q.split == split]
            scores.setdefault(set_name, {})[split] = {
                name: score([r[i] for i in rows], [rel[i] for i in rows], k) for name, (r, rel) in ranked.items()}
            if split == "dev" and rows:
                per_question[set_name] = {name: [score([r[i]], [rel[i]], k)["recall"] for i in rows]
                                          for name, (r, rel) in ranked.items()}
    best, mean = select_mode({s: parts["dev"] for s, parts in scores.items()}, list(VARIANTS))
    win_rate = bootstrap_win_rate(per_question, best) if best != "dense" else 0.0
    return {"scores": scores, "best": best, "mean_dev": mean, "win_rate": win_rate,
            "chosen": best if win_rate >= ADOPT_WIN_RATE else "dense"}


def variant_rows(home: Path, row) -> list[dict]:
    """Bench rows: the variant chosen, then per variant its mean dev recall@5 over the sets and each set's
    dev and test figures."""
    result = compare(home)
    rows = [row("retrieval variant chosen on dev (exact cosine over the stored vectors)", result["chosen"], "",
                f"best on mean dev recall@5: {result['best']}, above dense in {result['win_rate']:.0%} of dev "
                f"bootstrap resamples (adopted at {ADOPT_WIN_RATE:.0%})", None)]
    for name in VARIANTS:
        parts = [f"{s} dev {p['dev'][name]['recall']:.3f} / test {p['test'][name]['recall']:.3f}"
                 for s, p in result["scores"].items()]
        rows.append(row(f"variant {name}: mean dev recall@5", round(result["mean_dev"][name], 3), "",
                        "; ".join(parts), None))
    return rows
