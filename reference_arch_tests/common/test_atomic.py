"""Atomic writes: a write that fails part-way leaves the previous file or directory whole."""

import json

import pytest

from reference_arch.common.atomic import open_atomic, staging_dir, staging_file, write_json


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "checkpoint.json"
    write_json(target, {"step": 3})
    with pytest.raises(RuntimeError):
        with open_atomic(target) as out:
            out.write('{"step": 6, "lo')  # the process dies half-way through
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"step": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]  # no temporary file left behind
    with staging_file(target) as tmp:
        tmp.write_text('{"step": 6}')
    assert json.loads(target.read_text()) == {"step": 6}


def test_a_failed_directory_write_keeps_the_old_directory(tmp_path):
    target = tmp_path / "final"
    with staging_dir(target) as tmp:
        (tmp / "config.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staging_dir(target) as tmp:
            (tmp / "config.json").write_text("new, half")
            raise RuntimeError("killed")
    assert (target / "config.json").read_text() == "old"
    with staging_dir(target) as tmp:
        (tmp / "model.safetensors").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_parquet_is_written_whole_or_not_at_all(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reference_arch.common.atomic import write_parquet

    target = tmp_path / "deep" / "rows.parquet"  # missing folders are made
    write_parquet(target, pa.table({"id": ["a", "b"]}))
    with pytest.raises(pa.ArrowInvalid):
        write_parquet(target, pa.table({"id": ["c"]}).append_column("n", pa.array([1, 2])))
    assert pq.read_table(target).to_pylist() == [{"id": "a"}, {"id": "b"}]
    assert [p.name for p in target.parent.iterdir()] == ["rows.parquet"]


def test_set_aside_keeps_one_copy_and_allows_a_missing_file(tmp_path):
    from reference_arch.common.atomic import set_aside

    target = tmp_path / "cache.sqlite"
    assert set_aside(target) is None
    target.write_text("first damage")
    assert set_aside(target) == tmp_path / "cache.sqlite.unreadable"
    target.write_text("second damage")
    set_aside(target)
    assert [p.name for p in tmp_path.iterdir()] == ["cache.sqlite.unreadable"]
    assert (tmp_path / "cache.sqlite.unreadable").read_text() == "second damage"


def test_move_to_new_never_replaces_another_writers_directory(tmp_path):
    from reference_arch.common.atomic import move_to_new, scratch_dir

    taken = tmp_path / "1"
    taken.mkdir()
    (taken / "card.json").write_text("theirs")
    with scratch_dir(taken) as built:
        (built / "card.json").write_text("mine")
        assert not move_to_new(built, taken)
        assert move_to_new(built, tmp_path / "2")
    assert (taken / "card.json").read_text() == "theirs" and (tmp_path / "2" / "card.json").read_text() == "mine"
    with pytest.raises(RuntimeError):
        with scratch_dir(tmp_path / "3") as built:
            (built / "half").write_text("x")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]  # the scratch folders are gone
