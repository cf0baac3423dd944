"""Issue 12 faults on the finetune month (the shared dlt GitHub source, by creation month, into DuckDB)."""

from __future__ import annotations

import json

import dagster as dg

from reference_arch.finetune.defs import ingestion
from reference_arch_tests.finetune.conftest import REPO, ExportWriter

MONTH = "2026-01-01"


def _pairs() -> list[dict]:
    return [json.loads(line) for line in ingestion.pairs_path(MONTH).read_text().splitlines()]


def test_a_lone_surrogate_and_a_stale_duplicate_do_not_spoil_the_month(tmp_path, monkeypatch, tmp_home, instance):
    """12.1: a body ending in "\\ud83d" failed the month. 12.2: the older of two versions of an issue won."""
    export = ExportWriter(tmp_path / "export")
    n = export.issue("How to set the cache?", "Where does the cache live? SURROGATE_END", "2026-01-05T10:00:00Z")
    export.reply(n, "In ~/.cache/widgets.", "2026-01-05T11:00:00Z")
    m = export.issue("OLD title", "Which theme is the default?", "2026-01-06T10:00:00Z")
    export.reply(m, "The light theme.", "2026-01-06T11:00:00Z")
    old = export.issues[m - 1]
    old["updated_at"] = "2026-06-02T10:00:00Z"
    new = {**old, "title": "NEW title", "updated_at": "2026-06-03T10:00:00Z"}
    root = export.write()
    folder = root / REPO
    issues = (folder / "issues.json").read_text().replace("SURROGATE_END", "\\ud83d")
    (folder / "issues.json").write_text(issues)
    (folder / "issues-2.json").write_text(json.dumps([new]))  # the newer version on a later page
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(root))

    result = dg.materialize([ingestion.github_issues, ingestion.qa_pairs], instance=instance, partition_key=MONTH)
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "github_issues"]
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["issues"] == 2 and meta["repaired_lone_surrogate"] == 1
    questions = sorted(p["question"] for p in _pairs())
    assert questions[0].startswith("How to set the cache?") and questions[0].endswith("\ufffd")
    assert questions[1].startswith("NEW title")


def test_a_truncated_warehouse_is_one_line_and_never_replaced(tmp_path, monkeypatch, tmp_home, instance):
    """The rag location's damage check, for the finetune warehouse too: a truncated file failed the month with
    DuckDB's checksum error from inside dlt; now the month fails in one line naming the file and the way out,
    and the file is left as it was."""
    from pathlib import Path

    from reference_arch.cli.runs import first_failure

    export = ExportWriter(tmp_path / "export")
    for day in range(1, 21):
        n = export.issue(f"Question {day} about the cache?", "Where does the cache live? " * 40, f"2026-01-{day:02d}T10:00:00Z")
        export.reply(n, "In ~/.cache/widgets. " * 40, f"2026-01-{day:02d}T11:00:00Z")
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(export.write()))
    assert dg.materialize([ingestion.github_issues], instance=instance, partition_key=MONTH).success
    path = ingestion.warehouse_path()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    damaged = Path(path).read_bytes()

    for asset in (ingestion.github_issues, ingestion.qa_pairs):  # loading and reading alike
        result = dg.materialize([asset], instance=instance, partition_key=MONTH, raise_on_error=False,
                                selection=[asset.key])
        line = first_failure(result)
        assert not result.success and f"the warehouse {path} is damaged (" in line, line
        assert "\n" not in line and line.endswith("&& reference-arch materialize finetune`"), line
    assert Path(path).read_bytes() == damaged  # never silently replaced
