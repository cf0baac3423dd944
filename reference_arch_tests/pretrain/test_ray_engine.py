"""The corpus on Ray Data (REFERENCE_ARCH_PRETRAIN_ENGINE=ray, pretrain/engine.py): a local Ray cluster of two
workers cleans and tokenizes the test corpus, and keeps the same files and counts the same tokens as the
local run of the same assets."""

from __future__ import annotations

import dagster as dg
import pytest

from reference_arch_tests.pretrain.conftest import materialize, metadata, run_config

ray = pytest.importorskip("ray", reason="ray is not installed: `make install` installs it (the dev extra)")


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)  # two workers on this machine
    yield
    ray.shutdown()


def _pretrain_data(instance, corpus_dir, engine: str, monkeypatch) -> dict:
    from reference_arch.pretrain import store
    from reference_arch.pretrain.defs.processing import SHARDS

    monkeypatch.setenv("REFERENCE_ARCH_PRETRAIN_ENGINE", engine)
    config = run_config(corpus_dir)
    cleaned = materialize(instance, ["raw_corpus", "clean_corpus", "tokenizer"], config)
    shards = {key: metadata(materialize(instance, ["token_shards"], config, partition=key), "token_shards")
              for key in SHARDS.get_partition_keys()[:3]}
    meta = metadata(cleaned, "clean_corpus")
    return {"engine": {meta["engine"].value, *(m["engine"].value for m in shards.values())},
            "kept": store.read_manifest("clean_corpus")["corpus_hash"],
            "removed": {k: v.value for k, v in meta.items() if k.startswith("removed/")},
            "tokens": {key: (m["files"].value, m["tokens"].value) for key, m in shards.items()}}


def test_ray_keeps_the_same_files_and_counts_the_same_tokens(ray_cluster, tmp_home, corpus_dir, monkeypatch):
    results = {}
    for engine in ("local", "ray"):
        with dg.instance_for_test() as instance:
            results[engine] = _pretrain_data(instance, corpus_dir, engine, monkeypatch)
    local, on_ray = results["local"], results["ray"]
    assert local["engine"] == {"local"} and on_ray["engine"] == {"ray"}
    assert on_ray["kept"] == local["kept"]  # the same files, in the same order (the corpus hash)
    assert on_ray["removed"] == local["removed"] and local["removed"]["removed/near_duplicate"] == 1
    assert on_ray["tokens"] == local["tokens"] and sum(t for _, t in local["tokens"].values()) > 0


RAY_ALONE = """
import ray
from reference_arch.pretrain.engine import map_rows
from reference_arch_tests.pretrain.test_ray_engine import doubled
print(map_rows(doubled, [{"x": i} for i in range(100)], where="ray")[-1], ray.is_initialized())
"""


def doubled(row: dict) -> dict:
    return {"x": 2 * row["x"]}


def test_a_cluster_started_for_a_step_ends_with_it_and_prints_nothing(tmp_path):
    """With no cluster running (no RAY_ADDRESS), the step starts one and shuts it down: its node agents outlived
    the step's process before, and Ray's INFO lines and token notice broke into the CLI's progress lines."""
    import subprocess
    import sys

    from reference_arch.common.settings import PROJECT_ROOT

    done = subprocess.run([sys.executable, "-c", RAY_ALONE], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "{'x': 198} False\n"
    assert done.stderr == ""
