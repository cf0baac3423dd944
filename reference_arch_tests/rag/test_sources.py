"""Sources are the user's choice: a docs-only setup, the same setup with its folder emptied, samples that stay
out once a source of the user's own is configured, a source switched off, and empty exports as empty sources.
All through the real assets, the real LanceDB and the real all-MiniLM-L6-v2."""

import shutil

import dagster as dg
import pytest

from reference_arch_tests.rag.conftest import (DOCS, checks_passed, metadata, range_tags, resources, run_ingestion,
                                               run_processing, write_exports)

USER_SETTINGS = ("REFERENCE_ARCH_GITHUB_EXPORT", "REFERENCE_ARCH_GITHUB_REPOS", "REFERENCE_ARCH_SLACK_EXPORT",
                 "REFERENCE_ARCH_SLACK_CHANNELS", "REFERENCE_ARCH_DOCS_DIR", "REFERENCE_ARCH_DOCS_PACKAGES",
                 "REFERENCE_ARCH_RAG_SOURCES", "REFERENCE_ARCH_RAG_DESTINATION", "REFERENCE_ARCH_DOCS_EXAMPLES",
                 "REFERENCE_ARCH_DOCS_MAX_CHARS")


@pytest.fixture
def user_data(tmp_home, tmp_path, monkeypatch):
    """The tiny exports, with no source configured yet: each test sets only what a user would."""
    paths = write_exports(tmp_path / "data")
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REFERENCE_ARCH_RAG_EVAL_SET", str(paths["eval_set"]))
    return paths


def consistent(result) -> bool:
    """Every check passed, retrieval_quality included: it judges only the questions whose documents are indexed,
    and with none indexed it warns that nothing was measured (a warning, not a pass)."""
    import dagster as dg

    return all(e.passed or (e.severity == dg.AssetCheckSeverity.WARN and (e.description or "").startswith("nothing to judge"))
               for e in result.get_asset_check_evaluations())


def indexed_documents() -> dict[str, str]:
    """``{chunk id: document id}`` of the vector index."""
    from reference_arch.rag.defs.index import open_collection

    res = resources()
    return open_collection(res["embeddings"], res["vector_store"]).chunk_ids()


def retrieved(question: str) -> list[str]:
    """The document ids a dense search returns for ``question``."""
    from reference_arch.rag.defs.index import open_collection
    from reference_arch.rag.retrieval import retrieve

    res = resources()
    collection = open_collection(res["embeddings"], res["vector_store"])
    vector = res["embeddings"].embed_array([question])[0]
    return [s["document_id"] for s in retrieve(collection, question, vector, "dense")]


def test_enabled_sources_follow_what_the_user_configured(monkeypatch):
    from reference_arch.common.settings import SOURCES, enabled_sources

    for name in USER_SETTINGS + ("SLACK_BOT_TOKEN", "GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert enabled_sources() == set(SOURCES)  # nothing configured: the samples
    monkeypatch.setenv("GITHUB_TOKEN", "a token exported for other tools")
    assert enabled_sources() == set(SOURCES)  # a credential alone picks no source
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_DIR", "/my/docs")
    assert enabled_sources() == {"docs"}
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_PACKAGES", "numpy")
    assert enabled_sources() == {"docs", "packages"}
    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "github, docs")
    assert enabled_sources() == {"github", "docs"}  # the explicit switch wins
    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "none")
    assert enabled_sources() == set()
    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "docs,confluence")
    with pytest.raises(ValueError, match="unknown source.*confluence"):
        enabled_sources()


def test_docs_only_setup_then_its_folder_emptied(user_data, instance, monkeypatch):
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_DIR", str(user_data["docs"]))  # the user's docs, nothing else
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success
    assert metadata(daily, "github_issues")["enabled"] is False and metadata(daily, "slack_messages")["enabled"] is False
    assert set(instance.get_dynamic_partitions("rag_docs")) == {"dir:.", "dir:guides"}  # no package, no samples
    first = run_processing(instance)
    assert first.success and consistent(first)
    assert metadata(first, "documents")["documents"] == len(DOCS)
    assert set(indexed_documents().values()) == {f"docs:{name}" for name in DOCS}
    assert retrieved("Which option changes the chart colours?")[0] == "docs:guides/charts.md"

    # The user empties the folder and re-runs everything: an empty source, an empty index.
    for child in user_data["docs"].iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success
    again = run_processing(instance)
    assert again.success and consistent(again)
    assert metadata(again, "documents")["documents"] == 0 and metadata(again, "documents")["removed"] == len(DOCS)
    assert metadata(again, "chunks")["chunks"] == 0
    index = metadata(again, "vector_index")
    assert index["rows"] == 0 and index["documents_deleted"] == len(DOCS)
    assert indexed_documents() == {}
    assert "docs:guides/charts.md" not in retrieved("Which option changes the chart colours?")


def test_samples_stay_out_once_a_source_of_the_users_own_is_set(user_data, instance, monkeypatch):
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_PACKAGES", "json")  # only a package's API
    daily, docs = run_ingestion(instance)
    assert daily.success and docs.success
    assert set(instance.get_dynamic_partitions("rag_docs")) == {"package:json"}
    result = run_processing(instance)
    assert result.success
    documents = set(indexed_documents().values())
    assert documents and all(d.startswith("docs:json.") for d in documents), documents  # no tidepool, no sample docs


def test_a_source_switched_off_leaves_the_index_and_empty_exports_are_empty_sources(user_data, instance,
                                                                                    monkeypatch, tmp_path):
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(user_data["github"]))
    monkeypatch.setenv("REFERENCE_ARCH_SLACK_EXPORT", str(user_data["slack"]))
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_DIR", str(user_data["docs"]))
    run_ingestion(instance)
    assert run_processing(instance).success
    kinds = {d.split(":")[0] + (":" if d.startswith("docs") else "") for d in indexed_documents().values()}
    assert {"github", "slack"} <= kinds

    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "docs")  # one setting turns GitHub and Slack off
    result = run_processing(instance)
    assert result.success
    assert all(d.startswith("docs:") for d in indexed_documents().values())
    assert metadata(result, "vector_index")["documents_deleted"] == 3  # 2 issues and a Slack thread

    # Empty export folders are valid sources with nothing in them.
    monkeypatch.delenv("REFERENCE_ARCH_RAG_SOURCES")
    (tmp_path / "empty_github").mkdir()
    (tmp_path / "empty_slack").mkdir()
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(tmp_path / "empty_github"))
    monkeypatch.setenv("REFERENCE_ARCH_SLACK_EXPORT", str(tmp_path / "empty_slack"))
    from reference_arch.rag.defs import ingestion

    empty = dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                           tags=range_tags("2026-06-01", "2026-06-02"))
    assert empty.success
    assert metadata(empty, "github_issues")["skipped"] == 0 and metadata(empty, "slack_messages")["skipped"] == 0
