"""What the docs source's parts share: its settings (from the environment), the packages to read,
and the shape of a ``pages`` row."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from reference_arch.common.settings import SAMPLES_DIR, source_enabled
from reference_arch.sources.export_files import existing_dir

DOCS_DIR_ENV = "REFERENCE_ARCH_DOCS_DIR"
PACKAGES_ENV = "REFERENCE_ARCH_DOCS_PACKAGES"
EXAMPLES_ENV = "REFERENCE_ARCH_DOCS_EXAMPLES"
MAX_CHARS_ENV = "REFERENCE_ARCH_DOCS_MAX_CHARS"
DEFAULT_MAX_CHARS = 800
BASE_URL_ENV = "REFERENCE_ARCH_DOCS_BASE_URL"
DEFAULT_PACKAGES = "pandas"
FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text"}
# Where a package's API reference lives online, by package: {name} is the dotted name.
API_URLS = {"pandas": "https://pandas.pydata.org/docs/reference/api/{name}.html"}
ROOT_FOLDER = "."

PAGE_COLUMNS = {
    "id": {"data_type": "text", "nullable": False},
    "partition": {"data_type": "text", "nullable": False},
    "kind": {"data_type": "text"},  # file | docstring
    "format": {"data_type": "text"},  # markdown | rst | text | docstring
    "title": {"data_type": "text"},
    "source": {"data_type": "text"},
    "url": {"data_type": "text"},
    "text": {"data_type": "text"},
    "created_at": {"data_type": "timestamp"},
    "updated_at": {"data_type": "timestamp"},
    "content_hash": {"data_type": "text"},  # a document's hash; a marker row's partition fingerprint
}
VANISHED = "vanished"  # the fingerprint of a partition whose folder is gone or that is no longer configured


@dataclass(frozen=True)
class PackageSpec:
    """A package whose public API's docstrings are documents; ``classes``, when given, are the only classes
    whose members get documents of their own."""

    name: str
    classes: tuple[str, ...] = field(default=())

    @property
    def partition(self) -> str:
        return f"package:{self.name}"


def parse_packages(value: str | None = None) -> list[PackageSpec]:
    """``"pandas:Series,DataFrame;numpy"`` -> specs; default from ``REFERENCE_ARCH_DOCS_PACKAGES``."""
    text = os.environ.get(PACKAGES_ENV, DEFAULT_PACKAGES) if value is None else value
    specs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, classes = part.partition(":")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name.strip()):
            raise ValueError(f"invalid package name {name!r} in {PACKAGES_ENV}={text!r}")
        specs.append(PackageSpec(name.strip(), tuple(c.strip() for c in classes.split(",") if c.strip())))
    return specs


def configured_packages() -> list[PackageSpec]:
    """The packages to index: ``REFERENCE_ARCH_DOCS_PACKAGES`` (default pandas), none when the ``packages``
    source is off (see ``settings.enabled_sources``)."""
    return parse_packages() if source_enabled("packages") else []


def default_docs_dir() -> Path:
    return Path(os.environ.get(DOCS_DIR_ENV) or SAMPLES_DIR / "docs")


def docs_dir(path: str | Path | None = None) -> Path:
    """The docs folder, or ``FileNotFoundError`` naming it and the variable that sets it."""
    return existing_dir(path or default_docs_dir(), "docs folder", DOCS_DIR_ENV)


def include_examples() -> bool:
    return os.environ.get(EXAMPLES_ENV, "0").lower() in ("1", "true", "yes")


def max_chars() -> int:
    value = os.environ.get(MAX_CHARS_ENV, str(DEFAULT_MAX_CHARS))
    try:
        return max(0, int(value))
    except ValueError:
        raise ValueError(f"{MAX_CHARS_ENV} must be a number of characters (0: no limit), not {value!r}") from None


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()



def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def page_row(doc_id, partition, kind, fmt, title, source, url, text, created_at, updated_at) -> dict:
    return {"id": doc_id, "partition": partition, "kind": kind, "format": fmt, "title": title, "source": source,
            "url": url, "text": text, "created_at": created_at, "updated_at": updated_at,
            "content_hash": sha256(f"{title}\n{text}")}
