"""The ``answer_format`` check's measure: does an answer keep the output format its template asks for?"""

from __future__ import annotations

import re

_URL = re.compile(r"https?://[^\s)\]>]+")
_CODE = re.compile(r"```.*?(```|$)", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`(\"'])")


def check_format(template, answer: str) -> tuple[bool, dict]:
    """Does the answer keep the template's ``output`` format? Returns (passed, measurements)."""
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
