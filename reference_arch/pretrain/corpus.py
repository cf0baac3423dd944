"""Corpus ingestion: source files from a local directory, a git checkout or a GitHub repository.

Files are taken in the order of a stable hash of their relative path until the byte budget is
spent, so a small budget samples the whole tree evenly (not just its first directories) and
the same budget always picks the same files. Junk is skipped and counted, never fatal:
symlinks (so symlink loops cannot trap the walk), other extensions, names that are not UTF-8, what is not a
regular file (a FIFO, socket or device: never opened to wait on), empty, binary (a NUL byte), non-UTF-8,
unreadable and over-large files.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import sysconfig
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reference_arch.common import settings

if TYPE_CHECKING:
    import tarfile

DEFAULT_EXCLUDE = ("site-packages", "dist-packages", "__pycache__", ".git", ".venv", "venv", "node_modules", ".tox")
SKIP_REASONS = ("symlink", "other_extension", "empty", "too_large", "binary", "non_utf8", "unreadable", "over_budget")


class CorpusError(ValueError):
    """The corpus cannot be read as configured."""


def default_corpus_dir() -> str:
    """``REFERENCE_ARCH_CORPUS_DIR``, else the standard library of the running interpreter."""
    return str(settings.value("corpus_dir") or sysconfig.get_paths()["stdlib"])


def stable_hash(text: str, salt: str = "") -> int:
    """A hash of ``text`` that is the same in every process and on every machine."""
    return int.from_bytes(hashlib.sha1(f"{salt}{text}".encode()).digest()[:8], "big")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Scan:
    files: list[dict] = field(default_factory=list)  # {"path", "text", "sha256", "bytes"}
    skipped: collections.Counter = field(default_factory=collections.Counter)
    seen: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)

    def corpus_hash(self) -> str:
        digest = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f["path"]):
            digest.update(f"{f['path']}\0{f['sha256']}\n".encode())
        return digest.hexdigest()


def _read_source(path: Path, max_file_bytes: int, budget_left: int) -> tuple[str | None, bytes, str]:
    """``(skip reason or None, bytes, text)`` of one candidate file, read only when it fits the budget: through
    the sources' reader (``read_regular_file``), so a FIFO, socket or device named like a source file is skipped,
    never waited on."""
    from reference_arch.sources.export_files import UnusableFile, read_regular_file

    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            return "too_large", b"", ""
        if size > budget_left:
            return "over_budget", b"", ""
        data = read_regular_file(path, max_file_bytes)
    except UnusableFile as err:
        return err.reason, b"", ""
    except OSError:
        return "unreadable", b"", ""
    if not data:
        return "empty", b"", ""
    if b"\0" in data:
        return "binary", data, ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8", data, ""
    return ("empty" if not text.strip() else None), data, text


def scan_directory(root: str | Path, *, extensions: tuple[str, ...] = (".py",), max_bytes: int = 2_000_000,
                   max_file_bytes: int = 1_000_000, exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> Scan:
    """Read the source files under ``root`` (see the module docstring for what is skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"the corpus directory {root} does not exist or is not a directory "
                          "(set REFERENCE_ARCH_CORPUS_DIR or the asset's source_dir)")
    scan = Scan()
    candidates: list[tuple[int, str, Path]] = []
    excluded = set(exclude)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            if name in excluded:
                dirnames.remove(name)
            elif (here / name).is_symlink():  # not walked; counted
                scan.seen += 1
                scan.skipped["symlink"] += 1
        dirnames.sort()
        for name in filenames:
            path = here / name
            scan.seen += 1
            if path.is_symlink():
                scan.skipped["symlink"] += 1
            elif extensions and path.suffix not in extensions:
                scan.skipped["other_extension"] += 1
            elif (rel := path.relative_to(root).as_posix()) != os.fsencode(rel).decode("utf-8", "replace"):
                scan.skipped["not_utf8_name"] += 1  # its path is its id in Parquet, which takes only UTF-8
            else:
                candidates.append((stable_hash(rel), rel, path))
    candidates.sort()
    total = 0
    for _, rel, path in candidates:
        reason, data, text = _read_source(path, max_file_bytes, max_bytes - total)
        if reason:
            scan.skipped[reason] += 1
            continue
        total += len(data)
        scan.files.append({"path": rel, "text": text, "sha256": content_hash(text), "bytes": len(data)})
    return scan


def git_checkout(url: str, target: Path, ref: str | None = None) -> Path:
    """A shallow clone of ``url`` (any URL or path git understands) at ``target``, replaced atomically."""
    from urllib.parse import urlsplit

    from reference_arch.common.atomic import staging_dir
    from reference_arch.common.secrets import scrub

    password = urlsplit(url).password if "://" in url else None  # https://user:TOKEN@host/...
    with staging_dir(target) as staging:
        command = ["git", "clone", "--quiet", "--depth", "1", *(["--branch", ref] if ref else []), url, str(staging)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise CorpusError(scrub(f"git clone of {url} timed out after 600 s", password)) from None
        if done.returncode != 0:
            raise CorpusError(scrub(f"git clone of {url} failed: {done.stderr.strip() or done.returncode}", password))
    return target


def github_tarball(repo: str, target: Path, ref: str | None = None, token: str | None = None,
                   api_url: str = "https://api.github.com") -> Path:
    """Download ``owner/name`` at ``ref`` through the GitHub API's tarball endpoint into ``target``."""
    if repo.count("/") != 1:
        raise CorpusError(f"github_repo must look like 'owner/name', got {repo!r}")
    url = f"{api_url.rstrip('/')}/repos/{repo}/tarball" + (f"/{ref}" if ref else "")
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.github+json",
                                                   **({"Authorization": f"Bearer {token}"} if token else {})})
    from reference_arch.common.atomic import scratch_dir, staging_dir

    with scratch_dir(target, "github") as download:
        archive = download / "repo.tar.gz"
        try:
            with urllib.request.urlopen(request, timeout=120) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as err:  # URLError, HTTPError and timeouts are OSErrors
            from reference_arch.common.secrets import scrub

            why = "timed out (no data for 120 s)" if "timed out" in str(err) else str(err)
            raise CorpusError(scrub(f"cannot download {repo} from {api_url}: {why}", token)) from None
        import tarfile

        with tarfile.open(archive) as tar:
            safe_extract(tar, download / "x")
        tops = list((download / "x").iterdir())
        tree = tops[0] if len(tops) == 1 and tops[0].is_dir() else download / "x"
        with staging_dir(target) as staging:
            for child in tree.iterdir():
                os.replace(child, staging / child.name)  # a move within the download folder's filesystem
    return target


def safe_extract(tar: tarfile.TarFile, folder: Path) -> None:
    """Extract ``tar`` into ``folder``, refusing members that would land outside it (absolute paths,
    ``..``, links pointing out) and special files. The ``data`` extraction filter (PEP 706) does
    this where the Python has it (3.11.4+, and backports); older ones (Debian 12's 3.11.2) get the
    same rules checked here first."""
    import tarfile

    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = folder.resolve()
    for member in tar.getmembers():
        where = (root / member.name).resolve()
        link_to = (where.parent / member.linkname).resolve() if member.issym() or member.islnk() else root
        if not (where.is_relative_to(root) and link_to.is_relative_to(root)) or not (
                member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise CorpusError(f"the archive's member {member.name!r} would land outside {folder} or is not a "
                              "plain file: refused")
    tar.extractall(folder)


def write_parquet(files: list[dict], path: Path) -> Path:
    """Write records atomically (a reader never sees half a file, a failure keeps the old one)."""
    import pyarrow as pa

    from reference_arch.common import atomic

    columns = ("path", "text", "sha256", "bytes")
    table = pa.table({c: [f[c] for f in files] for c in columns}, schema=pa.schema(
        [("path", pa.string()), ("text", pa.large_string()), ("sha256", pa.string()), ("bytes", pa.int64())]))
    atomic.write_parquet(path, table)
    return path


def read_parquet(path: str | Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
