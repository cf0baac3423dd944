"""Markdown headings found by a CommonMark parser (markdown-it-py), not by matching ``#`` at a line start.

A ``#`` line inside a fenced (```` ``` ````, ``~~~``) or indented (four-space) code block is code, often a
shell or Python comment; only the parser knows which lines are headings. Both ATX (``# Title``) and
setext (``Title`` over ``====``) headings count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    level: int  # 1 for <h1> ... 6
    text: str  # the heading's inline source, e.g. "Configuration `x`"
    start: int  # first line (0-based)
    end: int  # line after the heading (a setext heading spans two)


def headings(text: str, max_level: int = 6) -> list[Heading]:
    """The headings of ``text`` up to ``max_level``, in order (nested in lists or quotes too)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    found = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.map and int(token.tag[1:]) <= max_level:
            inline = tokens[i + 1].content if i + 1 < len(tokens) else ""
            found.append(Heading(int(token.tag[1:]), inline.strip(), token.map[0], token.map[1]))
    return found


def sections(text: str, max_level: int = 2) -> list[tuple[list[str], str]]:
    """``(heading path, body)`` pieces of ``text`` cut at its headings up to ``max_level``: the path holds
    the enclosing headings' texts, outermost first; a body keeps its lines as written (code indentation
    included), without the heading lines; pieces with an empty body are left out."""
    lines = text.splitlines()
    cuts = headings(text, max_level)
    out: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    start = 0
    for cut in [*cuts, None]:
        body = "\n".join(lines[start: cut.start if cut else len(lines)]).strip("\n")
        if body.strip():
            out.append(([title for _, title in path], body))
        if cut is None:
            break
        path = [(level, title) for level, title in path if level < cut.level] + [(cut.level, cut.text)]
        start = cut.end
    return out
