"""The documentation a newcomer reads: a README short enough to read in five minutes, that says how to start
near its top; no paragraph kept in two Markdown files (one place to read a fact, and to fix it); and no
relative link in them that leads nowhere.

The Markdown files are README.md, docs/*.md, each reference_arch/<folder>/README.md and
bench/results/RESULTS.md. A paragraph is a block of text between blank lines, outside fenced code blocks
and tables, of at least 80 characters once its whitespace is collapsed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 220
START_WITHIN = 60  # lines: how to set up, test and open the UI, and the settings that switch backends
MUST_START_WITH = ("make demo", "make test", "http://localhost:3000", "| LLM |", "OPENAI_API_KEY", "(#settings)")
MIN_PARAGRAPH = 80
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def markdown_files(root: Path = ROOT) -> list[Path]:
    """The Markdown files whose paragraphs and links are checked."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             *sorted((root / "reference_arch").glob("*/README.md")), root / "bench" / "results" / "RESULTS.md"]
    return [f for f in files if f.is_file()]


def prose_lines(text: str) -> list[str]:
    """The lines of ``text`` with those of fenced code blocks replaced by blank lines (a fence closes only
    with the character it opened with, at least as many times)."""
    lines, fence = [], None
    for line in text.splitlines():
        opener = re.match(r"^ {0,3}(`{3,}|~{3,})", line)
        if fence is None and opener:
            fence = opener[1]
            lines.append("")
        elif fence is not None:
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", line):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def paragraphs(text: str) -> list[str]:
    """The paragraphs of ``text``, whitespace collapsed: blocks between blank lines, outside code blocks, with
    table rows left out, of at least MIN_PARAGRAPH characters."""
    found, block = [], []
    for line in [*prose_lines(text), ""]:
        if line.strip() and not line.lstrip().startswith("|"):
            block.append(line.strip())
        elif not line.strip():
            joined = " ".join(" ".join(block).split())
            if len(joined) >= MIN_PARAGRAPH:
                found.append(joined)
            block = []
    return found


def relative_links(text: str) -> list[str]:
    """The targets of the links and images of ``text`` that are paths (no scheme, not an anchor alone),
    outside code blocks and inline code, without their ``#fragment``."""
    targets = []
    for line in prose_lines(text):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not EXTERNAL.match(target):
                targets.append(target.split("#", 1)[0])
    return [t for t in targets if t]


def readme_problems(readme: str) -> list[str]:
    lines = readme.splitlines()
    problems = [f"README.md has {len(lines)} lines, more than {README_MAX_LINES}"] if len(lines) > README_MAX_LINES else []
    top = "\n".join(lines[:START_WITHIN])
    problems += [f"README.md's first {START_WITHIN} lines do not say `{s}`" for s in MUST_START_WITH if s not in top]
    return problems


def repeated_paragraphs(root: Path = ROOT) -> list[str]:
    where: dict[str, set[str]] = {}
    for path in markdown_files(root):
        for paragraph in paragraphs(path.read_text(encoding="utf-8")):
            where.setdefault(paragraph, set()).add(str(path.relative_to(root)))
    return [f"{' and '.join(sorted(files))} both hold: {paragraph[:100]}..."
            for paragraph, files in where.items() if len(files) > 1]


def broken_links(root: Path = ROOT) -> list[str]:
    broken = []
    for path in markdown_files(root):
        for target in relative_links(path.read_text(encoding="utf-8")):
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(root)} links to {target}, which does not exist")
    return broken


def test_the_parsers():
    text = ("# Title\n\n" + "word " * 20 + "\nmore [a](b.md#x) and ![i](img/p.png) and [web](https://x.org)\n\n"
            "```bash\n" + "code " * 30 + "\n```\n\n| a | b |\n|---|---|\n| " + "cell " * 30 + "|\n\n"
            "`[not](a-link.md)` short line\n")
    found = paragraphs(text)
    assert len(found) == 1 and found[0].startswith("word word") and "more [a](b.md#x)" in found[0]
    assert relative_links(text) == ["b.md", "img/p.png"]
    assert paragraphs("````md\n```\n" + "inside " * 20 + "\n```\n````\n") == []


def test_the_readme_is_short_and_starts_with_the_set_up():
    assert not readme_problems((ROOT / "README.md").read_text(encoding="utf-8")), \
        readme_problems((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme_problems("a line\n" * 300) == [f"README.md has 300 lines, more than {README_MAX_LINES}"] + [
        f"README.md's first {START_WITHIN} lines do not say `{s}`" for s in MUST_START_WITH]


def test_no_paragraph_is_in_two_markdown_files():
    repeated = repeated_paragraphs()
    assert not repeated, "\n".join(repeated)


def test_every_relative_link_leads_to_a_file():
    broken = broken_links()
    assert not broken, "\n".join(broken)
