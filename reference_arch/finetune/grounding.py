"""Grounded examples: the GitHub Q&A pairs in the format a RAG answer takes, for the model to learn it.

Each example asks the question the way ``rag/answer`` does (``common/grounded_prompt``: the instructions,
numbered and fenced sources, the question). The sources are three maintainers' replies: the one that answered
this issue and two replies to other issues (chosen by a hash; a training example's from the training split,
so no validation reply is seen in training), in an order set by a hash of the issue. The answer to learn is the format the templates
ask for (``common/answer_quality.grounded_format``): the first one or two sentences its source shows of the
reply, fenced code left out, each followed by the number of the source it came from. What the model learns is to pick the
source that answers, say it in two sentences and cite it; the maintainer's words keep it grounded.

At question time the finetune location's answer retrieves the same kind of sources: the training replies
most similar to the question (MiniLM cosine, ``similar_replies``).
"""

from __future__ import annotations

import hashlib
import re

# Characters of each reply shown as a source and of the question: an example of the sample export is 530-650
# tokens of SmolLM2 (code, Markdown and the fence tags cost about a token per 2.6 characters), within 768.
SOURCE_CHARS = 160
QUESTION_CHARS = 240
SOURCES = 3
_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
# A reply's opening thanks or greeting ("Thanks for the clear report, Hannah!"): 37 of the sample export's 94
# comments open with one. Learned as the answer's first sentence, the tuned model answered every question
# with thanks (a demo: "Thank you for the clear report, Hannah! [2]").
_COURTESY = re.compile(r"(?i)^(thanks|thank you|many thanks|great (catch|question|suggestion|find|idea)|good (catch|find|"
                       r"question)|nice (catch|find)|hi|hello|hey|sorry|happy to help|glad|love (this|the)|"
                       r"absolutely|appreciated?)\b")


def _rank(*parts: object) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _sentences(answer: str) -> list[str]:
    """The reply's sentences, fenced code and its opening thanks or greetings left out."""
    from sentencex import segment

    sentences = [s.strip() for s in segment("en", " ".join(_FENCE.sub(" ", answer).split())) if s.strip()]
    while sentences and _COURTESY.match(sentences[0]) and (sentences[0].endswith("!") or "`" not in sentences[0]):
        # "Thanks, `x=1` fixes it." stays: thanks that hold code may hold the answer
        sentences.pop(0)
    return sentences


def reply_text(answer: str) -> str:
    """What a source shows of a reply: its first whole sentences (fenced code left out) within
    ``SOURCE_CHARS``, or its first ``SOURCE_CHARS`` characters when the first sentence is longer."""
    kept: list[str] = []
    for sentence in _sentences(answer):
        if len(" ".join([*kept, sentence])) > SOURCE_CHARS:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else " ".join(_sentences(answer) or _FENCE.sub(" ", answer).split())[:SOURCE_CHARS]


def reply_source(pair: dict) -> dict:
    """A maintainer's reply as a retrieved source (``build_messages``' shape)."""
    title = (pair["question"].splitlines() or [""])[0][:60]
    return {"document_id": f"github:{pair.get('repo')}#{pair.get('number')}", "title": f"Reply to: {title}",
            "source": f"{pair.get('repo')}#{pair.get('number')}", "text": reply_text(pair["answer"])}


def grounded_target(answer: str, cite: int) -> str | None:
    """One or two sentences of what the source shows of the reply (``reply_text``: so the model learns to
    say what its source says, never to go on past it), each of at least 8 characters and followed by
    `` [cite]``; None when the source shows no whole sentence."""
    shown = reply_text(answer)
    sentences = [s for s in _sentences(answer)[:2] if len(s) >= 8 and s in shown]
    return " ".join(f"{s} [{cite}]" for s in sentences) or None


def grounded_example(pair: dict, side_pairs: list[dict]) -> tuple[dict, list[dict]] | None:
    """(chat example, its sources) for ``pair``, its distractors drawn from ``side_pairs`` (a training
    example's from the training split only, so no validation reply is trained on; a validation example's
    from any split); None when the reply leaves no sentence to learn or there are too few other replies."""
    from reference_arch.common.grounded_prompt import INSTRUCTIONS, build_messages

    others = sorted((p for p in side_pairs if p["issue_id"] != pair["issue_id"]),
                    key=lambda p: _rank(pair["issue_id"], p["issue_id"]))[:SOURCES - 1]
    if len(others) < SOURCES - 1:
        return None
    at = _rank("position", pair["issue_id"]) % SOURCES
    sources = [reply_source(p) for p in others]
    sources.insert(at, reply_source(pair))
    target = grounded_target(pair["answer"], at + 1)
    if target is None:
        return None
    question = pair["question"][:QUESTION_CHARS]
    return {"messages": [{"role": "system", "content": INSTRUCTIONS},
                         {"role": "user", "content": build_messages(question, sources)[1][1]},
                         {"role": "assistant", "content": target, "weight": 1}]}, sources


def similar_replies(question: str, pairs: list[dict], embed, k: int = SOURCES) -> list[dict]:
    """The ``k`` replies of ``pairs`` most similar to ``question`` (cosine of MiniLM embeddings of the
    question and of each pair's question and reply), as sources with their ``score``."""
    if not pairs:
        return []
    vectors = embed([question, *(f"{p['question'][:QUESTION_CHARS]}\n{p['answer'][:SOURCE_CHARS]}" for p in pairs)])
    scores = vectors[1:] @ vectors[0]
    best = sorted(range(len(pairs)), key=lambda i: -float(scores[i]))[:k]
    return [{**reply_source(pairs[i]), "score": round(float(scores[i]), 4)} for i in best]
