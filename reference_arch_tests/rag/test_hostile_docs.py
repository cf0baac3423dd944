"""Hostile docs folders (issue 26.3) over the real rag assets (dlt into DuckDB, the documents asset): a FIFO,
a file name that is not UTF-8, a page over the size bound and a binary page are each skipped and named in
the run's one skip line and its counts, and every other page of the folder is loaded. The same reader guards
the GitHub and Slack exports."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from reference_arch.rag import warehouse
from reference_arch.rag.defs import ingestion
from reference_arch_tests.rag.conftest import DAY1, DAY2, REPO, metadata, range_tags

BOUND = 5 * 1024 * 1024  # sources.docs.files.MAX_PAGE_BYTES


@contextmanager
def fifo(path: Path):
    """A FIFO at ``path``; whoever opens it to read is let go (EOF) within half a second, so code that still
    opens it fails the assertions instead of hanging the test."""
    os.mkfifo(path)
    done = threading.Event()

    def release():
        while not done.wait(0.2):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO while nobody reads
            except OSError:
                pass

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()


def unix_socket(path: Path) -> None:
    """A Unix socket at ``path`` (bound by its relative name: a socket's path is capped at 108 bytes)."""
    import socket

    here = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path.name)  # the file stays after close
    finally:
        os.chdir(here)


def write_huge(path: Path) -> None:
    """A text page one byte over the bound."""
    line = b"Widgets draws charts from CSV files, one chart per file.\n"
    path.write_bytes((b"# Huge\n\n" + line * (BOUND // len(line) + 1))[:BOUND + 1])


HOSTILE = {  # name under the docs folder -> (how it is made, skip reason, detail in the skip line)
    "fifo": ("guides/x.md", lambda p: fifo(p), "not_a_regular_file", "a FIFO"),
    "socket": ("guides/y.md", unix_socket, "not_a_regular_file", "a socket"),
    "name": (os.fsdecode(b"guides/caf\xe9.md"), lambda p: p.write_text("# Cafe\n\nA page named in Latin-1."),
             "not_utf8_name", ""),
    "huge": ("guides/huge.md", write_huge, "too_large", f"{BOUND + 1} bytes, over the bound of {BOUND} bytes"),
    "binary": ("guides/blob.md", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8),
               "binary_file", "NUL bytes"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_file_is_skipped_and_named_and_the_rest_loads(kind, rag_data, instance, monkeypatch):
    from contextlib import nullcontext

    from reference_arch.common.vector_store.embeddings import EmbeddingsResource
    from reference_arch.rag.defs import processing

    monkeypatch.setenv("REFERENCE_ARCH_DOCS_PACKAGES", "")  # the docs folder only
    name, make, reason, detail = HOSTILE[kind]
    path = rag_data["docs"] / name
    made = make(path)
    with made if hasattr(made, "__enter__") else nullcontext():
        assert dg.materialize([ingestion.docs_partitions], instance=instance).success
        keys = sorted(instance.get_dynamic_partitions("rag_docs"))
        assert keys == ["dir:.", "dir:guides"]
        result = dg.materialize([ingestion.docs_assets], instance=instance, tags=range_tags(keys[0], keys[-1]))
        assert result.success
        documents = dg.materialize([processing.documents], instance=instance,
                                   resources={"embeddings": EmbeddingsResource(provider="local")})
        assert documents.success

    assert metadata(result, "docs_pages")[f"skipped_{reason}"] == 1
    shown = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    [line] = [e.message for e in instance.all_logs(result.run_id) if e.level == 30 and "skipped" in e.message]
    assert f"{shown}: {reason}" + (f" ({detail})" if detail else "") in line, line
    loaded = {p["id"] for p in warehouse.read_table("docs", "pages") if p["kind"] == "file"}
    assert loaded == {"docs:index.md", "docs:guides/charts.md", "docs:guides/cli.rst"}  # the rest, whole
    indexed = {d["id"] for d in processing.read_rows(processing.documents_path())}
    assert {"docs:index.md", "docs:guides/charts.md", "docs:guides/cli.rst"} <= indexed
    assert not any(i.startswith("docs:guides/") and i.split("/")[-1] not in ("charts.md", "cli.rst") for i in indexed)


def test_the_bound_is_the_tested_one():
    from reference_arch.sources.docs.files import MAX_PAGE_BYTES

    assert MAX_PAGE_BYTES == BOUND


def test_a_share_of_undecodable_bytes_is_binary_a_stray_byte_is_not(tmp_path):
    from reference_arch.sources.export_files import SkipStats, file_text

    stats = SkipStats()
    (tmp_path / "latin1.md").write_bytes("# Caf\xe9\n\nCr\xe8me br\xfbl\xe9e, \xe0 la carte.".encode("latin-1"))
    (tmp_path / "noise.md").write_bytes(bytes(range(128, 256)) * 4 + b"# not a page")
    assert file_text(tmp_path / "latin1.md", stats).startswith("# Caf\ufffd")  # repaired, kept
    assert file_text(tmp_path / "noise.md", stats) is None
    assert stats.counts == {"binary_file": 1} and stats.repaired == {"not_utf8": 1}


def test_a_fifo_in_the_exports_is_skipped_and_named(rag_data, instance):
    """The GitHub and Slack exports read files through the same reader: a FIFO named like an export file is
    named, not waited on."""
    with fifo(rag_data["github"] / REPO / "comments-2.json"), fifo(rag_data["slack"] / "help" / f"{DAY2}.json"):
        result = dg.materialize([ingestion.github_assets, ingestion.slack_assets], instance=instance,
                                tags=range_tags(DAY1, DAY2))
    assert result.success
    assert metadata(result, "github_comments")["skipped_not_a_regular_file"] == 1
    assert metadata(result, "slack_messages")["skipped_not_a_regular_file"] == 1
    assert len(warehouse.read_table("github", "comments")) == 3
