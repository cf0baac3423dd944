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
