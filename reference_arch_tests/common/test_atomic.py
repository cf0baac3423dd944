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
