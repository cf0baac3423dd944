"""Cleaning, tokenizer, shards and the training dataset on the tiny corpus, with their checks."""

from __future__ import annotations

import datasets
import pytest

from reference_arch.pretrain import store
from reference_arch.pretrain.cleaning import Rules, clean, rule_violation
from reference_arch.pretrain.corpus import scan_directory
from reference_arch.pretrain.tokenization import is_validation, pack, shard_of, train_tokenizer
from reference_arch_tests.pretrain.conftest import metadata, check_results, materialize, prepare_data, run_config, write_corpus


def test_clean_removes_each_kind_and_keeps_the_first(tmp_path):
    planted = write_corpus(tmp_path / "c")
    files = scan_directory(tmp_path / "c", max_file_bytes=50_000).files
    kept, removed, counts = clean(files, Rules())
    for reason in ("exact_duplicate", "near_duplicate", "not_python", "generated", "minified", "too_short"):
        assert counts[reason] == planted[reason], reason
    assert len(kept) == planted["good"]
    by_path = {r["path"]: r for r in removed}
    # Paths sort "copies/" before "pkg0/": the copies are kept first, the originals are the duplicates.
    assert by_path["pkg0/mod_000.py"]["reason"] == "exact_duplicate"
    assert by_path["pkg1/mod_001.py"]["reason"] == "near_duplicate"
    assert clean(files, Rules()) == (kept, removed, counts)  # deterministic


def test_rules_are_configurable():
    text = "def f(x):\n    return x\n" * 20
    assert rule_violation(text, Rules()) is None
    assert rule_violation(text, Rules(max_bytes=100)) == "too_long"
    assert rule_violation(text, Rules(min_bytes=10_000)) == "too_short"


def test_tokenizer_round_trips_with_distinct_special_tokens():
    texts = ["def f(x):\n    return x + 1\n", "class A:\n\tpass  # tab, trailing spaces   \n", "s = 'caf\u00e9 \u2603'\n"]
    tok = train_tokenizer(texts * 5, vocab_size=300, min_frequency=1)
    assert tok.eos_token_id != tok.pad_token_id
    for text in texts:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_stable_assignment_and_packing():
    assert shard_of("a/b.py", 8) == shard_of("a/b.py", 8)
    assert len({shard_of(f"m{i}.py", 8) for i in range(200)}) == 8
    share = sum(is_validation(f"m{i}.py", 0.2) for i in range(2000)) / 2000
    assert 0.15 < share < 0.25
    blocks, dropped = pack([[1, 2, 3], [4, 5, 6, 7]], 3)
    assert blocks.tolist() == [[1, 2, 3], [4, 5, 6]] and dropped == 1


def test_data_pipeline_and_checks(tmp_home, instance, corpus_dir):
    config = run_config(corpus_dir)
    first = materialize(instance, ["raw_corpus", "clean_corpus", "tokenizer"], config)
    checks = check_results(first)
    assert checks == {"no_exact_duplicates": True, "near_duplicate_rate": True, "all_files_parse": True,
                      "tokenizer_round_trips": True}
    meta = metadata(first, "clean_corpus")
    assert meta["removed/exact_duplicate"].value == 1 and meta["removed/near_duplicate"].value == 1
    from reference_arch.pretrain.data_assets import SHARDS

    for key in SHARDS.get_partition_keys():
        shard = materialize(instance, ["token_shards"], config, partition=key)
        assert check_results(shard) == {"shard_not_empty": True}
    last = materialize(instance, ["training_dataset"], config)
    assert check_results(last) == {"token_counts_add_up": True}
    manifest = store.read_manifest("training_dataset")
    train = datasets.load_from_disk(manifest["train_path"])
    validation = datasets.load_from_disk(manifest["validation_path"])
    assert train.column_names == ["input_ids"] and len(train[0]["input_ids"]) == 32
    assert len(train) == manifest["train_blocks"] > 0 and len(validation) == manifest["validation_blocks"] > 0
    # The split is by file: no validation file contributed to a training shard's train side.
    clean_files = store.read_manifest("clean_corpus")["files"]
    assert 0 < len(manifest["validation_paths"]) < clean_files


def test_check_catches_a_duplicate_left_behind(tmp_home, instance, corpus_dir):
    config = run_config(corpus_dir)
    materialize(instance, ["raw_corpus", "clean_corpus"], config)
    from reference_arch.pretrain.corpus import read_parquet, write_parquet

    clean_path = store.path("corpus") / "clean.parquet"
    files = read_parquet(clean_path)
    write_parquet(files + [dict(files[0], path="zz/copy.py")], clean_path)  # tamper: a duplicate slips in
    import dagster as dg

    from reference_arch.common.trainer import TrainerResource
    from reference_arch.pretrain.checks import CHECKS, no_exact_duplicates
    from reference_arch.pretrain.definitions import ASSETS

    result = dg.materialize([*ASSETS, *CHECKS], instance=instance, selection=dg.AssetSelection.checks(
        no_exact_duplicates), resources={"trainer": TrainerResource()})
    assert check_results(result) == {"no_exact_duplicates": False}


def test_corpus_too_small_for_a_block_fails_clearly(tmp_home, instance, tmp_path):
    corpus = tmp_path / "small"
    corpus.mkdir()
    (corpus / "a.py").write_text("def f(x):\n    return x * 2\n" * 12)
    config = run_config(corpus, token_shards={"block_size": 4096}, clean_corpus={"min_bytes": 10})
    with pytest.raises(Exception) as raised:
        prepare_data(instance, config)
    assert "too small for one training block" in str(raised.value)
