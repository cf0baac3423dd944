"""Reading external text for the sources: bad input is repaired or skipped, counted, never fatal.

A malformed JSON file or line, an empty file or a record missing a required field is skipped, logged
as a warning and counted in :class:`SkipStats`, which the sources expose as ``source.skipped`` so an
asset can put the counts in its metadata. Text that is readable but not valid Unicode is repaired and
counted instead, so one bad character never costs a record or a file: bytes that are not UTF-8 decode
to U+FFFD, and so do lone UTF-16 surrogates (JSON allows ``"\\ud83d"``, half of an emoji, which
Python decodes to a string no UTF-8 writer accepts; :func:`repair_row` fixes every string of a record).

Files are read through :func:`file_text`, which never waits on or swallows what is not a text file: a FIFO,
socket or device named like one is skipped without being waited on (opening a FIFO blocks until a writer
comes), a file over an optional size bound is skipped before it is read, and binary content (NUL bytes, or
mostly bytes that are not UTF-8) is skipped rather than stored as text; each is counted and named.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from reference_arch.common.unicode_text import valid_text

log = logging.getLogger(__name__)


@dataclass
class SkipStats:
    """What a source skipped while reading, by reason; filled while the source is extracted."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few, "file:line: reason"
    filtered: Counter = field(default_factory=Counter)  # valid records left out on purpose (not errors)
    repaired: Counter = field(default_factory=Counter)  # records or files kept after fixing their text

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self._note(self.counts, "skipped bad input", reason, where, detail=detail)

    def repair(self, reason: str, where: str, detail: str = "") -> None:
        self._note(self.repaired, "repaired bad input", reason, where, label=f"repaired {reason}", detail=detail)

    def _note(self, counter: Counter, what: str, reason: str, where: str, label: str | None = None,
              detail: str = "") -> None:
        counter[reason] += 1
        message = f"{where}: {label or reason}" + (f" ({detail})" if detail else "")
        if len(self.examples) < 20:
            self.examples.append(message)
        log.warning("%s: %s", what, message)

    def as_metadata(self) -> dict[str, int]:
        """Flat counts, ready for Dagster metadata: ``skipped``, ``skipped_<reason>``, ``repaired``,
        ``repaired_<reason>``, ``filtered_<reason>``."""
        out = {"skipped": self.total, "repaired": sum(self.repaired.values())}
        out.update({f"skipped_{reason}": n for reason, n in sorted(self.counts.items())})
        out.update({f"repaired_{reason}": n for reason, n in sorted(self.repaired.items())})
        out.update({f"filtered_{reason}": n for reason, n in sorted(self.filtered.items())})
        return out


def existing_dir(path: str | Path, what: str, env_var: str) -> Path:
    """The export folder, or a clear error naming the path and how to set it."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder} is not a directory (set {env_var} or pass export_path)")
    return folder




def decode_text(raw: bytes, where: str, stats: SkipStats) -> str:
    """UTF-8 text (a BOM dropped); bytes that are not UTF-8 become U+FFFD and the file is counted."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        stats.repair("not_utf8", where, f"byte {exc.start}")
        return raw.decode("utf-8-sig", errors="replace")


def _repair(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        fixed = valid_text(value)  # one repair for every entry of text (unicode_text)
        return fixed, fixed is not value
    if isinstance(value, dict):
        pairs = [(_repair(k), _repair(v)) for k, v in value.items()]
        return {k: v for (k, _), (v, _) in pairs}, any(a or b for (_, a), (_, b) in pairs)
    if isinstance(value, (list, tuple)):
        items = [_repair(v) for v in value]
        return [v for v, _ in items], any(changed for _, changed in items)
    return value, False


def repair_row(row: Any, table: str, key: tuple[str, ...], stats: SkipStats) -> Any:
    """``row`` with its strings made valid Unicode (see ``unicode_text.repair_text``), counted by ``table``/``key``.

    Meant as a dlt map step (``resource.add_map``) on every resource that carries external text:
    writers (orjson, Arrow, DuckDB) reject lone surrogates, and one such record would fail the load.
    """
    if not isinstance(row, dict):
        return row
    fixed, changed = _repair(row)
    if changed:
        stats.repair("lone_surrogate", f"{table} " + ", ".join(f"{k}={row.get(k)!r}" for k in key))
        return fixed
    return row


def shown_path(path: str | Path) -> str:
    """``path`` as valid text for messages and metadata: bytes of a name that are not UTF-8 (which Python
    hands over as lone surrogates) are shown escaped, ``caf\\xe9.md``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class UnusableFile(Exception):
    """A path that is not read as text: ``reason`` (a ``SkipStats`` reason) and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason} ({detail})" if detail else reason)
        self.reason, self.detail = reason, detail


_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read_regular_file(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at ``path`` (a link is followed); ``UnusableFile`` for anything else or
    for more than ``max_bytes``, ``OSError`` when it cannot be read. Opened without blocking and checked on
    the open file, so a FIFO put in a file's place between listing and reading is not waited on either."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        if err.errno == errno.ENXIO:  # open(2) refuses a socket so: name it as what it is
            raise UnusableFile("not_a_regular_file", "a socket") from None
        raise
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((kind for test, kind in _FILE_KINDS if test(info.st_mode)), "")
            raise UnusableFile("not_a_regular_file", kind)
        if max_bytes is None:
            return f.read()
        raw = f.read(max_bytes + 1) if info.st_size <= max_bytes else b""
        size = max(info.st_size, len(raw))  # a file that grew while it was read counts too
        if size > max_bytes:
            raise UnusableFile("too_large", f"{size} bytes, over the bound of {max_bytes} bytes")
        return raw


# More than this share of bytes that are not UTF-8 is not text in another encoding but binary (a Latin-1
# page has a few per cent); git calls a file binary for a NUL byte in its first 8000 bytes.
BINARY_SHARE = 0.3


def binary_detail(raw: bytes) -> str | None:
    """Why ``raw`` is binary rather than text, or None for text."""
    if b"\0" in raw:
        return "NUL bytes"
    undecodable = len(raw) - len(raw.decode("utf-8", "ignore").encode("utf-8"))
    if raw and undecodable / len(raw) > BINARY_SHARE:
        return f"{undecodable / len(raw):.0%} of its bytes are not UTF-8"
    return None


def file_text(path: str | Path, stats: SkipStats, max_bytes: int | None = None) -> str | None:
    """The text of the file at ``path`` (see :func:`decode_text`), or None with the reason counted in
    ``stats`` and the file named: unreadable, not a regular file, over ``max_bytes``, binary, or empty."""
    where = shown_path(path)
    try:
        raw = read_regular_file(path, max_bytes)
    except UnusableFile as err:
        stats.skip(err.reason, where, err.detail)
        return None
    except OSError as exc:
        stats.skip("unreadable_file", where, type(exc).__name__)
        return None
    detail = binary_detail(raw)
    if detail:
        stats.skip("binary_file", where, detail)
        return None
    text = decode_text(raw, where, stats)
    if not text.strip():
        stats.skip("empty_file", where)
        return None
    return text


def read_records(path: Path, stats: SkipStats) -> Iterator[tuple[str, Any]]:
    """Yield ``(where, record)`` from a ``.json`` file (a list, or one object) or a ``.jsonl`` file.

    A ``.json`` file that does not parse is skipped whole; in ``.jsonl`` only the bad lines are.
    """
    text = file_text(path, stats)
    if text is None:
        return
    path = Path(shown_path(path))  # "where" of every record: valid text even for a name that is not UTF-8
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                stats.skip("malformed_json", f"{path}:{number}", exc.msg)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        stats.skip("malformed_json", str(path), f"{exc.msg} at line {exc.lineno}")
        return
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        yield f"{path}[{index}]", item


def require(record: Any, fields: tuple[str, ...], where: str, stats: SkipStats) -> bool:
    """True when ``record`` is an object with every field present and non-null; otherwise counted."""
    if not isinstance(record, dict):
        stats.skip("not_an_object", where, type(record).__name__)
        return False
    missing = [name for name in fields if record.get(name) in (None, "")]
    if missing:
        stats.skip("missing_fields", where, ", ".join(missing))
        return False
    return True


def newest_versions(rows: list[dict], key: tuple[str, ...], stats: SkipStats) -> list[dict]:
    """One row per ``key``: the newest ``updated_at`` (ISO text or a datetime), the later row on a tie;
    first-seen order kept. Older versions are counted in ``stats.filtered["superseded"]``."""
    newest: dict[tuple, dict] = {}
    for row in rows:
        ident = tuple(row[k] for k in key)
        kept = newest.get(ident)
        if kept is None or str(row.get("updated_at") or "") >= str(kept.get("updated_at") or ""):
            newest[ident] = row
    stats.filtered["superseded"] += len(rows) - len(newest)
    return [row for row in rows if newest[tuple(row[k] for k in key)] is row]


# --- time -----------------------------------------------------------------------------------------------------

def to_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime, a date, an ISO string or epoch seconds; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), tz=timezone.utc)
        except ValueError:
            pass
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    else:
        # pendulum and other datetime-likes (dagster partition windows) are datetime subclasses; others are errors.
        raise TypeError(f"not a time: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_iso(value: Any) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` (GitHub's format, which sorts as text), or None."""
    moment = to_datetime(value)
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def named_source(name: str, resources: Any, stats: SkipStats):
    """A dlt source called ``name`` (also its config section, as when decorated in ``sources/<name>/``)
    over ``resources`` (one resource or a list), carrying ``stats`` as ``source.skipped``."""
    import dlt

    def resources_of_source():
        return resources

    source = dlt.source(resources_of_source, name=name, section=name, max_table_nesting=0)()
    source.skipped = stats
    return source
