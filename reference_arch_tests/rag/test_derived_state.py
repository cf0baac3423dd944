"""Derived state heals, the source of truth does not get replaced: truncated files under the home.

The embedding cache, the chunks file and the LanceDB table are derived from the warehouse: when one
cannot be read, ``materialize rag`` rebuilds it (a warning, a count in metadata), and until then
``ask rag`` fails with one line naming the table and the fix. A truncated DuckDB warehouse fails
with one line naming the file, and is left as it was."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.testkit.tiny_model import TINY_LLM
from reference_arch_tests.rag.conftest import checks_passed, metadata, run_ingestion, run_processing


def truncate(path: str | Path, keep: float = 0.5) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))


def retrieve(instance, question: str = "Which option changes the chart colours?"):
    from reference_arch.common.questions import question_run_config
    from reference_arch.rag.defs import inference
    from reference_arch_tests.rag.conftest import resources

    return dg.materialize([inference.question, inference.retrieved_sources], instance=instance, resources=resources(),
                          run_config=question_run_config("rag", question), raise_on_error=False)


def failure_message(result) -> str:
    event = next(e for e in result.all_events if e.is_step_failure)
    return event.step_failure_data.user_failure_data.description if event.step_failure_data.user_failure_data \
        else event.step_failure_data.error.message


def test_truncated_cache_chunks_and_index_are_rebuilt(rag_data, instance):
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.rag.embedding_cache import cache_path
    from reference_arch.rag.defs.processing import chunks_path

    run_ingestion(instance)
    first = run_processing(instance)
    assert first.success
    rows = metadata(first, "vector_index")["rows"]
    lance = glob.glob(str(Path(os.environ["REFERENCE_ARCH_HOME"]) / "lancedb" / "*.lance" / "data" / "*.lance"))
    assert lance
    for data_file in lance:
        truncate(data_file)

    # Until re-materialized, a question fails in one line naming the table and the fix.
    broken = retrieve(instance)
    assert not broken.success
    message = failure_message(broken)
    assert "LanceDB table chunks " in message and "re-materialize rag/vector_index" in message
    assert len(message.splitlines()) == 1 and "/rustc/" not in message and ".cargo" not in message

    truncate(cache_path(EmbeddingsResource(provider="local").model_label()))
    truncate(chunks_path())
    healed = run_processing(instance)
    assert healed.success
    assert metadata(healed, "chunks")["previous_unreadable"] == 1
    assert metadata(healed, "embeddings")["cache_rebuilt"] == 1
    assert metadata(healed, "embeddings")["embedded"] == metadata(healed, "embeddings")["chunks"] > 0
    index = metadata(healed, "vector_index")
    assert index["index_rebuilt"] == 1 and index["rows"] == rows
    assert all(checks_passed(healed).values())
    warnings = [e.message for e in instance.all_logs(healed.run_id) if e.level == 30]  # logging.WARNING
    assert any("rebuilding" in w for w in warnings)

    again = run_processing(instance)  # healed for good: nothing left to rebuild
    assert metadata(again, "embeddings")["cache_rebuilt"] == 0 and metadata(again, "vector_index")["index_rebuilt"] == 0
    assert retrieve(instance).success


def zero_second_half(path: str | Path) -> None:
    """The file's second half overwritten with zeros, its length kept: it opens, and passes the length check,
    and a block's checksum fails when a run reads it (as a truncated file that DuckDB wrote past)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(bytes(size - size // 2))


def test_truncated_warehouse_is_named_and_never_replaced(rag_data, instance):
    """22.5: a truncated warehouse failed every `materialize rag` with dlt's "Corrupt database file: computed
    checksum ...": now every ingestion and the documents fail in one line naming the file, the damage and the
    way out with its command; the file is left as it was, and the command's way out works."""
    import subprocess

    from reference_arch.cli.runs import first_failure
    from reference_arch.rag.warehouse import warehouse_path

    run_ingestion(instance)
    assert run_processing(instance).success
    documents = len(processing_documents())
    truncate(warehouse_path(), 0.5)
    damaged = Path(warehouse_path()).read_bytes()
    runs = every_rag_run(instance)  # reading it fails the same way as loading
    lines = [first_failure(run) for run in runs]
    assert not any(run.success for run in runs)
    for line in lines:
        message = line.split(": ", 1)[1]  # after the step's name
        assert message.startswith(f"the warehouse {warehouse_path()} is damaged (truncated: "), line
        assert "restore it from a backup" in message and "\n" not in message and "_duckdb" not in message
    assert Path(warehouse_path()).read_bytes() == damaged  # never silently replaced

    # the way out, as the line gives it: set the file and the rag pipelines' state aside, ingest again
    command = lines[0].split("`")[1]
    setting_aside, again = command.split(" && reference-arch ")
    assert again == "materialize rag"
    subprocess.run(["bash", "-c", setting_aside], check=True)
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success and run_processing(instance).success
    assert len(processing_documents()) == documents
    assert (Path(os.environ["REFERENCE_ARCH_HOME"]) / "damaged-warehouse" / "warehouse.duckdb").read_bytes() == damaged


def test_a_damaged_block_found_mid_run_is_the_same_line(rag_data, instance):
    """A file of the right length whose blocks fail their checksum when read: DuckDB's error surfaced from
    inside dlt (loads) and the documents' read as a traceback's last line; now it is the same one line."""
    from reference_arch.cli.runs import first_failure
    from reference_arch.rag.warehouse import warehouse_path

    run_ingestion(instance)
    zero_second_half(warehouse_path())
    failed = [run for run in every_rag_run(instance) if not run.success]
    assert failed  # which runs touch a zeroed block depends on where DuckDB put each table
    for run in failed:
        line = first_failure(run)
        assert f"the warehouse {warehouse_path()} is damaged (Corrupt database file: computed checksum" in line, line
        assert line.endswith("reference-arch materialize rag`"), line


def every_rag_run(instance) -> list:
    """Each ingestion (GitHub, Slack, every docs partition) and the processing, as `materialize rag` runs them."""
    from reference_arch.rag.defs import ingestion
    from reference_arch_tests.rag.conftest import DAY1, DAY2, range_tags

    keys = sorted(instance.get_dynamic_partitions("rag_docs"))
    runs = [dg.materialize([assets], instance=instance, tags=range_tags(*days), raise_on_error=False)
            for assets, days in ((ingestion.github_assets, (DAY1, DAY2)), (ingestion.slack_assets, (DAY1, DAY2)),
                                 (ingestion.docs_assets, (keys[0], keys[-1])))]
    return [*runs, run_processing(instance, raise_on_error=False)]


def processing_documents() -> list[dict]:
    from reference_arch.rag.defs import processing

    return processing.read_rows(processing.documents_path())


def test_unreadable_response_cache_starts_afresh(registry_with_tiny_model):
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch.common.settings import home_path

    first = LLMResource(model=TINY_LLM)
    answer = first.generate([("user", "cache me")])
    truncate(home_path("cache") / "llm.sqlite", 0.3)
    second = LLMResource(model=TINY_LLM)
    assert second.generate([("user", "cache me")]) == answer  # recomputed, not a crash
    assert second.usage_metadata()["llm/cache_rebuilt"] == 1
    third = LLMResource(model=TINY_LLM)
    assert third.generate([("user", "cache me")]) == answer and third.usage()["cache_hits"] == 1


def test_damaged_registry_card_is_skipped_or_named(registry_with_tiny_model, tiny_model_dir):
    import pytest

    from reference_arch.common.registry import ModelNotFoundError

    registry = registry_with_tiny_model
    registry.publish("tiny-lm", tiny_model_dir, {"kind": "test"})
    truncate(registry.root / "tiny-lm" / "2" / "card.json", 0.3)
    assert registry.latest().spec == "registry:tiny-lm@1"  # the newest readable version
    with pytest.raises(ModelNotFoundError, match=r"version 2 is damaged: .*card.json cannot be read"):
        registry.get("tiny-lm", 2)


def test_unreadable_pretrain_manifest_names_the_asset(tmp_home):
    import pytest

    from reference_arch.pretrain.store import manifest_path, read_manifest, write_manifest

    write_manifest("tokenizer", {"vocab_size": 512})
    truncate(manifest_path("tokenizer"), 0.5)
    with pytest.raises(dg.Failure, match=r"tokenizer.json cannot be read .*re-materialize pretrain/tokenizer"):
        read_manifest("tokenizer")


@pytest.mark.parametrize("message, damaged", [
    ('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in python (PID 7)', False),
    ("IO Error: Corrupt database file: computed checksum 1 does not match stored checksum 2 in block at location "
     "12288", True),  # "block" holds "lock": it was taken for a lock, and the damage check skipped
])
def test_only_duckdbs_lock_error_is_taken_for_a_lock(message, damaged, tmp_home, monkeypatch):
    import duckdb

    from reference_arch.rag import warehouse

    Path(warehouse.warehouse_path()).parent.mkdir(parents=True, exist_ok=True)
    Path(warehouse.warehouse_path()).write_bytes(b"")

    def refuse(*args, **kwargs):
        raise duckdb.IOException(message)

    monkeypatch.setattr(duckdb, "connect", refuse)
    if damaged:
        with pytest.raises(dg.Failure, match=r"is damaged \(IO Error: Corrupt database file"):
            warehouse.check_readable()
    else:
        assert warehouse.check_readable() is None
