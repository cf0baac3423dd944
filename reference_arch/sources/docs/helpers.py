"""What the docs source's parts share: its settings (``REFERENCE_ARCH_DOCS_DIR`` and the other docs ones, declared
in ``common/settings.py``), the packages to read, and the shape of a ``pages`` row."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from reference_arch.common import settings
from reference_arch.common.settings import SAMPLES_DIR, source_enabled
from reference_arch.sources.export_files import existing_dir

DOCS_DIR_ENV = "REFERENCE_ARCH_DOCS_DIR"  # named in messages
PACKAGES_ENV = "REFERENCE_ARCH_DOCS_PACKAGES"
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


def parse_packages(text: str | None = None) -> list[PackageSpec]:
    """``"pandas:Series,DataFrame;numpy"`` -> specs; default ``REFERENCE_ARCH_DOCS_PACKAGES``. ``SettingsError``
    (a ``ValueError``) names an invalid package name."""
    parsed = settings.value("docs_packages") if text is None else settings.parse("docs_packages", text)
    return [PackageSpec(name, classes) for name, classes in parsed]


def configured_packages() -> list[PackageSpec]:
    """The packages to index: ``REFERENCE_ARCH_DOCS_PACKAGES`` (default pandas), none when the ``packages``
    source is off (see ``settings.enabled_sources``)."""
    return parse_packages() if source_enabled("packages") else []


def default_docs_dir() -> Path:
    return Path(settings.value("docs_dir") or SAMPLES_DIR / "docs")


def docs_dir(path: str | Path | None = None) -> Path:
    """The docs folder, or ``FileNotFoundError`` naming it and the variable that sets it."""
    return existing_dir(path or default_docs_dir(), "docs folder", DOCS_DIR_ENV)


def include_examples() -> bool:
    return settings.value("docs_examples")


def max_chars() -> int:
    """Characters kept of each docstring (0: no limit)."""
    return settings.value("docs_max_chars")


def sha256(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()



def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def page_row(doc_id, partition, kind, fmt, title, source, url, text, created_at, updated_at) -> dict:
    return {"id": doc_id, "partition": partition, "kind": kind, "format": fmt, "title": title, "source": source,
            "url": url, "text": text, "created_at": created_at, "updated_at": updated_at,
            "content_hash": sha256(f"{title}\n{text}")}
