"""Preference pairs (a chosen and a rejected answer to one question) and how a model ranks them.

Where pairs come from, in order:
- **feedback** (``common.feedback``): a question with an ``up`` and a ``down`` answer is a pair; an
  approved answer alone is chosen against the local model's own answer; a rejected answer alone is
  rejected against the maintainer's answer from the fine-tuning data (when that question is there).
- **generated**, from the fine-tuning Q&A (always on a fresh clone, where there is no feedback): the
  maintainer's answer is chosen, the base model's own answer (greedy: what it prefers), or when that is empty another
  question's answer, is rejected.

A pair built against a maintainer's answer is kept only when the evaluation's score (token F1 against
that answer, ``metrics.token_f1``) ranks chosen above rejected. Each pair's side (``train`` or
``heldout``) is a stable hash of its question, so a question's pairs never straddle the two.

Preference accuracy (``preference_accuracy``): the share of pairs on which a model gives the chosen
answer a higher log-probability than the rejected one, given the chat-rendered question (the mean over
each answer's tokens, end of text included: a sum would favour the shorter answer whatever it says).
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

FEEDBACK, GENERATED = "feedback", "generated"
TRAIN, HELDOUT = "train", "heldout"
SPLIT_SALT = "preference-split-v1"


def side_of(question: str, heldout_fraction: float) -> str:
    """``heldout`` for about ``heldout_fraction`` of questions (by text, case and spacing ignored), else ``train``."""
    from reference_arch.finetune.qa import question_fingerprint
    from reference_arch.finetune.split import VALIDATION, split_of

    side = split_of(question_fingerprint(question), heldout_fraction, salt=SPLIT_SALT)
    return HELDOUT if side == VALIDATION else TRAIN


def pair(question: str, chosen: str, rejected: Optional[str], origin: str, how: str,
         reference: Optional[str] = None) -> dict:
    """One pair: ``how`` names its two answers (``up/down``, ``up/model``, ``reference/down``,
    ``reference/model``, ``reference/other``); ``reference`` is the maintainer's answer the scores use."""
    return {"question": question, "chosen": chosen, "rejected": rejected, "origin": origin, "how": how,
            "reference": reference}


def feedback_pairs(records: Iterable[dict], references: dict[str, str]) -> list[dict]:
    """Pairs from feedback records (``run_id, verdict, question, answer, ...``), the newest verdicts of a
    question first; ``references`` maps a question's fingerprint to the maintainer's answer. An approved
    answer alone gives a pair whose ``rejected`` is None (to be generated). A RAG answer's ``[n]`` citation
    marks are dropped (the sources they point at are not in the tuned model's prompt)."""
    from reference_arch.finetune.qa import question_fingerprint

    import re

    by_question: dict[str, dict] = {}
    for record in records:
        question, answer = str(record.get("question") or "").strip(), str(record.get("answer") or "").strip()
        if record.get("target") == "rag":  # its [n] cite sources the tuned model's prompt does not show
            answer = re.sub(r"\s*\[\d+\]", "", answer).strip()
        if not question or not answer or record.get("verdict") not in ("up", "down"):
            continue
        entry = by_question.setdefault(question_fingerprint(question), {"question": question, "up": [], "down": []})
        entry[record["verdict"]].append(answer)
    pairs = []
    for key, entry in by_question.items():
        ups, downs = entry["up"], [d for d in entry["down"] if d not in entry["up"]]
        reference = references.get(key)
        if ups and downs:
            pairs.append(pair(entry["question"], ups[-1], downs[-1], FEEDBACK, "up/down", reference))
        elif ups:
            pairs.append(pair(entry["question"], ups[-1], None, FEEDBACK, "up/model", reference or ups[-1]))
        elif downs and reference and reference != downs[-1]:
            pairs.append(pair(entry["question"], reference, downs[-1], FEEDBACK, "reference/down", reference))
    return pairs


def reference_pairs(qa: list[dict], taken: set[str]) -> list[dict]:
    """Pairs from the fine-tuning Q&A (``question``, ``answer``) whose question has no feedback pair
    (``taken``: fingerprints); ``rejected`` is None (to be generated)."""
    from reference_arch.finetune.qa import question_fingerprint

    return [pair(p["question"], p["answer"], None, GENERATED, "reference/model", p["answer"])
            for p in qa if question_fingerprint(p["question"]) not in taken]


def fill_rejected(pairs: list[dict], generate: Callable[[list[str]], list[str]], others: list[str]) -> list[dict]:
    """Each pair without a rejected answer gets the model's answer (``generate(questions)``; blanks
    included: a model that answers with spaces is wrong), or, when that is empty or the chosen answer itself, the next of ``others`` (other questions' answers) that differs."""
    missing = [p for p in pairs if p["rejected"] is None]
    generated = generate([p["question"] for p in missing]) if missing else []
    for n, (p, answer) in enumerate(zip(missing, generated)):
        if answer and answer.strip() != p["chosen"].strip():
            p["rejected"] = answer
            continue
        alternatives = [o for o in others[n:] + others[:n] if o.strip() and o != p["chosen"]]
        p["rejected"], p["how"] = (alternatives[0] if alternatives else None), p["how"].replace("model", "other")
    return [p for p in pairs if p["rejected"]]


def ranked(pairs: list[dict]) -> tuple[list[dict], int]:
    """The pairs whose chosen answer scores higher than the rejected one against the maintainer's
    answer (token F1; a pair with no maintainer's answer keeps the user's verdict), with the scores;
    and how many were dropped."""
    from reference_arch.finetune.metrics import token_f1

    kept = []
    for p in pairs:
        if p["reference"] is None:
            kept.append({**p, "chosen_score": None, "rejected_score": None})
            continue
        chosen, rejected = token_f1(p["chosen"], p["reference"]), token_f1(p["rejected"], p["reference"])
        if chosen > rejected:
            kept.append({**p, "chosen_score": chosen, "rejected_score": rejected})
    return kept, len(pairs) - len(kept)


def generate_answers(model_dir: str, questions: list[str], system_prompt: str, max_new_tokens: int,
                     max_prompt_tokens: int) -> list[str]:
    """The model's greedy answer to each question (chat-rendered as at inference, the prompt cut to its last
    ``max_prompt_tokens``), as text (blank, when that is what it says): at least a third of ``max_new_tokens`` tokens (no empty answers)."""
    import torch

    from reference_arch.common.trainer.causal_lm import encode_chat, load_model
    from reference_arch.finetune.local_backend import load_chat_tokenizer

    tokenizer = load_chat_tokenizer(model_dir)
    model = load_model(model_dir).eval()
    answers = []
    with torch.no_grad():
        for question in questions:
            ids = encode_chat(tokenizer, [{"role": "system", "content": system_prompt},
                                          {"role": "user", "content": question}], add_generation_prompt=True)
            ids = ids[-max_prompt_tokens:]
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=max_new_tokens, min_new_tokens=max(1, max_new_tokens // 3),
                                 do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            answers.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))
    return answers


def encode_pair(tokenizer, p: dict, system_prompt: str, max_seq_len: int) -> Optional[dict]:
    """``prompt_ids`` (the chat-rendered question with the generation prompt), ``chosen_ids`` and
    ``rejected_ids`` (the answer and the end of text); the question is cut from its start and the
    answers from their end to fit ``max_seq_len``. None when not even a short prompt fits."""
    from reference_arch.common.trainer.causal_lm import encode_chat, encode_text

    prompt = encode_chat(tokenizer, [{"role": "system", "content": system_prompt},
                                     {"role": "user", "content": p["question"]}], add_generation_prompt=True)
    room = max_seq_len // 2  # for the answers
    prompt = prompt[-(max_seq_len - room):]
    if len(prompt) >= max_seq_len - 1:
        return None
    room = max_seq_len - len(prompt)

    def answer(text: str) -> list[int]:
        return (encode_text(tokenizer, text)[: room - 1]) + [tokenizer.eos_token_id]

    return {"prompt_ids": prompt, "chosen_ids": answer(p["chosen"]), "rejected_ids": answer(p["rejected"])}


def answer_logprobs(model_dir: str, encoded: list[dict]) -> list[tuple[float, float]]:
    """(log p(chosen | prompt), log p(rejected | prompt)) under the model at ``model_dir``, per pair (nats)."""
    import torch

    from reference_arch.common.trainer.causal_lm import load_model

    model = load_model(model_dir).eval()

    def logprob(prompt: list[int], answer: list[int]) -> float:
        ids = torch.tensor([prompt + answer])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
        return float(torch.log_softmax(logits, -1).gather(1, torch.tensor(answer)[:, None]).sum())

    with torch.no_grad():
        return [(logprob(e["prompt_ids"], e["chosen_ids"]), logprob(e["prompt_ids"], e["rejected_ids"]))
                for e in encoded]


def margins(model_dir: str, encoded: list[dict]) -> list[float]:
    """Per pair, the model's margin for the chosen answer: log p(chosen) - log p(rejected), each the mean
    over the answer's tokens (nats per token), so a longer answer is not rejected for its length alone."""
    return [c / len(e["chosen_ids"]) - r / len(e["rejected_ids"])
            for (c, r), e in zip(answer_logprobs(model_dir, encoded), encoded)]


# The mean margin must widen by at least this much (nats per token) to count; below it the difference is noise
# (a vanishing learning rate).
MARGIN_TOLERANCE = 0.01


def beats_base(scores: dict) -> bool:
    """The publication gate on ``preference_accuracy``'s scores, on the held-out pairs: DPO's implicit reward
    (the tuned model's margin over its base's) ranks the chosen answer above the rejected one on more than
    half of them (TRL's ``rewards/accuracies``), the mean margin widens by ``MARGIN_TOLERANCE``, and the tuned
    model prefers the chosen answer on no fewer pairs than its base.

    Absolute preference accuracy alone cannot be the gate: a generated pair's rejected answer is the base
    model's own greedy answer, which the base, and a model tuned from it, rate likelier than any other (a demo:
    0% for both, while the mean margin rose from -3.23 to -1.46 nats per token)."""
    if not scores.get("pairs"):
        return False
    return (scores["reward_accuracy"] > 0.5 and scores["tuned_margin"] > scores["base_margin"] + MARGIN_TOLERANCE
            and scores["tuned_accuracy"] >= scores["base_accuracy"])


def answers_worse(tuned: dict, base: dict) -> str:
    """Why the tuned model's answers to the held-out grounded prompts (``metrics.generated_answer_scores``) are
    worse than its base's, or ``""``: format compliance or groundedness lower by more than one answer's share
    (a demo's DPO widened the implicit reward on every pair while format fell from 83% to 0% of 6 answers)."""
    n = tuned.get("format_examples") or 0
    if not (n and base.get("format_examples")):
        return ""
    slack = 1 / n + 1e-9  # one answer (and float rounding)
    worse = [f"{name} {base[key]:.2f} -> {tuned[key]:.2f}" for name, key in
             (("format", "format_compliance"), ("groundedness", "groundedness")) if tuned[key] < base[key] - slack]
    return ", ".join(worse)


def preference_accuracy(base_dir: str, tuned_dir: str, encoded: list[dict]) -> dict:
    """On ``encoded`` pairs: base and tuned preference accuracy (share of pairs with a positive margin,
    ``margins``), their mean margins (nats per token), and the DPO reward accuracy (share of pairs on
    which the tuned model's margin is above its base's: the preference relative to the reference model)."""
    base, tuned = margins(base_dir, encoded), margins(tuned_dir, encoded)
    n = max(len(encoded), 1)
    return {
        "pairs": len(encoded),
        "base_accuracy": sum(m > 0 for m in base) / n,
        "tuned_accuracy": sum(m > 0 for m in tuned) / n,
        "base_margin": sum(base) / n,
        "tuned_margin": sum(tuned) / n,
        "reward_accuracy": sum(t > b for t, b in zip(tuned, base)) / n,
    }  # in this order on the registry card: the demo shows its first five
