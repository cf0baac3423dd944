"""How a fine-tuned model is compared with its base on the validation set.

- Local models: the mean cross-entropy of the maintainers' answers given the questions (the answer
  tokens only, exactly the tokens the model was trained on) and its perplexity. Lower is better.
- OpenAI models (no log-probabilities of a given text through the chat API): both models answer the
  validation questions and each answer is scored by token F1 against the maintainer's answer (the
  SQuAD overlap score: harmonic mean of unigram precision and recall). Higher is better.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"\w+")


def token_f1(prediction: str, reference: str) -> float:
    predicted, expected = _WORD.findall(prediction.lower()), _WORD.findall(reference.lower())
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def answer_loss(model_dir: str, examples: list[dict], max_seq_len: int, batch_size: int = 8) -> dict:
    """Mean loss per answer token and perplexity of a local model on chat examples."""
    import torch

    from reference_arch.finetune.chat_format import encode_chat
    from reference_arch.finetune.local_backend import load_chat_tokenizer

    from reference_arch.common.trainer.causal_lm import load_model

    tokenizer = load_chat_tokenizer(model_dir)
    model = load_model(model_dir).eval()
    encoded = [encode_chat(tokenizer, e["messages"]) for e in examples]
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = [(ids[:max_seq_len], labels[:max_seq_len]) for ids, labels in encoded[start:start + batch_size]]
            width = max(len(ids) for ids, _ in batch)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total_loss += float(loss)
            total_tokens += int((targets != -100).sum())
    mean = total_loss / max(total_tokens, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": total_tokens}


def generated_answer_scores(model_path: str, examples: list[dict], sources: list[list[dict]],
                            decoding: dict, max_tokens: int = 96) -> dict:
    """A local model's answers to chat examples (their system and user messages) measured against each
    example's sources: ``format_compliance`` (share keeping ``grounded_format``), ``citation_validity``
    (valid citations / all citations, 0 without any), ``groundedness`` (mean, ``score_answer``) and the first
    ``example_answer``."""
    from reference_arch.common.answer_quality import grounded_format, score_answer
    from reference_arch.common.llm.local import LocalChatModel
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource

    chat = LocalChatModel(model_path=model_path, model_name=model_path, max_tokens=max_tokens, **decoding)
    embed = EmbeddingsResource(provider="local").embed_array
    formats, grounded, answers = [], [], []
    for example, example_sources in zip(examples, sources):
        prompt = [(m["role"], m["content"]) for m in example["messages"][:-1]]
        text = str(chat.invoke(prompt).content)
        question = prompt[-1][1].rsplit("Question: ", 1)[-1]
        formats.append(grounded_format(text, len(example_sources)))
        grounded.append(score_answer(question, text, example_sources, embed)["groundedness"])
        answers.append(text)
    valid = sum(f["valid_citations"] for f in formats)
    cited = valid + sum(f["invalid_citations"] for f in formats)
    n = max(len(formats), 1)
    return {"format_compliance": sum(f["ok"] for f in formats) / n, "citation_validity": valid / cited if cited else 0.0,
            "groundedness": sum(grounded) / n, "format_examples": len(formats),
            "example_answer": answers[0] if answers else ""}

