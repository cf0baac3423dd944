"""The layers of the house, read from the source with ``ast`` (nothing is imported):

- a location (``reference_arch.{prompt,rag,finetune,pretrain}``) imports no sibling location;
- ``reference_arch.common`` and ``reference_arch.sources`` import no location, nor the command line;
- the product (``reference_arch``, its testkit included) imports neither the tests nor the benchmarks,
  and only tests and benchmarks import the testkit;
- the benchmarks import no test module;
- no circle among product modules: none at import time (module-level imports), and none through
  imports deferred into functions either (two modules that need each other are one module, or share
  a third).

Every import counts, absolute or relative, at module level or inside a function. Imports made by name at
run time (``importlib.import_module(f"...{location}...")``) are not seen. Each failure names file:line
and the import as written.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCATIONS = ("prompt", "rag", "finetune", "pretrain")
PRODUCT, TESTS, BENCH = "reference_arch", "reference_arch_tests", "bench"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported, resolved
    where: str  # file:line
    text: str  # the statement as written
    module_level: bool  # run when the importing module is imported (not inside a function)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root/package``."""
    names = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.Module):
    """(import node, module_level) for every import statement in ``tree``."""
    def walk(node, module_level):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                continue  # an expression holds no import statement
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, module_level
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # type-only imports never run: no circle, no layer pulled in at run time
            else:
                yield from walk(child, module_level)
    yield from walk(tree, True)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, root: Path, known: set[str]) -> list[Import]:
    """Every import in ``path``, resolved to module names (``from pkg import sub`` -> ``pkg.sub`` when it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node, module_level in _statements(tree):
        where = f"{path.relative_to(root)}:{node.lineno}"
        text = ast.unparse(node)
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = _base(module, path, node)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, where, text, module_level))
    return found


@functools.lru_cache
def all_imports(root: Path) -> list[Import]:
    modules = {name: path for package in (PRODUCT, BENCH) for name, path in module_names(root, package).items()}
    known = set(modules) | set(module_names(root, TESTS))
    return [imp for name, path in modules.items() for imp in imports_of(name, path, root, known)]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def location_of(module: str) -> str | None:
    return next((loc for loc in LOCATIONS if within(module, f"{PRODUCT}.{loc}")), None)


def failure(title: str, bad: list) -> str:
    return f"{title}:\n" + "\n".join(f"  {b}" for b in bad)


# -- the rules: each returns the offending imports ----------------------------------------------
def sibling_location_imports(imports: list[Import]) -> list[Import]:
    return [i for i in imports if location_of(i.source) and location_of(i.target)
            and location_of(i.source) != location_of(i.target)]


def shared_code_importing_upwards(imports: list[Import]) -> list[Import]:
    shared = (f"{PRODUCT}.common", f"{PRODUCT}.sources")
    return [i for i in imports if any(within(i.source, s) for s in shared)
            and (location_of(i.target) or within(i.target, f"{PRODUCT}.cli"))]


def product_importing_tests_or_bench(imports: list[Import]) -> list[Import]:
    return [i for i in imports if within(i.source, PRODUCT) and (within(i.target, TESTS) or within(i.target, BENCH))]


def product_importing_testkit(imports: list[Import]) -> list[Import]:
    testkit = f"{PRODUCT}.testkit"
    return [i for i in imports if within(i.target, testkit) and within(i.source, PRODUCT)
            and not within(i.source, testkit)]


def bench_importing_tests(imports: list[Import]) -> list[Import]:
    return [i for i in imports if within(i.source, BENCH) and within(i.target, TESTS)]


def import_circle(imports: list[Import]) -> list[Import]:
    """One circle among product modules through ``imports`` (as the edges that close it), or []."""
    graph: dict[str, list[Import]] = {}
    for i in imports:
        if within(i.source, PRODUCT) and within(i.target, PRODUCT) and i.source != i.target:
            graph.setdefault(i.source, []).append(i)
    state: dict[str, str] = {}  # "open" while on the path, "done" once every way out is searched
    path: list[Import] = []

    def search(module: str) -> list[Import]:
        state[module] = "open"
        for edge in graph.get(module, []):
            if state.get(edge.target) == "open":
                start = next(k for k, e in enumerate(path) if e.source == edge.target) if path else 0
                return path[start:] + [edge]
            if edge.target not in state:
                path.append(edge)
                if circle := search(edge.target):
                    return circle
                path.pop()
        state[module] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (circle := search(module)):
            return circle
    return []


def circle_message(circle: list[Import]) -> str:
    route = " -> ".join([circle[0].source] + [edge.target for edge in circle])
    return failure(f"import circle {route}", circle)


# -- the tests -----------------------------------------------------------------------------------
def test_the_resolver_sees_relative_deferred_and_submodule_imports(tmp_path):
    package = tmp_path / PRODUCT / "rag"
    package.mkdir(parents=True)
    for name in ("__init__.py", "../__init__.py", "chunking.py"):
        (package / name).write_text("")
    (package / "answers.py").write_text(
        "from . import chunking\nfrom ..common import settings\n"
        "def f():\n    from reference_arch.prompt.templates import render\n    import bench.run\n")
    found = {(i.target, i.module_level) for i in all_imports(tmp_path)}
    assert found == {("reference_arch.rag.chunking", True), ("reference_arch.common", True),
                     ("reference_arch.prompt.templates", False), ("bench.run", False)}


def test_the_circle_search_reports_the_whole_circle():
    edges = [Import(a, b, f"{a}.py:1", f"import {b}", True) for a, b in
             (("reference_arch.a", "reference_arch.b"), ("reference_arch.b", "reference_arch.c"),
              ("reference_arch.c", "reference_arch.a"), ("reference_arch.c", "reference_arch.d"))]
    assert [e.source for e in import_circle(edges)] == ["reference_arch.a", "reference_arch.b", "reference_arch.c"]
    assert import_circle(edges[1:]) == []


def test_no_location_imports_a_sibling_location():
    bad = sibling_location_imports(all_imports(ROOT))
    assert not bad, failure("a location imports a sibling location (share through common/ or the registry)", bad)


def test_common_and_sources_import_no_location_nor_the_cli():
    bad = shared_code_importing_upwards(all_imports(ROOT))
    assert not bad, failure("common/ or sources/ imports a location or the cli", bad)


def test_the_product_imports_neither_tests_nor_bench():
    bad = product_importing_tests_or_bench(all_imports(ROOT))
    assert not bad, failure("reference_arch imports reference_arch_tests or bench", bad)


def test_only_tests_and_bench_import_the_testkit():
    bad = product_importing_testkit(all_imports(ROOT))
    assert not bad, failure("product code imports reference_arch.testkit", bad)


def test_bench_imports_no_test_module():
    bad = bench_importing_tests(all_imports(ROOT))
    assert not bad, failure("bench imports reference_arch_tests (shared helpers live in reference_arch.testkit)", bad)


def test_no_import_circle_at_import_time():
    circle = import_circle([i for i in all_imports(ROOT) if i.module_level])
    assert not circle, circle_message(circle)


def test_no_import_circle_through_deferred_imports():
    circle = import_circle(all_imports(ROOT))
    assert not circle, circle_message(circle)


def _names(node: ast.AST) -> str:
    """``context.instance.get_records_for_run`` for an attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else ""


def test_no_asset_reads_its_own_runs_values_back_from_the_event_log():
    """A run's values flow forward as asset inputs (``common.questions.Question`` carries the question's model and
    policy; ``rag/retrieved_sources`` its mode and k): no product code asks the instance about ``context.run_id``,
    the run it is executing in. (Reading another run, such as the one a verdict names, is fine.)"""
    found = []
    for name, path in module_names(ROOT, PRODUCT).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            method = _names(node.func).removeprefix("context.instance.") if isinstance(node, ast.Call) else ""
            if (method.startswith(("get_", "fetch_", "all_logs", "logs_after")) and method != _names(node.func)
                    and any(_names(arg) == "context.run_id" for arg in [*node.args, *(k.value for k in node.keywords)])):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert not found, "reads its own run's values from the event log:\n" + "\n".join(found)
