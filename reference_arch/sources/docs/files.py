"""The docs folder: Markdown, reStructuredText and plain-text files, a document per file, grouped in
a partition per top-level folder (``dir:<folder>``, ``dir:.`` for the files at the root)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from reference_arch.sources.docs.helpers import (BASE_URL_ENV, FORMATS, ROOT_FOLDER, docs_dir, iso, page_row,
                                                 sha256)
from reference_arch.sources.export_files import SkipStats, decode_text


def doc_files(folder: Path) -> list[Path]:
    """The documentation files under ``folder``, hidden files and folders left out."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower() in FORMATS]
    return found


def file_partition(relative: str) -> str:
    """``guides/io.md`` -> ``dir:guides``; a file at the root -> ``dir:.``."""
    head, sep, _ = relative.partition("/")
    return f"dir:{head if sep else ROOT_FOLDER}"


def file_hashes(folder: str | Path | None = None) -> dict[str, str]:
    """``{relative path: sha256 of the bytes}`` of every documentation file: what changed, not when."""
    root = docs_dir(folder)
    hashes = {}
    for path in doc_files(root):
        try:
            hashes[path.relative_to(root).as_posix()] = sha256(path.read_bytes())
        except OSError:
            continue  # vanished or unreadable between listing and reading: the next scan sees it
    return hashes


def _title(text: str, fmt: str, fallback: str) -> str:
    if fmt == "markdown":  # the first real heading: a "# comment" in a code block is not one
        from reference_arch.common.markdown import headings

        return next((h.text for h in headings(text) if h.text), fallback)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if fmt == "rst" and stripped and i + 1 < len(lines) and re.fullmatch(r"([=\-~^*#])\1{2,}", lines[i + 1].strip()):
            return stripped
    return fallback


def file_rows(root: Path, partition: str, stats: SkipStats) -> Iterator[dict]:
    base_url = os.environ.get(BASE_URL_ENV, "")
    for path in doc_files(root):
        relative = path.relative_to(root).as_posix()
        if file_partition(relative) != partition:
            continue
        try:
            raw = path.read_bytes()
            mtime = path.stat().st_mtime
        except OSError as err:
            stats.skip("unreadable_file", str(path), type(err).__name__)
            continue
        text = decode_text(raw, str(path), stats)  # a stray byte costs a character, not the page
        if not text.strip():
            stats.skip("empty_file", str(path))
            continue
        fmt = FORMATS[path.suffix.lower()]
        title = _title(text, fmt, path.stem.replace("-", " ").replace("_", " "))
        yield page_row(f"docs:{relative}", partition, "file", fmt, title, relative,
                       base_url.rstrip("/") + "/" + relative if base_url else "", text, iso(mtime), iso(mtime))
