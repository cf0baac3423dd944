"""Faults of issue 12 over the real rag assets (dlt into DuckDB, LanceDB, all-MiniLM-L6-v2): a bad record
fails nothing, the newest version of a record wins, and what leaves a re-exported day leaves everywhere."""

import json

import dagster as dg

from reference_arch.rag.defs import ingestion
from reference_arch.rag import warehouse
from reference_arch_tests.rag.conftest import (DAY1, DAY2, ISSUES, REPO, SLACK_DAY1, metadata, range_tags,
                                               resources, run_ingestion, run_processing)


def test_a_lone_surrogate_repairs_one_record_and_fails_nothing(rag_data, instance):
    """12.1: "\\ud83d" at the end of an issue body and of a Slack message failed every day of the range."""
    issues = json.loads(json.dumps(ISSUES))
    issues[1]["body"] = "Charts are hard to read SURROGATE_END"
    (rag_data["github"] / REPO / "issues.json").write_text(
        json.dumps(issues).replace("SURROGATE_END", "\\ud83d"))
    day = json.loads(json.dumps(SLACK_DAY1))
    day[1]["text"] += " SURROGATE_END"
    (rag_data["slack"] / "help" / f"{DAY1}.json").write_text(json.dumps(day).replace("SURROGATE_END", "\\ud83d"))

    result = dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                            tags=range_tags(DAY1, DAY2))
    assert result.success
    assert metadata(result, "github_issues")["repaired_lone_surrogate"] == 1
    assert metadata(result, "slack_messages")["repaired_lone_surrogate"] == 1
    bodies = {i["number"]: i["body"] for i in warehouse.read_table("github", "issues")}
    assert bodies[2].endswith("read \ufffd") and len(bodies) == 2
    assert any(m["text"].endswith("\ufffd") for m in warehouse.read_table("slack", "messages"))


def test_a_failure_line_names_its_cause():
    """12.1: the CLI's line stopped at dlt's "... with exception:" and dropped the cause."""
    import dlt

    from reference_arch.cli.runs import first_failure

    @dg.asset
    def broken_load(context: dg.AssetExecutionContext):
        def rows():
            yield {"id": 1}
            raise TypeError("str is not valid UTF-8: surrogates not allowed")

        root = context.instance.storage_directory()
        pipeline = dlt.pipeline(pipeline_name="broken", destination=dlt.destinations.duckdb(f"{root}/w.duckdb"),
                                pipelines_dir=root)
        pipeline.run(dlt.resource(rows, name="rows"))

    with dg.instance_for_test() as instance:
        result = dg.materialize([broken_load], instance=instance, raise_on_error=False)
    line = first_failure(result)
    assert "\n" not in line and "with exception" in line
    assert line.endswith("TypeError: str is not valid UTF-8: surrogates not allowed"), line


def _two_versions():
    old = {**ISSUES[1], "id": 103, "number": 3, "title": "OLD", "created_at": f"{DAY1}T08:00:00Z",
           "updated_at": "2026-06-02T09:00:00Z", "comments": 0}
    new = {**old, "title": "NEW", "updated_at": "2026-06-03T09:00:00Z"}
    return old, new


def test_the_newest_version_wins_in_the_warehouse_and_the_documents(rag_data, instance):
    """12.2: an issue on two pages of an export (older first) kept the OLD title."""
    old, new = _two_versions()
    folder = rag_data["github"] / REPO
    (folder / "issues-p1.json").write_text(json.dumps([old]))
    (folder / "issues-p2.json").write_text(json.dumps([new]))
    assets = [ingestion.github_assets]
    assert dg.materialize(assets, instance=instance, tags=range_tags(DAY1, "2026-06-03")).success
    titles = lambda: [i["title"] for i in warehouse.read_table("github", "issues") if i["id"] == 103]  # noqa: E731
    assert titles() == ["NEW"]
    for day in ("2026-06-03", "2026-06-02"):  # the newer day first, then the older one
        assert dg.materialize(assets, instance=instance, partition_key=day).success
        assert titles() == ["NEW"]

    from reference_arch.rag.defs import processing

    assert dg.materialize([processing.documents], instance=instance).success
    [doc] = [d for d in processing.read_rows(processing.documents_path()) if d["id"] == f"github:{REPO}#3"]
    assert doc["title"].endswith(": NEW") and "OLD" not in doc["text"]


def test_a_deleted_reply_leaves_warehouse_documents_and_index(rag_data, instance):
    """12.3: re-export after a reply (and its parent) are deleted, reload the day: the reply was still a hit,
    and the parent's tombstone became the thread's title."""
    day_file = rag_data["slack"] / "help" / f"{DAY1}.json"
    thread = json.loads(day_file.read_text())
    parent = thread[0]
    late = {"type": "message", "user": "U1", "text": "Also try the zanzibarquux flag.", "ts": "1780304600.000300",
            "thread_ts": parent["ts"]}
    day_file.write_text(json.dumps([*thread, late]))
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success and run_processing(instance).success
    res = resources()
    from reference_arch.rag.defs.processing import chunks_path, documents_path, read_rows
    from reference_arch.rag.defs.index import open_collection

    collection = lambda: open_collection(res["embeddings"], res["vector_store"])  # noqa: E731
    assert any("zanzibarquux" in r["text"] for r in collection().keyword_search("zanzibarquux"))

    tombstone = {"type": "message", "subtype": "tombstone", "user": "USLACKBOT", "hidden": True,
                 "text": "This message was deleted.", "ts": parent["ts"], "thread_ts": parent["ts"], "reply_count": 1}
    day_file.write_text(json.dumps([tombstone, thread[1], thread[2]]))  # the late reply and the parent are gone
    assert dg.materialize([ingestion.slack_assets], instance=instance, partition_key=DAY1).success
    assert run_processing(instance).success

    texts = [m["text"] for m in warehouse.read_table("slack", "messages")]
    assert not any("zanzibarquux" in t or "was deleted" in t for t in texts) and len(texts) == 1
    [doc] = [d for d in read_rows(documents_path()) if d["source_type"] == "slack"]
    assert "zanzibarquux" not in doc["text"] and "deleted" not in doc["title"] + doc["text"]
    assert doc["title"].startswith("#help: <@U1> in ~/.cache") or "cache" in doc["title"]
    assert not any("zanzibarquux" in r["text"] for r in read_rows(chunks_path(), ["text"]))
    assert not any("zanzibarquux" in r["text"] for r in collection().keyword_search("zanzibarquux"))


def test_code_comments_in_a_docs_page_stay_code(rag_data, instance):
    """12.6 over the real assets: a docs page whose indented code block holds "#" comments, before and
    after its first heading: the comments are neither the page's title nor section headings."""
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.rag.defs import processing

    (rag_data["docs"] / "guides" / "setup.md").write_text(
        "Before you start:\n\n    # not the title\n    pip install widgets\n\n# Setup\n\n## Cache\n\n"
        "Clear it with:\n\n    # remove the cache\n    rm -rf ~/.cache/widgets\n    # and start again\n    widgets init\n")
    assert dg.materialize([ingestion.docs_partitions], instance=instance).success
    assert dg.materialize([ingestion.docs_assets], instance=instance, partition_key="dir:guides").success
    [page] = [p for p in warehouse.read_table("docs", "pages") if p["id"] == "docs:guides/setup.md"]
    assert page["title"] == "Setup"
    assert dg.materialize([processing.documents, processing.chunks], instance=instance,
                          resources={"embeddings": EmbeddingsResource(provider="local")}).success
    texts = [c["text"] for c in processing.read_rows(processing.chunks_path())
             if c["document_id"] == "docs:guides/setup.md"]
    [cache] = [t for t in texts if "rm -rf" in t]
    assert cache.startswith("Setup > Cache\n\n") or cache.split("\n\n", 1)[0].endswith("Cache")
    assert "# remove the cache" in cache and "# and start again\n    widgets init" in cache
    assert any("# not the title" in t for t in texts)
