"""Extractive answers: the sentences of the retrieved sources that best answer a question, cited ``[n]``.

What ``rag/answer`` gives when no OpenAI-compatible LLM is configured: the local code model writes
Python-looking text, while the sources hold the answer in their own words. The rule:

1. Each source's text (its retrieved chunks) is read line by line; lines that are not prose are left
   out: each chunk's context line (the source's title, or ``title > section``), Markdown headings, section
   underlines (``----``, ``====``) and the title above them, rst directives (``.. note::``), code
   fences and what they hold, doctest lines (``>>>``) and the rest of their paragraph (their output),
   numpydoc ``name : type`` lines, and terms above a deeper-indented definition (numpydoc return
   types, rst definition lists).
2. The remaining runs of lines are cut into sentences by ``sentencex`` (Wikimedia's rule-based
   segmenter: no model or data to download); each list item starts a run of its own. A sentence
   counts when at least ``MIN_WORDS`` of its tokens, and half of them, are words (signatures and code
   are mostly not), and it ends with neither ``:`` (a lead-in to the list or code left out) nor ``?``
   (a question, often the one asked, restated, is no answer).
3. Sentences are ranked by the cosine similarity of their embedding to the question's (the index's own
   embeddings resource); exact and near duplicates (cosine >= ``DUPLICATE_SIMILARITY``) are dropped;
   the best ``MAX_SENTENCES`` scoring at least ``RELATIVE_FLOOR`` x the best are kept.
4. They are shown in source order, then in text order, each followed by its source's number ``[n]``
   (1-based, as in the sources list). Whitespace inside a sentence is collapsed to single spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SENTENCES = 3
MIN_WORDS = 4
MAX_SENTENCE_CHARS = 600  # longer "sentences" are tables or run-on code, not an answer
RELATIVE_FLOOR = 0.75  # a kept sentence scores at least this share of the best one's similarity
DUPLICATE_SIMILARITY = 0.95
NO_SOURCES = "No sources were retrieved for this question, so there is nothing to answer from."
NO_SENTENCES = "The retrieved sources hold no prose sentences to answer from; see the sources below."

_UNDERLINE = re.compile(r"[-=~^*+#`'\"]{3,}")
_FENCE = re.compile(r"(```|~~~)")
_HEADING = re.compile(r"#{1,6}(\s|$)")
_DIRECTIVE = re.compile(r"\.\. [\w:-]+::")
_NUMPYDOC_TERM = re.compile(r"\*{0,2}[\w.]+(, \*{0,2}[\w.]+)* : \S")
_LIST_ITEM = re.compile(r"([-*+]|\d+[.)])\s")
_WORD = re.compile(r"[(\"'`]?[A-Za-z][A-Za-z'-]*[)\"'`,.;:!?]*")


@dataclass(frozen=True)
class Sentence:
    source: int  # the source's number, 1-based
    position: int  # order within the source
    text: str
    score: float = 0.0


def prose_blocks(text: str, title: str = "") -> list[str]:
    """Runs of consecutive prose lines of a source's text, each joined with single spaces."""
    blocks: list[list[str]] = [[]]
    in_fence = skip_paragraph = False
    lines = text.splitlines()
    for i, raw in enumerate(lines):
        line = raw.strip()
        after = lines[i + 1] if i + 1 < len(lines) else ""
        following = after.strip()
        # a term above its deeper-indented definition (numpydoc "Returns" types, rst definition lists)
        term = (following and _indent(after) > _indent(raw) and not line.endswith((".", ":", "!", "?"))
                and not _LIST_ITEM.match(line))
        if _FENCE.match(line):
            in_fence = not in_fence
            blocks.append([])
            continue
        if not line:
            skip_paragraph = False
        if line.startswith(">>>"):
            skip_paragraph = True  # a doctest and its output, up to the blank line
        drop = (in_fence or skip_paragraph or not line or line == title or line.startswith(f"{title} > ")
                or _HEADING.match(line) or _UNDERLINE.fullmatch(line)
                or (_UNDERLINE.fullmatch(following) and len(following) >= len(line) * 0.5)
                or _DIRECTIVE.match(line) or _NUMPYDOC_TERM.match(line) or term)
        if drop:
            if blocks[-1]:
                blocks.append([])
            continue
        if _LIST_ITEM.match(line) and blocks[-1]:
            blocks.append([])  # a list item is a sentence of its own, not the end of the one above
        blocks[-1].append(line)
    return [" ".join(block) for block in blocks if block]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def is_prose(sentence: str) -> bool:
    tokens = sentence.split()
    words = sum(1 for t in tokens if _WORD.fullmatch(t))
    return (words >= MIN_WORDS and words * 2 >= len(tokens) and len(sentence) <= MAX_SENTENCE_CHARS
            and not sentence.endswith((":", "?")))  # a lead-in to what was left out; a question


def candidate_sentences(sources: list[dict]) -> list[Sentence]:
    """Every prose sentence of the sources, in source order then text order."""
    from sentencex import segment

    found: list[Sentence] = []
    for number, source in enumerate(sources, 1):
        position = 0
        for block in prose_blocks(source.get("text") or "", source.get("title") or ""):
            for piece in segment("en", block):
                sentence = " ".join(piece.split())
                if is_prose(sentence):
                    found.append(Sentence(number, position, sentence))
                    position += 1
    return found


def pick_sentences(question: str, candidates: list[Sentence], embed) -> list[Sentence]:
    """The best few candidates for the question, deduplicated, in reading order. ``embed`` maps a
    list of texts to L2-normalised vectors (``EmbeddingsResource.embed_array``)."""
    import numpy as np

    unique: dict[str, Sentence] = {}
    for sentence in candidates:
        unique.setdefault(sentence.text.casefold(), sentence)  # the first source to say it cites it
    candidates = list(unique.values())
    if not candidates:
        return []
    vectors = np.asarray(embed([question] + [s.text for s in candidates]), dtype=np.float32)
    scores = vectors[1:] @ vectors[0]
    order = np.argsort(-scores, kind="stable")
    best = float(scores[order[0]])
    kept: list[int] = []
    for i in order:
        if len(kept) == MAX_SENTENCES or scores[i] < RELATIVE_FLOOR * best:
            break
        if any(float(vectors[1 + i] @ vectors[1 + j]) >= DUPLICATE_SIMILARITY for j in kept):
            continue
        kept.append(int(i))
    picked = [Sentence(candidates[i].source, candidates[i].position, candidates[i].text, float(scores[i]))
              for i in kept]
    return sorted(picked, key=lambda s: (s.source, s.position))


def extractive_answer(question: str, sources: list[dict], embed) -> tuple[str, list[Sentence]]:
    """``(answer text, the sentences it quotes)``: the sentences, each followed by ``[n]``."""
    if not sources:
        return NO_SOURCES, []
    picked = pick_sentences(question, candidate_sentences(sources), embed)
    if not picked:
        return NO_SENTENCES, []
    return " ".join(f"{s.text} [{s.source}]" for s in picked), picked


def label(embedding_model: str) -> str:
    """The answer's ``model``: ``extractive:`` and the short name of the embedding model that ranked it."""
    return "extractive:" + embedding_model.rstrip("/").rsplit("/", 1)[-1]
