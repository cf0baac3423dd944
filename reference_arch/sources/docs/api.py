"""Docstrings of an installed package as documents: its public API as API reference tools list it.

Which names are public comes from griffe (the extractor behind mkdocstrings); docstrings and signatures
come from the imported objects. A document per distinct docstring, named by its dotted name.
"""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

from reference_arch.sources.docs.helpers import API_URLS, PACKAGES_ENV, PackageSpec, iso, max_chars, page_row


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
    (``numpy.pi``) only repeats its type's. A class counts with an inherited docstring, as ``inspect.getdoc``
    and API reference tools give it: ``pandas.api.typing.DataFrameGroupBy`` sets ``__doc__`` to ``""``,
    and skipping it lost every GroupBy method."""
    if inspect.isclass(obj):
        return bool((inspect.getdoc(obj) or "").strip())
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return False
    return inspect.isroutine(obj) or doc is not getattr(type(obj), "__doc__", None)


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
            # A deprecated submodule (numpy.matlib) is still API, and importing it warns: by name, or through
            # a package's lazy __getattr__ (numpy's), so both stay inside one warnings filter.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = getattr(live, name, None)
                if obj is None and not member.is_alias and member.is_module:
                    try:
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
    stamp = iso(Path(module.__file__).stat().st_mtime) if getattr(module, "__file__", None) else iso(0)
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
        rows.append(page_row(f"docs:{dotted}", spec.partition, "docstring", "docstring", dotted, dotted,
                             url_template.format(name=dotted) if url_template else "", body, stamp, stamp))
    return rows
