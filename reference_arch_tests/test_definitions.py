"""Every code location loads, validates, and keeps heavy libraries out of its import."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from reference_arch.common.locations import LOCATIONS
from reference_arch.common.settings import PROJECT_ROOT

HEAVY = ["torch", "transformers", "datasets", "peft", "sentence_transformers", "lancedb", "weaviate",
         "langchain_openai", "langchain_text_splitters", "tokenizers", "datasketch"]


@pytest.mark.parametrize("location", LOCATIONS)
def test_location_loads(location):
    import dagster as dg

    defs = importlib.import_module(f"reference_arch.{location}.definitions").defs
    assert isinstance(defs, dg.Definitions)
    defs.resolve_asset_graph()


@pytest.mark.parametrize("location", LOCATIONS)
def test_location_import_does_not_load_heavy_libraries(location):
    code = (f"import sys, json; import reference_arch.{location}.definitions; "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_workspace_validates(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate",
                          "-w", "workspace.yaml"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    for location in LOCATIONS:
        assert f"Validation successful for code location {location}." in out.stdout


def test_workspace_lists_exactly_the_locations():
    """workspace.yaml (what `dagster dev` loads) and LOCATIONS (what the CLI materializes and the tests
    cover) name the same code locations, each loaded from its own definitions module."""
    import yaml

    entries = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    listed = sorted((e["python_module"]["location_name"], e["python_module"]["module_name"]) for e in entries)
    assert listed == sorted((name, f"reference_arch.{name}.definitions") for name in LOCATIONS)


def test_locations_are_in_dependency_order():
    """LOCATIONS is the order `materialize all` and the demo run in: an asset that reads another
    location's asset (the fine-tuning's pretrained model, the question jobs' registry models) comes after it."""
    order = {name: i for i, name in enumerate(LOCATIONS)}
    for location in LOCATIONS:
        graph = importlib.import_module(f"reference_arch.{location}.definitions").defs.resolve_asset_graph()
        read = {parent.path[0] for key in graph.get_all_asset_keys() for parent in graph.get(key).parent_keys}
        later = sorted(name for name in read & set(order) if order[name] > order[location])
        assert not later, f"{location} reads assets of {later}, which LOCATIONS runs after it"


def test_locations_load_without_a_warning():
    """What `dagster dev` prints on load is the user's first screen: no location may add a warning to it (a
    fresh interpreter, every warning an error)."""
    code = "; ".join(f"import reference_arch.{location}.definitions" for location in LOCATIONS)
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
