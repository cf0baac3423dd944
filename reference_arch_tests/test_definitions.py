"""Every code location loads, validates, and keeps heavy libraries out of its import."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from reference_arch.common.settings import PROJECT_ROOT

LOCATIONS = ["prompt", "rag", "finetune", "pretrain"]
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
