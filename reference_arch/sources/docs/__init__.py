"""Documentation as a dlt source: text files under a docs folder and docstrings of installed packages.

- **Files**: Markdown, reStructuredText and plain text under ``REFERENCE_ARCH_DOCS_DIR`` (default: the
  sample docs of the fictional *tidepool* project in ``reference_arch/samples/docs``). A document per
  file; ``source`` is its path relative to the folder.
- **Docstrings**: packages named in ``REFERENCE_ARCH_DOCS_PACKAGES`` (default ``pandas``): their public
  API as API reference tools list it (``api_objects``): every public module-level object of the package
  and of its public submodules (``numpy.linalg``, ``pandas.api.types``) -- functions, builtins, ufuncs,
  array-function dispatchers, classes -- and the public methods, properties and accessors of every public
  class. Which names are public comes from griffe (the extractor behind mkdocstrings); ``source`` is the
  dotted name (``pandas.DataFrame.set_index``). Objects that share one docstring (``numpy.ndarray.all``
  and ``numpy.matrix.all``, ``pathlib.Path.glob`` and ``pathlib.PosixPath.glob``) become one document
  that lists its other names. Several packages are separated by ``;`` (``pandas;numpy;pathlib``); a class
  list after a colon (``pandas:Series,DataFrame``) limits member documents to those classes. Embedding is
  the slow step of the whole pipeline (a few thousand tokens a second on a laptop CPU), so docstrings are
  capped by default: numpydoc ``Examples`` sections are left out (``REFERENCE_ARCH_DOCS_EXAMPLES=1``
  keeps them) and each docstring is cut after ``REFERENCE_ARCH_DOCS_MAX_CHARS`` characters (default 800:
  the summary and the first parameters; ``0`` keeps everything).

Documents are grouped in partitions: ``package:<name>`` per package and ``dir:<folder>`` per top-level
folder of the docs folder (``dir:.`` for the files at its root). One table, ``pages``, is loaded with
``delete-insert`` on the ``partition`` column: loading a partition replaces everything it held, so a
deleted file disappears from the table. Each loaded partition also gets a marker row (``kind`` =
``partition``) holding the partition's fingerprint as it was before reading: it makes an emptied
partition replace its old rows too, and lets a loader skip a partition whose content has not changed
since (``loaded_fingerprints``).

Unreadable and empty files are skipped, and so are what is not a page in a folder anyone can write to (a
FIFO or device named like a page, a name that is not UTF-8, a page over ``files.MAX_PAGE_BYTES``, binary
content); bytes that are not UTF-8 in a text page are replaced by U+FFFD (the page is kept). Each is counted
and named in ``source.skipped`` (a ``SkipStats``).

Parts: ``files`` (the docs folder), ``api`` (docstrings, through griffe), ``helpers`` (settings and the
``pages`` row); this module holds the partitions and the dlt source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from reference_arch.common.settings import source_enabled
from reference_arch.sources.docs.api import docstring_documents
from reference_arch.sources.docs.files import READ_RULES, file_hashes, file_partition, file_rows
from reference_arch.sources.docs.helpers import (PAGE_COLUMNS, VANISHED, PackageSpec, configured_packages, docs_dir,
                                                 include_examples, iso, max_chars, page_row, parse_packages, sha256)
from reference_arch.sources.export_files import SkipStats, named_source, repair_row

__all__ = ["VANISHED", "PackageSpec", "current_fingerprints", "docs_source", "docstring_documents", "file_partition",
           "loaded_fingerprints", "parse_packages", "partition_fingerprints"]


# Bumped when api.py lists different objects for the same package version, so an index built by the old
# reader reloads the partition (2: classes with an inherited docstring, such as the GroupBy classes).
API_READER_VERSION = 2


def package_fingerprint(spec: PackageSpec, examples: bool) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(spec.name.split(".")[0])
    except PackageNotFoundError:
        found = "not-installed"
    return (f"{spec.name}=={found};classes={','.join(spec.classes)};examples={int(examples)};max_chars={max_chars()}"
            f";reader={API_READER_VERSION}")


def partition_fingerprints(folder: str | Path | None = None, packages: Iterable[PackageSpec] | None = None,
                           examples: bool | None = None) -> dict[str, str]:
    """``{partition key: fingerprint}``: a fingerprint changes exactly when the partition's content does."""
    examples = include_examples() if examples is None else examples
    prints = {spec.partition: package_fingerprint(spec, examples)
              for spec in (configured_packages() if packages is None else packages)}
    by_folder: dict[str, list[str]] = {}
    files = file_hashes(folder) if folder is not None or source_enabled("docs") else {}
    for relative, digest in sorted(files.items()):
        by_folder.setdefault(file_partition(relative), []).append(f"{relative}={digest}")
    prints.update({key: sha256("\n".join([READ_RULES, *lines])) for key, lines in by_folder.items()})
    return prints


# -- the dlt source ---------------------------------------------------------------------------

def docs_source(partitions: Iterable[str] | None = None, folder: str | Path | None = None,
                packages: Iterable[PackageSpec] | str | None = None, examples: bool | None = None,
                stats: SkipStats | None = None):
    """The ``docs`` dlt source with one resource, ``pages``, over ``partitions`` (default: all of them).

    ``folder`` defaults to ``REFERENCE_ARCH_DOCS_DIR``, ``packages`` to ``REFERENCE_ARCH_DOCS_PACKAGES``,
    ``examples`` (keep numpydoc Examples sections) to ``REFERENCE_ARCH_DOCS_EXAMPLES``. A missing folder
    raises ``FileNotFoundError`` naming it; an unknown package, ``ValueError``.
    """
    import dlt

    specs = (configured_packages() if packages is None else parse_packages(packages) if isinstance(packages, str)
             else list(packages))
    examples = include_examples() if examples is None else examples
    stats = stats if stats is not None else SkipStats()
    folder_path = folder

    def wanted() -> list[str]:
        if partitions is not None:
            return list(partitions)
        return sorted(partition_fingerprints(folder_path, specs, examples))

    def pages():
        yield dlt.mark.materialize_table_schema()
        by_name = {spec.partition: spec for spec in specs}
        # Taken before reading: a file changed during the load shows as a change next time.
        prints = partition_fingerprints(folder_path, specs, examples)
        for partition in wanted():
            # Always a marker row: the partition is replaced even when it has no documents left.
            yield {**page_row(f"{partition}#partition", partition, "partition", "", "", "", "", "", iso(0), iso(0)),
                   "content_hash": prints.get(partition, VANISHED)}
            if partition not in prints:
                continue  # a folder that is gone, a package or source no longer configured: emptied
            if partition.startswith("package:"):
                spec = by_name.get(partition) or PackageSpec(partition.split(":", 1)[1])
                yield docstring_documents(spec, examples)
            elif partition.startswith("dir:"):
                yield list(file_rows(docs_dir(folder_path), partition, stats))
            else:
                raise ValueError(f"unknown docs partition {partition!r}: expected package:<name> or dir:<folder>")

    resource = dlt.resource(pages, name="pages", primary_key="id", merge_key="partition",
                            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                            columns=PAGE_COLUMNS)
    resource.add_map(lambda row: repair_row(row, "pages", ("id",), stats))  # docstrings may hold lone surrogates

    return named_source("docs", resource, stats)


def loaded_fingerprints(rows: Iterable[dict]) -> dict[str, str]:
    """``{partition: fingerprint}`` from the marker rows of a loaded ``pages`` table."""
    return {r["partition"]: r["content_hash"] for r in rows if r.get("kind") == "partition"}


def current_fingerprints(partitions: Iterable[str], folder: str | Path | None = None) -> dict[str, str]:
    """The fingerprints ``partitions`` would be loaded with now (``VANISHED`` for a folder that is gone)."""
    prints = partition_fingerprints(folder)
    return {p: prints.get(p, VANISHED) for p in partitions}
