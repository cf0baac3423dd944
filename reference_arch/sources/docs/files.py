"""The docs folder: Markdown, reStructuredText and plain-text files, a document per file, grouped in
a partition per top-level folder (``dir:<folder>``, ``dir:.`` for the files at the root).

A folder anyone can write to is hostile input: what is not a page is skipped and named in the load's counts,
and the rest of the folder loads. That is a FIFO, socket or device named like a page (never opened to wait on
a writer), a name that is not UTF-8 (ids, titles and sources are text), a page over ``MAX_PAGE_BYTES``
(chunked and embedded at a few seconds per MB), and binary content (``export_files.binary_detail``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from reference_arch.common import settings
from reference_arch.sources.docs.helpers import FORMATS, ROOT_FOLDER, docs_dir, iso, page_row, sha256
from reference_arch.sources.export_files import SkipStats, UnusableFile, file_text, read_regular_file, shown_path

# A documentation page is rarely over a few hundred KB; a 200 MB one took over 20 minutes and 5.4 GB.
MAX_PAGE_BYTES = 5 * 1024 * 1024
# In every folder partition's fingerprint: a change of what is skipped reloads the partitions once, so a
# page stored before it was skipped leaves the warehouse.
READ_RULES = f"max_bytes={MAX_PAGE_BYTES};skip=non-regular,non-utf8-name,binary"


def doc_files(folder: Path) -> list[Path]:
    """The documentation files under ``folder``, hidden files and folders left out: whatever is named like
    one, so that what is no page is named when it is skipped (``file_rows``)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if not f.startswith(".") and Path(f).suffix.lower() in FORMATS]
    return found


def relative_name(path: Path, root: Path) -> str:
    """``path`` under ``root`` as valid text (bytes that are not UTF-8 escaped, ``shown_path``)."""
    return shown_path(path.relative_to(root).as_posix())


def name_problem(path: Path, root: Path) -> UnusableFile | None:
    """Why ``path`` cannot be a page by its name alone (its id and source are its name), or None."""
    if relative_name(path, root) != path.relative_to(root).as_posix():
        return UnusableFile("not_utf8_name", "rename it to UTF-8")
    return None


def file_partition(relative: str) -> str:
    """``guides/io.md`` -> ``dir:guides``; a file at the root -> ``dir:.``."""
    head, sep, _ = relative.partition("/")
    return f"dir:{head if sep else ROOT_FOLDER}"


def file_hashes(folder: str | Path | None = None) -> dict[str, str]:
    """``{relative path: sha256 of the bytes}`` of every documentation file: what changed, not when. A file
    that is skipped (``file_rows``) is listed with why, so its partition loads and names it."""
    root = docs_dir(folder)
    hashes = {}
    for path in doc_files(root):
        problem = name_problem(path, root)
        try:
            digest = str(problem) if problem else sha256(read_regular_file(path, MAX_PAGE_BYTES))
        except UnusableFile as err:
            digest = str(err)
        except OSError:
            continue  # vanished or unreadable between listing and reading: the next scan sees it
        hashes[relative_name(path, root)] = digest
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
    base_url = settings.value("docs_base_url") or ""
    for path in doc_files(root):
        relative = relative_name(path, root)
        if file_partition(relative) != partition:
            continue
        problem = name_problem(path, root)
        if problem:
            stats.skip(problem.reason, shown_path(path), problem.detail)
            continue
        try:
            mtime = path.stat().st_mtime
        except OSError as err:
            stats.skip("unreadable_file", shown_path(path), type(err).__name__)
            continue
        text = file_text(path, stats, MAX_PAGE_BYTES)  # a stray byte costs a character, not the page
        if text is None:
            continue
        fmt = FORMATS[path.suffix.lower()]
        title = _title(text, fmt, path.stem.replace("-", " ").replace("_", " "))
        yield page_row(f"docs:{relative}", partition, "file", fmt, title, relative,
                       base_url.rstrip("/") + "/" + relative if base_url else "", text, iso(mtime), iso(mtime))
