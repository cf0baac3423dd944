"""Atomic writes: a reader (or a process that crashed mid-write) sees the old file or the new one,
never half of one.

Files go to a temporary name in the target's own directory (same filesystem, so the rename is
atomic), are flushed and fsynced, then ``os.replace``d over the target; the directory is fsynced
so the rename survives a power cut. Directories are built under a staging name and swapped in the
same way (the old one is moved aside first, then removed).

    write_json(path, {"step": 3})
    write_parquet(path, table)
    with open_atomic(path, "w") as out: out.write(...)
    with staging_file(path) as tmp: other_library.save(tmp)
    with staging_dir(path) as tmp: model.save_pretrained(tmp)
    with scratch_dir(path) as tmp: build(tmp); move_to_new(tmp, path)   # never over another's work
    set_aside(path)   # an unreadable derived file, kept once as path.unreadable
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(directory)


@contextlib.contextmanager
def staging_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``; what is written there replaces ``path`` when the block
    exits without an error (and is removed when it raises)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open(path, mode)`` whose content appears at ``path`` only when the block succeeds."""
    if "b" in mode:
        encoding = None
    with staging_file(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle
        handle.flush()


def write_bytes(path: str | Path, data: bytes) -> Path:
    with open_atomic(path, "wb") as out:
        out.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with open_atomic(path, "w") as out:
        out.write(text)
    return Path(path)


def write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    return write_text(path, json.dumps(data, **{"indent": 2, "default": str, **dumps}))


def write_parquet(path: str | Path, table) -> Path:
    """A ``pyarrow.Table`` as a Parquet file at ``path``."""
    import pyarrow.parquet as pq

    with staging_file(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def set_aside(path: str | Path, suffix: str = ".unreadable") -> Path | None:
    """Rename ``path`` to ``path`` + ``suffix`` (replacing an earlier one), so a damaged derived file
    is kept once for a look while a fresh one is written; ``None`` when there is no ``path``."""
    source = Path(path)
    aside = source.with_name(source.name + suffix)
    try:
        os.replace(source, aside)
    except FileNotFoundError:
        return None
    return aside


@contextlib.contextmanager
def scratch_dir(beside: str | Path, prefix: str = "") -> Iterator[Path]:
    """An empty directory in ``beside``'s parent directory (the same filesystem, so what is built
    there can be renamed into place), removed with whatever is left in it when the block exits."""
    target = Path(beside)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{prefix or target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def move_to_new(built: str | Path, path: str | Path) -> bool:
    """Rename the finished directory ``built`` to ``path`` unless a file or a non-empty directory is
    there already (another writer's work is never replaced): True when it moved, False when ``path``
    was taken.
    ``built`` must be on ``path``'s filesystem (build it in a ``scratch_dir(path)``)."""
    source, target = Path(built), Path(path)
    _fsync_tree(source)
    try:
        os.rename(source, target)  # fails on a non-empty directory (POSIX) or any existing one (Windows)
    except OSError:
        if target.exists():
            return False
        raise
    _fsync_dir(target.parent)
    return True


@contextlib.contextmanager
def staging_dir(path: str | Path) -> Iterator[Path]:
    """An empty directory beside ``path``; when the block succeeds it replaces ``path`` (the old
    one is moved aside, the new one renamed in, the old one removed). On error it is removed and
    ``path`` is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        yield staging
        _fsync_tree(staging)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
        try:
            os.replace(staging, target)
        except OSError:
            if old is not None:
                os.replace(old / "x", target)
            raise
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
