"""The prompt templates: the seed's Pandas template and a variant, each with the format it asks for.

Templates are versioned by content: ``template_hash`` is each ``prompt/template`` partition's data
version and metadata, and ``templates_version()`` the code version of the template and prompt assets,
so editing a template marks the prompts and answers built from it as stale.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str  # a LangChain template with a {question} variable
    max_sentences: int  # the answer's prose, code blocks and link lines aside
    links: int  # how many links the answer must give
    code_block: bool = False

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in [
        PromptTemplate(
            name="pandas",
            text=(
                "In the context of the python framework Pandas. Answer the questions in 1 or 2 sentences. "
                "Also include two links for further relevant information. Question: {question}"
            ),
            max_sentences=2,
            links=2,
        ),
        PromptTemplate(
            name="pandas_example",
            text=(
                "In the context of the python framework Pandas. Answer the question in 1 or 2 sentences, "
                "then show one short example in a ```python code block. Finish with two links to the "
                "official pandas documentation. Question: {question}"
            ),
            max_sentences=2,
            links=2,
            code_block=True,
        ),
    ]
}

DEFAULT_TEMPLATE = "pandas"


def template_named(name: str) -> PromptTemplate:
    """The template called ``name``; ``ValueError`` with one line listing the known templates."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}: choose one of {', '.join(TEMPLATES)}") from None


def render(template: PromptTemplate, question: str) -> list[dict[str, str]]:
    """The template rendered for ``question``: chat messages ``[{"role": "user", "content": ...}]``."""
    messages = chat_prompt(template).format_messages(question=question)
    return [{"role": "user" if m.type == "human" else m.type, "content": str(m.content)} for m in messages]


def templates_version() -> str:
    """One hash over every template: the prompt asset's code version."""
    return hashlib.sha256("".join(t.hash for t in TEMPLATES.values()).encode()).hexdigest()[:12]


def chat_prompt(template: PromptTemplate):
    """The template as a LangChain ``ChatPromptTemplate``."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("human", template.text)])


_URL = re.compile(r"https?://[^\s)\]>]+")
_CODE = re.compile(r"```.*?(```|$)", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`(\"'])")


def check_format(template: PromptTemplate, answer: str) -> tuple[bool, dict]:
    """Does the answer keep the format the template asks for? Returns (passed, measurements)."""
    links = sorted(set(u.rstrip(".,;") for u in _URL.findall(answer)))
    has_code = bool(re.search(r"```", answer))
    prose = _CODE.sub(" ", answer)
    # Lines that only carry links ("- [Docs](https://...)") are not sentences.
    prose_lines = [ln for ln in prose.splitlines() if not _URL.search(ln) or len(_URL.sub("", ln).strip(" -*:[]()")) > 40]
    prose = _URL.sub("", " ".join(prose_lines)).strip()
    sentences = [s for s in _SENTENCE_END.split(prose) if len(s.strip(" -*:")) > 2] if prose else []
    measured = {"sentences": len(sentences), "links": len(links), "code_block": has_code}
    passed = (
        1 <= len(sentences) <= template.max_sentences
        and len(links) == template.links
        and (has_code or not template.code_block)
    )
    return passed, measured
