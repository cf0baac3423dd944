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

Unreadable and empty files are skipped, bytes that are not UTF-8 are replaced by U+FFFD (the page is
kept), and both are counted in ``source.skipped`` (a ``SkipStats``).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from reference_arch.sources.export_files import SkipStats, decode_text, existing_dir, repair_row
from reference_arch.common.settings import SAMPLES_DIR, source_enabled

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


# -- files ------------------------------------------------------------------------------------

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


def package_fingerprint(spec: PackageSpec, examples: bool) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(spec.name.split(".")[0])
    except PackageNotFoundError:
        found = "not-installed"
    return f"{spec.name}=={found};classes={','.join(spec.classes)};examples={int(examples)};max_chars={max_chars()}"


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
    prints.update({key: sha256("\n".join(lines)) for key, lines in by_folder.items()})
    return prints


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


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


def _file_rows(root: Path, partition: str, stats: SkipStats) -> Iterator[dict]:
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
        yield _row(f"docs:{relative}", partition, "file", fmt, title, relative,
                   base_url.rstrip("/") + "/" + relative if base_url else "", text, _iso(mtime), _iso(mtime))


def _row(doc_id, partition, kind, fmt, title, source, url, text, created_at, updated_at) -> dict:
    return {"id": doc_id, "partition": partition, "kind": kind, "format": fmt, "title": title, "source": source,
            "url": url, "text": text, "created_at": created_at, "updated_at": updated_at,
            "content_hash": sha256(f"{title}\n{text}")}


# -- docstrings -------------------------------------------------------------------------------

def _signature(obj: Any) -> str:
    """The call signature without type annotations or ``self`` (names and defaults are what readers need)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    parameters = [p.replace(annotation=inspect.Parameter.empty) for name, p in signature.parameters.items()
                  if name != "self"]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def _import(spec: PackageSpec):
    import importlib

    try:
        return importlib.import_module(spec.name)
    except ImportError as err:
        raise ValueError(f"package {spec.name!r} named in {PACKAGES_ENV} cannot be imported: {err}") from None


# Submodules no API reference lists: tests, test helpers and anything private.
_INTERNAL_PARTS = ("tests", "conftest")


def _api_tree(name: str):
    """The package as griffe sees it statically (what mkdocstrings renders): members, ``__all__``, bases.

    Private and test submodules are not parsed (half of pandas' source is its tests); aliases into them stay
    unresolved, which is fine: only names and public-ness come from here.
    """
    import griffe

    loader = griffe.GriffeLoader(store_source=False, allow_inspection=True)
    listed = loader.finder.submodules
    loader.finder.submodules = lambda module: [
        (parts, path) for parts, path in listed(module)
        if not any(part.startswith("_") or part in _INTERNAL_PARTS for part in parts)]
    try:
        tree = loader.load(name)
    except (ImportError, griffe.GriffeError) as err:
        raise ValueError(f"package {name!r} named in {PACKAGES_ENV} cannot be read: {err}") from None
    loader.resolve_aliases(implicit=False, external=None)
    return tree


def _public_names(node) -> list[str]:
    """Public members of a griffe module: griffe's ``is_public`` (listed in ``__all__`` when the module has one,
    else defined there without a leading underscore: a name it merely imports is not its API), plus what it
    re-exports with ``from x import *``, which ``pandas.api.types`` does without listing it in ``__all__``."""
    names = []
    for name, member in node.members.items():
        if name.startswith("_"):
            continue
        if member.is_alias and member.wildcard_imported:
            names.append(name)
            continue
        try:
            public = member.is_public
        except Exception:  # an alias griffe cannot resolve: public when ``__all__`` lists it
            public = node.exports is not None and name in node.exports
        if public:
            names.append(name)
    return sorted(names)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: set on every class made by a class statement


def _class_member_names(node, cls: type) -> list[str]:
    """Public members of a class, inherited ones included, from griffe. A compiled class (``numpy.ndarray``,
    ``pandas.Timestamp``) has no source: griffe sees only its stub, where overloaded methods such as
    ``ndarray.reshape`` go missing, or nothing behind an alias into a private module; its members come
    from ``dir()``."""
    names = None
    if cls.__flags__ & _HEAPTYPE:
        try:
            names = list((node.final_target if node.is_alias else node).all_members)
        except Exception:  # griffe cannot resolve it (an alias into a module it did not parse)
            names = None
    return sorted(n for n in (dir(cls) if names is None else names) if not n.startswith("_"))


def _documented(obj: Any) -> bool:
    """Whether ``obj`` carries its own docstring: a routine, class, property or ufunc does; a data value
    (``numpy.pi``) only repeats its type's."""
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return False
    return inspect.isclass(obj) or inspect.isroutine(obj) or doc is not getattr(type(obj), "__doc__", None)


def _members(dotted: str, cls: type, names: Iterable[str]) -> Iterator[tuple[str, Any]]:
    for name in names:
        try:
            obj = getattr(cls, name)
        except Exception:  # a descriptor that fails on the class itself
            continue
        if _documented(obj):
            yield f"{dotted}.{name}", obj


def api_objects(spec: PackageSpec) -> Iterator[tuple[str, Any]]:
    """``(dotted name, object)`` for the package's public API, as API reference tools list it.

    The package and each public submodule (``numpy.linalg``, ``pandas.api.types``), breadth first: every
    public module-level object with its own docstring (functions, builtins, ufuncs, array-function
    dispatchers, classes), then each public class's public methods, properties and accessors, inherited ones
    included (and the members of accessor classes: ``pandas.Series.str.contains``). ``spec.classes``, when
    given, limits member listing to those classes. Which names are public comes from griffe; docstrings and
    signatures come from the imported objects, because many exist only at run time (ufuncs are compiled,
    pandas fills its docstrings in with decorators).
    """
    import importlib

    module = _import(spec)
    tree = _api_tree(spec.name)
    for class_name in spec.classes:
        if not inspect.isclass(getattr(module, class_name, None)):
            raise ValueError(f"{spec.name}.{class_name} (named in {PACKAGES_ENV}) is not a class")
    seen: set[int] = set()
    queue = [(spec.name, tree, module)]
    while queue:
        prefix, node, live = queue.pop(0)
        for name in _public_names(node):
            dotted, member = f"{prefix}.{name}", node.members[name]
            obj = getattr(live, name, None)
            if obj is None and not member.is_alias and member.is_module:
                try:
                    with warnings.catch_warnings():  # a deprecated submodule (numpy.matlib) is still API
                        warnings.simplefilter("ignore")
                        obj = importlib.import_module(dotted)
                except Exception:  # an optional dependency missing: that submodule is not part of this install
                    continue
            if inspect.ismodule(obj):
                # A submodule is API when ``__all__`` lists it (griffe counts every unprefixed one: pandas.core)
                exported = node.exports is None or name in node.exports
                if exported and id(obj) not in seen and not member.is_alias and obj.__name__ == dotted:
                    seen.add(id(obj))
                    queue.append((dotted, member, obj))
                continue
            if not _documented(obj):
                continue
            yield dotted, obj
            listed = not spec.classes or (prefix == spec.name and name in spec.classes)
            if not inspect.isclass(obj) or id(obj) in seen or not listed:
                continue
            seen.add(id(obj))
            for member_name, member_obj in _members(dotted, obj, _class_member_names(member, obj)):
                yield member_name, member_obj
                if inspect.isclass(member_obj) and member_obj is not obj:  # an accessor: Series.str, DataFrame.plot
                    yield from _members(member_name, member_obj, sorted(n for n in dir(member_obj)
                                                                        if not n.startswith("_")))


def _defined_at(dotted: str, obj: Any) -> bool:
    """Whether ``dotted`` names ``obj`` where it is defined (``...Index.argsort`` for ``Index.argsort``)."""
    qualname = getattr(getattr(obj, "fget", obj), "__qualname__", None)
    return isinstance(qualname, str) and (dotted == qualname or dotted.endswith("." + qualname))


def _strip_examples(doc: str) -> str:
    """numpydoc's ``Examples`` section is long and code-only; without it a docstring is about half as long."""
    return re.split(r"\n(?:Examples|Example)\n-{3,}\n", doc)[0].rstrip()


def _cap(text: str, limit: int) -> str:
    if not limit or len(text) <= limit:
        return text
    return text[:limit].rsplit("\n", 1)[0].rstrip() + "\n[...]"


def docstring_documents(spec: PackageSpec, examples: bool = False, limit: int | None = None) -> list[dict]:
    """One document per distinct docstring of the package's API (see the module docstring)."""
    module = _import(spec)
    stamp = _iso(Path(module.__file__).stat().st_mtime) if getattr(module, "__file__", None) else _iso(0)
    url_template = API_URLS.get(spec.name.split(".")[0], "")
    limit = max_chars() if limit is None else limit
    by_doc: dict[str, list[tuple[str, Any]]] = {}
    for dotted, obj in api_objects(spec):
        doc = inspect.getdoc(obj)
        if doc and doc.strip():
            by_doc.setdefault(doc.strip(), []).append((dotted, obj))
    rows = []
    for doc, owners in by_doc.items():
        # Named after the class that defines it (pandas.Index.argsort, not CategoricalIndex.argsort, which
        # inherits it and sorts first); else the shortest name (numpy.exp, not numpy.ma.exp); stable otherwise.
        owners.sort(key=lambda owner: (not _defined_at(*owner), len(owner[0])))
        dotted, obj = owners[0]
        text = _cap(doc if examples else _strip_examples(doc), limit)
        body = f"{dotted}{_signature(obj)}\n\n{text}"
        if len(owners) > 1:
            body += "\n\nAlso documented as: " + ", ".join(name for name, _ in owners[1:])
        rows.append(_row(f"docs:{dotted}", spec.partition, "docstring", "docstring", dotted, dotted,
                         url_template.format(name=dotted) if url_template else "", body, stamp, stamp))
    return rows


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
            yield {**_row(f"{partition}#partition", partition, "partition", "", "", "", "", "", _iso(0), _iso(0)),
                   "content_hash": prints.get(partition, VANISHED)}
            if partition not in prints:
                continue  # a folder that is gone, a package or source no longer configured: emptied
            if partition.startswith("package:"):
                spec = by_name.get(partition) or PackageSpec(partition.split(":", 1)[1])
                yield docstring_documents(spec, examples)
            elif partition.startswith("dir:"):
                yield list(_file_rows(docs_dir(folder_path), partition, stats))
            else:
                raise ValueError(f"unknown docs partition {partition!r}: expected package:<name> or dir:<folder>")

    resource = dlt.resource(pages, name="pages", primary_key="id", merge_key="partition",
                            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                            columns=PAGE_COLUMNS)
    resource.add_map(lambda row: repair_row(row, "pages", ("id",), stats))  # docstrings may hold lone surrogates

    @dlt.source(name="docs", max_table_nesting=0)
    def docs():
        return resource

    source = docs()
    source.skipped = stats
    return source


def loaded_fingerprints(rows: Iterable[dict]) -> dict[str, str]:
    """``{partition: fingerprint}`` from the marker rows of a loaded ``pages`` table."""
    return {r["partition"]: r["content_hash"] for r in rows if r.get("kind") == "partition"}


def current_fingerprints(partitions: Iterable[str], folder: str | Path | None = None) -> dict[str, str]:
    """The fingerprints ``partitions`` would be loaded with now (``VANISHED`` for a folder that is gone)."""
    prints = partition_fingerprints(folder)
    return {p: prints.get(p, VANISHED) for p in partitions}
