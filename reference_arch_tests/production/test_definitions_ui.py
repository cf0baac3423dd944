"""What the UI shows about every asset, asserted on the loaded definitions of all four locations:
a description, the location's group and key prefix, kinds, owners and a link to the source.
Data-driven: it covers whatever assets the locations define, and fails for one that lacks these."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.common.locations import LOCATIONS, OWNERS
from reference_arch.common.pools import GPU_POOL
from reference_arch.common.settings import PROJECT_ROOT

CODE_REFERENCES = "dagster/code_references"


def location_defs(location: str) -> dg.Definitions:
    return importlib.import_module(f"reference_arch.{location}.definitions").defs


def defined_specs(defs: dg.Definitions) -> list[tuple[dg.AssetsDefinition | dg.AssetSpec, dg.AssetSpec]]:
    """(definition, spec) for every asset the location itself defines (not cross-location deps)."""
    found = []
    for item in defs.assets or []:
        if isinstance(item, dg.AssetSpec):
            found.append((item, item))
        elif isinstance(item, dg.AssetsDefinition):
            found.extend((item, spec) for spec in item.specs)
        else:  # SourceAsset and friends have no spec to show
            pytest.fail(f"{item!r}: define assets with @asset/@multi_asset or AssetSpec")
    return found


def problems_of(location: str, spec: dg.AssetSpec) -> list[str]:
    problems = []
    if spec.key.path[0] != location:
        problems.append(f"key not prefixed with {location!r}")
    if not (spec.description or "").strip():
        problems.append("no description")
    if spec.group_name != location:
        problems.append(f"group {spec.group_name!r}, not {location!r}")
    if not spec.kinds:
        problems.append("no kinds")
    if list(spec.owners) != OWNERS:
        problems.append(f"owners {list(spec.owners)}, not {OWNERS}")
    references = spec.metadata.get(CODE_REFERENCES)
    if not references or not references.code_references:
        problems.append("no code reference (build defs with location_definitions)")
    else:
        for reference in references.code_references:
            if isinstance(reference, dg.LocalFileCodeReference):
                path = Path(reference.file_path)
                if not path.is_file() or PROJECT_ROOT not in path.resolve().parents:
                    problems.append(f"code reference to {path}, not a file of the project")
    return problems


@pytest.mark.parametrize("location", LOCATIONS)
def test_every_asset_shows_what_the_ui_needs(location):
    specs = defined_specs(location_defs(location))
    problems = {spec.key.to_user_string(): p for _, spec in specs if (p := problems_of(location, spec))}
    assert not problems, f"{location}: {problems}"


@pytest.mark.parametrize("location", LOCATIONS)
def test_training_steps_hold_the_gpu_pool(location):
    """Every asset that runs the trainer holds the `gpu` pool, so two never share a device."""
    for definition, spec in defined_specs(location_defs(location)):
        if isinstance(definition, dg.AssetsDefinition) and "trainer" in definition.required_resource_keys:
            assert definition.op.pool == GPU_POOL, f"{spec.key.to_user_string()} runs the trainer without pool='gpu'"


POOLS_SCRIPT = """
import json
from reference_arch.finetune.definitions import defs as finetune
from reference_arch.rag.definitions import defs as rag
pools = {}
for defs in (finetune, rag):
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition) and item.is_executable:
            pools.update({key.to_user_string(): item.op.pool for key in item.keys})
    for checks in defs.asset_checks or []:
        pools.update({key.to_user_string(): checks.op.pool for key in checks.check_keys})
print(json.dumps(pools))
"""


@pytest.mark.parametrize("openai", [False, True])
def test_steps_that_send_work_to_openai_hold_the_openai_pool(openai):
    """The settings that send work to OpenAI (the fine-tuning backend, the embeddings provider) put those
    steps in the `openai` pool; LoRA and DPO keep the `gpu` pool, local embeddings need none."""
    import json
    import os
    import subprocess
    import sys

    from reference_arch.common.pools import OPENAI_POOL

    env = {k: v for k, v in os.environ.items()
           if k not in ("REFERENCE_ARCH_FINETUNE_BACKEND", "REFERENCE_ARCH_EMBEDDINGS_PROVIDER")}
    if openai:
        env.update(REFERENCE_ARCH_FINETUNE_BACKEND="openai", REFERENCE_ARCH_EMBEDDINGS_PROVIDER="openai")
    done = subprocess.run([sys.executable, "-c", "import dagster as dg" + POOLS_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pools = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"finetune/fine_tuned_model": OPENAI_POOL if openai else GPU_POOL,
                "finetune/fine_tuned_model:better_than_base": OPENAI_POOL if openai else None,
                "rag/embeddings": OPENAI_POOL if openai else None,
                "finetune/preference_tuned_model": GPU_POOL}  # DPO trains locally whatever the backend
    assert {key: pools[key] for key in expected} == expected
    assert {key: pool for key, pool in pools.items() if key not in expected and pool} == {}


def test_the_checker_catches_an_incomplete_asset():
    @dg.asset(key_prefix=["prompt"])
    def bare():
        return None

    problems = problems_of("prompt", next(iter(bare.specs)))
    assert {"no description", "no kinds"} <= set(problems) and any("group" in p for p in problems)
    assert any("code reference" in p for p in problems)


def test_question_jobs_follow_the_convention():
    """Each `*_question_job` starts at `<loc>/question` and ends at `<loc>/answer` (the CLI and the
    GraphQL client rely on both)."""
    found = 0
    for location in LOCATIONS:
        defs = location_defs(location)
        for job in defs.jobs or []:
            if not job.name.endswith("_question_job"):
                continue
            found += 1
            graph = defs.resolve_asset_graph()
            keys = {key for key in graph.get_all_asset_keys() if key.path[0] == location}
            assert dg.AssetKey([location, "question"]) in keys and dg.AssetKey([location, "answer"]) in keys
            # One process for the whole run: a synchronous answer should not pay a process per step.
            assert job.executor_def.name == "in_process", f"{job.name} runs on {job.executor_def.name}"
    assert found >= 1
