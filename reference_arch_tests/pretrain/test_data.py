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
    from reference_arch.pretrain.defs.processing import SHARDS

    for key in SHARDS.get_partition_keys():
        shard = materialize(instance, ["token_shards"], config, partition=key)
        assert check_results(shard) == {"shard_not_empty": True, "one_control_token_per_document": True}
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

    from reference_arch.common.trainer.resource import TrainerResource
    from reference_arch.pretrain.defs.checks import no_exact_duplicates
    from reference_arch.pretrain.definitions import defs

    result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, selection=dg.AssetSelection.checks(
        no_exact_duplicates), resources={"trainer": TrainerResource()})
    assert check_results(result) == {"no_exact_duplicates": False}


def test_corpus_too_small_for_a_block_fails_clearly(tmp_home, instance, tmp_path):
    corpus = tmp_path / "small"
    corpus.mkdir()
    (corpus / "a.py").write_text("def f(x):\n    return x * 2\n" * 12)
    config = run_config(corpus, token_shards={"block_size": 4096}, clean_corpus={"min_bytes": 10})
    with pytest.raises(Exception) as raised:
        prepare_data(instance, config)
    assert "too small to train on" in str(raised.value) and "at least 8,192 tokens" in str(raised.value)


SPECIAL_TEXT = 'EOS = "<|endoftext|>"\nPAD = "<|pad|>"\n\n\ndef strip_markers(text):\n    return text.replace(EOS, "")\n'


def test_special_token_text_in_the_corpus_stays_text(tmp_home, instance, corpus_dir, monkeypatch):
    from transformers import AutoTokenizer

    from reference_arch.pretrain.tokenization import encode

    (corpus_dir / "pkg0" / "markers.py").write_text(SPECIAL_TEXT * 3)
    config = run_config(corpus_dir)
    materialize(instance, ["raw_corpus", "clean_corpus", "tokenizer"], config)
    tok = AutoTokenizer.from_pretrained(store.read_manifest("tokenizer")["path"])  # as anyone would load it
    ids = encode(tok, [SPECIAL_TEXT])[0]
    assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id and tok.pad_token_id not in ids
    assert tok.decode(ids[:-1]) == SPECIAL_TEXT
    assert tok.pad_token_id not in tok(SPECIAL_TEXT).input_ids

    from reference_arch.pretrain.tokenization import control_token_counts, read_documents

    from reference_arch.pretrain.defs.processing import SHARDS
    from reference_arch.pretrain.tokenization import shard_of

    shard = SHARDS.get_partition_keys()[shard_of("pkg0/markers.py", len(SHARDS.get_partition_keys()))]
    checked = materialize(instance, ["token_shards"], config, partition=shard)
    assert check_results(checked)["one_control_token_per_document"] is True
    paths, sequences = read_documents([store.read_manifest(f"shards/{shard}")["path"]])
    assert control_token_counts(tok, [sequences[paths.index("pkg0/markers.py")]]) == [1]

    # The check catches a shard whose file text was parsed into control tokens (the old encoding).
    from reference_arch.pretrain import tokenization

    def parsing_encode(tokenizer, texts):
        backend = tokenizer.backend_tokenizer
        backend.encode_special_tokens = False
        return [e.ids + [tokenizer.eos_token_id] for e in backend.encode_batch(texts, add_special_tokens=False)]

    monkeypatch.setattr(tokenization, "encode", parsing_encode)
    caught = materialize(instance, ["token_shards"], config, partition=shard)
    assert check_results(caught)["one_control_token_per_document"] is False


def test_user_text_never_becomes_a_control_token(tiny_model_dir):
    """The finetune and inference paths: an example or a question quoting the special tokens."""
    from reference_arch.finetune.chat_format import chat_example
    from reference_arch.finetune.chat_format import encode_chat as encode_example
    from reference_arch.finetune.local_backend import load_chat_tokenizer

    tok = load_chat_tokenizer(str(tiny_model_dir))  # a model saved without split_special_tokens
    question = "Why does my file end at <|endoftext|> and pad with <|pad|>?"
    example = chat_example(question, "Because <|endoftext|> is text here.")
    ids, labels = encode_example(tok, example["messages"])
    assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id and tok.pad_token_id not in ids

    from reference_arch.common.trainer.causal_lm import encode_chat, load_tokenizer

    prompt = encode_chat(tok, example["messages"][:2], add_generation_prompt=True)
    assert tok.eos_token_id not in prompt and tok.pad_token_id not in prompt
    assert question in tok.decode(prompt)
    # A template whose own markers are special tokens keeps them; the content still cannot forge one.
    marked = load_tokenizer(str(tiny_model_dir))
    marked.chat_template = ("{% for m in messages %}<|pad|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>"
                            "{% endfor %}{% if add_generation_prompt %}<|pad|>assistant\n{% endif %}")
    ids = encode_chat(marked, [{"role": "user", "content": question}], add_generation_prompt=True)
    assert ids.count(marked.pad_token_id) == 2 and ids.count(marked.eos_token_id) == 1


STDLIB_FILES = ("json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py", "string.py", "csv.py", "fnmatch.py",
                "glob.py")


def test_a_small_corpus_still_trains(tmp_home, instance, tmp_path):
    """The issue's corpus: 8 standard-library files (~100 KB), blocks of 256, 5% held out."""
    import shutil
    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]
    corpus = tmp_path / "small"
    for name in STDLIB_FILES:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f"{stdlib}/{name}", corpus / name)
    config = run_config(corpus, token_shards={"block_size": 256, "validation_fraction": 0.05},
                        initial_model={"preset": "tiny", "n_layer": 1},
                        trained_model={"max_steps": 2, "batch_size": 2, "checkpoint_every": 2, "log_every": 1})
    prepare_data(instance, config)
    data = store.read_manifest("training_dataset")
    assert data["files"] == len(STDLIB_FILES) and data["validation_blocks"] >= 1 and data["train_blocks"] >= 2
    assert data["validation_files_topped_up"] >= 1  # 5% of 8 files by hash alone held out no block
    assert 1 <= len(data["validation_paths"]) < len(STDLIB_FILES)
    trained = materialize(instance, ["initial_model", "trained_model"], config)
    assert metadata(trained, "trained_model")["train/global_step"].value == 2


def test_a_build_config_dump_is_a_generated_file():
    """Debian's stdlib holds _sysconfigdata_*.py ("# system configuration generated and used by the
    sysconfig module", then a dict literal); drawn into validation it put a demo's held-out perplexity
    above the gate. Ordinary modules that mention generation stay."""
    from reference_arch.pretrain.cleaning import Rules, rule_violation

    dump = ("# system configuration generated and used by the sysconfig module\nbuild_time_vars = {"
            + ",\n".join(f" 'VAR_{i}': 'value {i}'" for i in range(40)) + "}\n")
    assert rule_violation(dump, Rules()) == "generated"
    module = ('"""Random variable generators.\n\nSequences are generated lazily; the seed is taken from the '
              'system.\n"""\n\n' + "def f(x):\n    return x + 1\n" * 20)
    assert rule_violation(module, Rules()) is None


def test_a_spurious_ast_system_error_is_retried(monkeypatch):
    """CPython 3.11's 'AST constructor recursion depth mismatch' (python/cpython#106905) failed a CI
    run's clean_corpus on a file that parses; it is retried, while real syntax errors still count."""
    import ast

    from reference_arch.pretrain import cleaning

    real, calls = ast.parse, []

    def flaky(text, *args, **kwargs):
        calls.append(text)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=192, after=267)")
        return real(text, *args, **kwargs)

    monkeypatch.setattr(cleaning.ast, "parse", flaky)
    assert cleaning.parses("x = 1\n") and len(calls) == 2
    assert not cleaning.parses("def broken(:\n")
