"""The docs dlt source: files and docstrings as documents, partitions, bad files, deletions through dlt."""

import dlt
import pytest

from reference_arch.sources.docs import (VANISHED, PackageSpec, current_fingerprints, docs_source,
                                               docstring_documents, file_partition, loaded_fingerprints,
                                               parse_packages, partition_fingerprints)
from reference_arch.sources.export_files import SkipStats


def load(tmp_path, partitions, folder, packages="json") -> tuple[list[dict], SkipStats]:
    import duckdb

    stats = SkipStats()
    pipeline = dlt.pipeline("docs_test", pipelines_dir=str(tmp_path / "dlt"),
                            destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), dataset_name="docs")
    pipeline.run(docs_source(partitions, folder=folder, packages=packages, stats=stats))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute("select id, partition, kind, title, content_hash from docs.pages order by id").fetchall()
    return [dict(zip(("id", "partition", "kind", "title", "content_hash"), r)) for r in rows], stats


def test_partitions_and_specs(tmp_path):
    assert parse_packages("pandas:Series, DataFrame;json") == [PackageSpec("pandas", ("Series", "DataFrame")),
                                                              PackageSpec("json")]
    assert parse_packages("") == []
    with pytest.raises(ValueError, match="invalid package name"):
        parse_packages("not a package")
    assert file_partition("guides/io.md") == "dir:guides" and file_partition("index.md") == "dir:."
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "a.md").write_text("# A\n\ntext")
    (tmp_path / "b.rst").write_text("B\n=\n\ntext")
    (tmp_path / ".hidden.md").write_text("# secret")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    prints = partition_fingerprints(tmp_path, parse_packages("json"), examples=False)
    assert set(prints) == {"package:json", "dir:guides", "dir:."}
    # a touched file with the same content keeps the fingerprint; new content changes it
    (tmp_path / "guides" / "a.md").write_text("# A\n\ntext")
    assert partition_fingerprints(tmp_path, [], examples=False)["dir:guides"] == prints["dir:guides"]
    (tmp_path / "guides" / "a.md").write_text("# A\n\nnew text")
    assert partition_fingerprints(tmp_path, [], examples=False)["dir:guides"] != prints["dir:guides"]


def test_docstrings_are_documents_named_by_dotted_name():
    docs = {d["id"]: d for d in docstring_documents(PackageSpec("json", ("JSONDecoder",)), examples=False, limit=0)}
    assert {"docs:json.dumps", "docs:json.loads", "docs:json.JSONDecoder", "docs:json.JSONDecoder.decode"} <= set(docs)
    dumps = docs["docs:json.dumps"]
    assert dumps["source"] == dumps["title"] == "json.dumps" and dumps["text"].startswith("json.dumps(obj")
    assert dumps["partition"] == "package:json" and dumps["kind"] == "docstring" and dumps["updated_at"]
    pandas = {d["id"]: d for d in docstring_documents(PackageSpec("pandas", ("Series",)), examples=False)}
    rename = pandas["docs:pandas.Series.rename"]
    assert rename["url"] == "https://pandas.pydata.org/docs/reference/api/pandas.Series.rename.html"
    assert "Examples\n--------" not in rename["text"] and len(rename["text"]) < 1100  # capped, examples left out
    assert "self" not in rename["text"].split("\n", 1)[0]  # signature without annotations or self
    with pytest.raises(ValueError, match="cannot be imported"):
        docstring_documents(PackageSpec("no_such_package_xyz"))


def documented_names(docs: list[dict]) -> set[str]:
    """Every dotted name the documents cover: their own and those listed as sharing their docstring."""
    names = set()
    for doc in docs:
        names.add(doc["source"])
        _, found, also = doc["text"].rpartition("\n\nAlso documented as: ")
        if found:
            names.update(n.strip() for n in also.split(",") if n.strip())
    return names


def test_reading_an_api_passes_on_no_warning():
    """numpy.matlib warns when first imported (through numpy's lazy ``__getattr__`` too); reading the API in a
    fresh interpreter, where every warning is an error, must not pass that warning on to the user's log."""
    import subprocess
    import sys

    code = ("from reference_arch.sources.docs.api import api_objects\n"
            "from reference_arch.sources.docs.helpers import PackageSpec\n"
            "print(sum(1 for _ in api_objects(PackageSpec('numpy'))))")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert int(done.stdout) > 1000


def test_numpy_api_includes_ufuncs_dispatchers_and_submodules():
    docs = docstring_documents(PackageSpec("numpy"), examples=False)
    names = documented_names(docs)
    # array-function dispatchers, a ufunc, a C method of ndarray, and numpy.linalg's functions
    wanted = {f"numpy.{n}" for n in ("linspace", "clip", "argsort", "where", "cumsum", "unique", "isin", "interp",
                                      "pad", "exp", "ndarray.reshape", "linalg.norm", "linalg.solve", "linalg.inv")}
    assert wanted <= names, wanted - names
    by_id = {d["id"]: d for d in docs}
    assert "Return evenly spaced numbers" in by_id["docs:numpy.linspace"]["text"]
    assert "Calculate the exponential" in by_id["docs:numpy.exp"]["text"]  # a ufunc's docstring is its own
    assert not any(n.startswith(("numpy._", "numpy.tests")) or "._" in n for n in names)  # private stays out


def test_pathlib_api_is_its_classes_and_their_methods():
    docs = {d["id"]: d for d in docstring_documents(PackageSpec("pathlib"), examples=False)}
    assert {"pathlib.Path", "pathlib.PurePath.with_suffix", "pathlib.Path.glob",
            "pathlib.Path.read_text", "pathlib.Path.mkdir"} <= documented_names(list(docs.values()))
    # Path.glob's docstring is PosixPath.glob's and WindowsPath.glob's: one document naming all three.
    glob = docs["docs:pathlib.Path.glob"]["text"]
    assert "pathlib.PosixPath.glob" in glob and "pathlib.WindowsPath.glob" in glob
    assert "docs:pathlib.PosixPath.glob" not in docs
    texts = [d["text"].partition("\n\n")[2].partition("\n\nAlso documented as")[0] for d in docs.values()]
    assert len(texts) == len(set(texts))  # no docstring indexed twice


@pytest.fixture(scope="module")
def pandas_docs() -> list[dict]:
    return docstring_documents(PackageSpec("pandas"), examples=False)


def test_pandas_api_is_the_whole_api(pandas_docs):
    names = documented_names(pandas_docs)
    wanted = {"pandas.DataFrame.set_index", "pandas.DataFrame.to_parquet", "pandas.DataFrame.nlargest",
              "pandas.DataFrame.merge", "pandas.Series.rename", "pandas.Series.value_counts", "pandas.read_csv",
              "pandas.Series.str.contains", "pandas.api.types.is_bool_dtype", "pandas.Timestamp.floor",
              # DataFrameGroupBy's own __doc__ is "": its methods are API all the same
              "pandas.api.typing.DataFrameGroupBy.aggregate", "pandas.api.typing.DataFrameGroupBy.transform"}
    assert wanted <= names, wanted - names
    assert not any(n.startswith(("pandas.core.", "pandas.tests", "pandas._")) for n in names)
    ids = {d["id"] for d in pandas_docs}
    # A docstring the Index subclasses inherit is one document, named after the class that defines it.
    assert "docs:pandas.Index.argsort" in ids and "docs:pandas.CategoricalIndex.argsort" not in ids
    assert parse_packages() == [PackageSpec("pandas")]  # the default corpus


def test_load_replaces_a_partition_and_counts_bad_files(tmp_path):
    folder = tmp_path / "docs"
    (folder / "guides").mkdir(parents=True)
    (folder / "guides" / "keep.md").write_text("# Keep\n\nStays.")
    (folder / "guides" / "drop.md").write_text("# Drop\n\nGoes away.")
    (folder / "guides" / "bad.md").write_bytes(b"# Bad\n\n\xff\xfe not utf-8")
    (folder / "guides" / "empty.txt").write_text("")
    (folder / "index.md").write_text("# Home\n\nWelcome.")
    rows, stats = load(tmp_path, ["dir:guides", "dir:.", "package:json"], folder)
    ids = {r["id"] for r in rows}
    assert {"docs:guides/keep.md", "docs:guides/drop.md", "docs:index.md", "docs:json.dumps"} <= ids
    markers = loaded_fingerprints(rows)  # one marker row per loaded partition, with its fingerprint
    assert markers == partition_fingerprints(folder, parse_packages("json"), examples=False)
    assert stats.counts == {"empty_file": 1} and stats.repaired == {"not_utf8": 1}  # bad bytes become U+FFFD
    assert next(r for r in rows if r["id"] == "docs:guides/keep.md")["title"] == "Keep"

    (folder / "guides" / "drop.md").unlink()
    rows, _ = load(tmp_path, ["dir:guides"], folder)
    ids = {r["id"] for r in rows}
    assert "docs:guides/drop.md" not in ids and {"docs:guides/keep.md", "docs:index.md", "docs:json.dumps"} <= ids

    # A folder that vanished: loading its partition empties it (all but its marker), others stay.
    for path in (folder / "guides").iterdir():
        path.unlink()
    (folder / "guides").rmdir()
    rows, _ = load(tmp_path, ["dir:guides"], folder)
    assert [r["id"] for r in rows if r["partition"] == "dir:guides"] == ["dir:guides#partition"]
    assert loaded_fingerprints(rows)["dir:guides"] == VANISHED == current_fingerprints(["dir:guides"], folder)["dir:guides"]
    assert any(r["id"] == "docs:index.md" for r in rows)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="REFERENCE_ARCH_DOCS_DIR"):
        partition_fingerprints(tmp_path / "nope", [])
