"""Corpus ingestion: junk skipped and counted, clear errors, git and GitHub sources."""

from __future__ import annotations

import contextlib
import http.server
import io
import subprocess
import tarfile
import threading

import dagster as dg
import pytest

from reference_arch.pretrain.corpus import CorpusError, github_tarball, git_checkout, scan_directory
from reference_arch_tests.pretrain.conftest import metadata, materialize, run_config, write_corpus


def test_scan_skips_and_counts_junk(tmp_path):
    planted = write_corpus(tmp_path / "c")
    scan = scan_directory(tmp_path / "c", max_file_bytes=50_000)
    for reason in ("binary", "non_utf8", "empty", "too_large", "other_extension", "symlink"):
        assert scan.skipped[reason] == planted[reason], reason
    paths = {f["path"] for f in scan.files}
    assert "copies/dupe.py" in paths and "junk/py2.py" in paths  # cleaning's job, not ingestion's
    assert not any(p.startswith("junk/loop") for p in paths)


def test_a_fifo_a_socket_and_a_non_utf8_name_are_skipped_and_counted(tmp_path):
    """A FIFO named like a source file is not opened to wait on (it was safe only because its size reads 0);
    a socket likewise; a name that is not UTF-8 could not be the file's id in Parquet."""
    import os
    import socket

    root = tmp_path / "c"
    root.mkdir()
    (root / "ok.py").write_text("x = 1\n")
    os.mkfifo(root / "pipe.py")
    here = os.getcwd()
    os.chdir(root)
    try:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind("sock.py")
    finally:
        os.chdir(here)
    (root / os.fsdecode(b"caf\xe9.py")).write_text("y = 2\n")
    scan = scan_directory(root)
    assert [f["path"] for f in scan.files] == ["ok.py"]
    assert scan.skipped["not_a_regular_file"] == 2 and scan.skipped["not_utf8_name"] == 1


def test_budget_samples_by_stable_hash(tmp_path):
    write_corpus(tmp_path / "c")
    small = scan_directory(tmp_path / "c", max_bytes=10_000, max_file_bytes=50_000)
    again = scan_directory(tmp_path / "c", max_bytes=10_000, max_file_bytes=50_000)
    assert small.total_bytes <= 10_000 and small.skipped["over_budget"] > 0
    assert [f["path"] for f in small.files] == [f["path"] for f in again.files]
    assert len({f["path"].split("/")[0] for f in small.files}) > 1  # spread over the tree, not one directory


def test_missing_directory_is_a_clear_failure(tmp_home, instance, tmp_path):
    config = run_config(tmp_path / "nowhere")
    result = materialize(instance, ["raw_corpus"], config, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "does not exist" in str(failure.event_specific_data.error)


def test_raw_corpus_asset_metadata(tmp_home, instance, corpus_dir):
    result = materialize(instance, ["raw_corpus"], run_config(corpus_dir))
    meta = metadata(result, "raw_corpus")
    assert meta["skipped/binary"].value == 1 and meta["skipped/symlink"].value == 2
    assert meta["files"].value > 40


def test_git_checkout_of_a_local_repository(tmp_path):
    repo = tmp_path / "repo"
    write_corpus(repo, n_files=4)
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "pkg0", "pkg1"], check=True)
    subprocess.run([*git, "commit", "-qm", "corpus"], check=True)
    (tmp_path / "sources").mkdir()
    checkout = git_checkout(f"file://{repo}", tmp_path / "sources" / "git")
    assert (checkout / "pkg0" / "mod_000.py").read_text() == (repo / "pkg0" / "mod_000.py").read_text()
    with pytest.raises(CorpusError, match="git clone"):
        git_checkout(f"file://{tmp_path}/missing", tmp_path / "sources" / "other")


TARBALL_FILE = b"def f():\n    return 1\n"


@contextlib.contextmanager
def tarball_api():
    """A local server speaking GitHub's tarball endpoint (a redirect-free 200 with a gzip tar) for
    ``owner/repo`` at ``main``; yields its URL and what the last request carried."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        info = tarfile.TarInfo("owner-repo-abc123/src/f.py")
        info.size = len(TARBALL_FILE)
        tar.addfile(info, io.BytesIO(TARBALL_FILE))
    seen = {}

    class API(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["path"], seen["auth"] = self.path, self.headers.get("Authorization")
            if self.path != "/repos/owner/repo/tarball/main":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.end_headers()
            self.wfile.write(payload.getvalue())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), API)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()


def test_github_tarball_through_a_local_api(tmp_path):
    with tarball_api() as (url, seen):
        target = github_tarball("owner/repo", tmp_path / "gh", "main", token="t0ken", api_url=url)
        assert (target / "src" / "f.py").read_bytes() == TARBALL_FILE
        assert seen["auth"] == "Bearer t0ken"
        with pytest.raises(CorpusError, match="404"):
            github_tarball("owner/missing", tmp_path / "gh2", api_url=url)


def test_raw_corpus_from_a_github_repo(tmp_home, instance, tmp_path, monkeypatch):
    """The asset's github_repo source, with its token and API URL from the environment."""
    with tarball_api() as (url, seen):
        monkeypatch.setenv("GITHUB_API_URL", url)
        monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
        config = run_config(tmp_path / "unused", raw_corpus={"github_repo": "owner/repo", "ref": "main"})
        result = materialize(instance, ["raw_corpus"], config)
    assert seen == {"path": "/repos/owner/repo/tarball/main", "auth": "Bearer t0ken"}
    assert metadata(result, "raw_corpus")["files"].value == 1


def test_failure_keeps_the_stored_corpus(tmp_home, instance, corpus_dir, tmp_path):
    materialize(instance, ["raw_corpus"], run_config(corpus_dir))
    from reference_arch.pretrain import store

    before = store.read_manifest("raw_corpus")
    result = materialize(instance, ["raw_corpus"], run_config(tmp_path / "nowhere"), raise_on_error=False)
    assert not result.success
    assert store.read_manifest("raw_corpus") == before
    assert isinstance(dg.AssetKey(["pretrain", "raw_corpus"]), dg.AssetKey)


@pytest.mark.parametrize("has_filter", [True, False])
def test_archives_extract_safely_with_or_without_the_data_filter(tmp_path, monkeypatch, has_filter):
    """Debian 12's Python 3.11.2 predates tarfile's ``filter`` argument: extraction must still work
    there, and refuse a member that would land outside the folder either way."""
    from reference_arch.pretrain.corpus import CorpusError, safe_extract

    if not has_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def archive(name: str) -> tarfile.TarFile:
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"x=1"))
        payload.seek(0)
        return tarfile.open(fileobj=payload, mode="r:gz")

    with archive("repo-abc/src/f.py") as tar:
        safe_extract(tar, tmp_path / "ok")
    assert (tmp_path / "ok" / "repo-abc" / "src" / "f.py").read_text() == "x=1"
    with archive("../escape.py") as tar, pytest.raises((CorpusError, tarfile.TarError)):
        safe_extract(tar, tmp_path / "bad")
    assert not (tmp_path / "escape.py").exists()
