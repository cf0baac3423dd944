"""Ingestion, pairs, split and prompts on a tiny export written in the test."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest

from reference_arch.finetune.defs import ingestion, processing
from reference_arch.finetune import config
from reference_arch.finetune.config import FineTuningResource
from reference_arch.finetune.split import TRAIN, VALIDATION, split_of, split_pairs
from reference_arch_tests.finetune.conftest import TINY_BASE

RANGE = {"dagster/asset_partition_range_start": "2026-01-01", "dagster/asset_partition_range_end": "2026-04-01"}
DATA_ASSETS = [ingestion.github_issues, ingestion.qa_pairs, processing.train_validation_split, processing.prompts,
               processing.split_is_disjoint, processing.openai_format, processing.no_secrets_in_prompts]


def materialize(assets, selection=None, resources=None, **kwargs):
    resources = {"fine_tuning": FineTuningResource(backend="local", base_model=TINY_BASE, max_seq_len=2048),
                 **(resources or {})}
    return dg.materialize(assets, selection=selection, resources=resources, **kwargs)


def metadata(result, *key):
    [event] = [e for e in result.get_asset_materialization_events()
               if e.asset_key == dg.AssetKey(["finetune", *key])][:1]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_split_is_stable_disjoint_and_order_free():
    pairs = [{"issue_id": i} for i in range(2000)]
    sides = split_pairs(pairs, 0.2)
    assert set(p["issue_id"] for p in sides[TRAIN]).isdisjoint(p["issue_id"] for p in sides[VALIDATION])
    assert len(sides[TRAIN]) + len(sides[VALIDATION]) == 2000
    assert 300 < len(sides[VALIDATION]) < 500
    shuffled = split_pairs(list(reversed(pairs[:500])), 0.2)  # another order, another "partition"
    assert ({p["issue_id"] for p in shuffled[VALIDATION]}
            == {p["issue_id"] for p in sides[VALIDATION] if p["issue_id"] < 500})
    assert split_of(12345, 0.2) == split_of("12345", 0.2)  # the id, not its type, decides
    with pytest.raises(ValueError):
        split_of(1, 1.5)


def test_ingestion_to_prompts(github_export, registry_with_base, instance):
    result = materialize(DATA_ASSETS, instance=instance, tags=RANGE)
    assert result.success

    issues = metadata(result, "github_issues")
    assert issues["mode"] == "export" and issues["issues"] == 26 and issues["months"].count("2026") == 4

    pairs = metadata(result, "qa_pairs")
    assert pairs["pairs"] == 22  # 20 good + the dark-mode issue + the repeat (dropped later, across months)
    # The bot-only issue counts twice: its bot reply is skipped, then it has no answer left.
    assert (pairs["no_answer"], pairs["bot_replies"], pairs["empty_body"], pairs["pull_requests"]) == (2, 1, 1, 1)
    assert pairs["empty_replies"] == 1
    months = {row.data["month"]: row.data["pairs"] for row in pairs["by_month"].records}
    assert months == {"2026-01": 10, "2026-02": 0, "2026-03": 12, "2026-04": 0}
    assert ingestion.pairs_path("2026-02-01").read_text() == ""  # an empty month is an empty partition

    split = metadata(result, "train_validation_split")
    assert split["pairs"] == 21 and split["duplicates_across_months"] == 1
    assert split["train"] + split["validation"] == 21 and split["validation"] >= 1

    prompts = metadata(result, "prompts")
    assert prompts["train_examples"] == split["train"] and prompts["too_long"] == prompts["no_sentence_to_learn"] == 0
    line = json.loads(config.prompts_path(TRAIN).read_text().splitlines()[0])
    system, user, assistant = line["messages"]
    from reference_arch.common.grounded_prompt import INSTRUCTIONS

    assert system == {"role": "system", "content": INSTRUCTIONS}  # the RAG answer's own prompt
    assert user["role"] == "user" and user["content"].startswith("Sources:\n\n[1] Reply to: How to set")
    assert "\n\nQuestion: How to set" in user["content"] and user["content"].count("Reply to: ") == 3
    # the maintainer's reply, its opening "Great question!" and the quote of the question left out
    assert assistant["weight"] == 1 and re.fullmatch(r"Set \w+ in widgets\.toml\. \[\d\]",
                                                     assistant["content"]), assistant["content"]
    cited = int(re.search(r"\[(\d)\]", assistant["content"]).group(1))
    own = user["content"].split("Question: ")[1].split("\n")[0]  # the issue's title
    assert f"[{cited}] Reply to: {own}" in user["content"]  # the citation names the reply that answered it
    sources = [json.loads(line) for line in config.sources_path().read_text().splitlines()]
    assert len(sources) == prompts["validation_examples"] and all(len(s) == 3 for s in sources)

    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert checks["split_is_disjoint"].passed and checks["openai_format"].passed

    # Re-running is stable: every issue stays on its side.
    before = config.split_path().read_text()
    assert materialize(DATA_ASSETS, instance=instance, tags=RANGE).success
    assert config.split_path().read_text() == before


def test_too_few_examples_fail_before_anything_is_written(tmp_path, monkeypatch, registry_with_base, instance):
    from reference_arch_tests.finetune.conftest import write_tiny_export

    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(write_tiny_export(tmp_path / "small", good=4)))
    result = materialize(DATA_ASSETS, instance=instance, tags=RANGE, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "training examples" in failure.step_failure_data.error.message
    assert "at least 10" in failure.step_failure_data.error.message
    assert not config.prompts_path(TRAIN).exists()


def test_empty_month_materializes_an_empty_partition(github_export, tmp_home, instance):
    result = materialize([ingestion.github_issues, ingestion.qa_pairs], instance=instance,
                         partition_key="2026-02-01")
    assert result.success
    assert metadata(result, "github_issues")["issues"] == 0
    assert metadata(result, "qa_pairs")["pairs"] == 0


def test_empty_export_is_an_empty_source(tmp_path, tmp_home, instance, monkeypatch):
    (tmp_path / "empty").mkdir()  # a user's export with nothing in it yet
    monkeypatch.setenv("REFERENCE_ARCH_GITHUB_EXPORT", str(tmp_path / "empty"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    result = materialize([ingestion.github_issues, ingestion.qa_pairs], instance=instance, partition_key="2026-02-01")
    assert result.success
    assert metadata(result, "github_issues")["issues"] == 0 and metadata(result, "qa_pairs")["pairs"] == 0


def test_format_rules():
    from reference_arch.finetune.chat_format import chat_example, check_examples, tiktoken_counter

    counter = tiktoken_counter("gpt-4o-mini-2024-07-18")  # offline: the UTF-8 byte bound
    good = [chat_example(f"question {i}", f"answer {i}") for i in range(10)]
    assert check_examples(good, counter, 65_536).ok
    bad = good[:9] + [
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "wizard", "content": "q"}, {"role": "assistant", "content": " ", "weight": 2}]},
        {"nothing": []},
        chat_example("q" * 500, "a"),
    ]
    report = check_examples(bad, counter, 200)
    assert not report.ok
    assert report.errors == {"no_assistant_message": 1, "unrecognized_role": 1, "empty_content": 1,
                             "invalid_weight": 1, "missing_messages": 1, "too_many_tokens": 1}
    assert check_examples(good[:3], counter, 65_536).errors == {"too_few_examples": 1}


def test_secrets_and_personal_data_are_masked_in_pairs_and_prompt_files(github_export, registry_with_base, instance):
    """A GitHub issue and its maintainer's answer carrying fake tokens, an e-mail address and a phone number:
    masked in the month's pairs and in the prompt files, kept in the warehouse; the blocking check fails on
    a file holding one."""
    import duckdb

    from reference_arch_tests.fake_secrets import GITHUB_TEXT, GITHUB_TOKEN, RAW_VALUES, SLACK_TEXT

    folder = github_export / "acme" / "widgets"
    issues, comments = (json.loads((folder / name).read_text()) for name in ("issues.json", "comments.json"))
    issues.append({**issues[0], "id": 5001, "number": 99, "title": "Push refused", "body": GITHUB_TEXT,
                   "created_at": "2026-01-15T08:00:00Z", "html_url": "https://github.com/acme/widgets/issues/99"})
    comments.append({**comments[-1], "id": 5002, "body": f"Rotate it. {SLACK_TEXT}",
                     "user": {"login": "ada", "type": "User"}, "author_association": "OWNER",
                     "created_at": "2026-01-15T09:00:00Z", "issue_url": "https://api.github.com/repos/acme/widgets/issues/99"})
    (folder / "issues.json").write_text(json.dumps(issues))
    (folder / "comments.json").write_text(json.dumps(comments))

    room = {"fine_tuning": FineTuningResource(backend="local", base_model=TINY_BASE, max_seq_len=2048)}
    result = materialize(DATA_ASSETS, instance=instance, tags=RANGE, resources=room)
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_secrets_in_prompts"]

    with duckdb.connect(str(ingestion.warehouse_path()), read_only=True) as con:  # the raw text stays
        assert con.execute("select count(*) from github.issues where body like ?", [f"%{GITHUB_TOKEN}%"]).fetchone()[0] == 1
    [pair] = [json.loads(line) for line in ingestion.pairs_path("2026-01-01").read_text().splitlines()
              if json.loads(line)["number"] == 99]
    assert pair["question"].startswith("Push refused\n\nPushing with https://deploy:[SECRET:basic_auth_credentials]@")
    assert pair["answer"] == ("Rotate it. My CI token is [SECRET:slack_token], reach me at [EMAIL] or [PHONE].")
    files = config.prompts_path(TRAIN).read_text() + config.prompts_path(VALIDATION).read_text()
    assert not [value for value in RAW_VALUES if value in files]
    assert "[SECRET:github_token]" in files and "[SECRET:slack_token]" in files

    pairs = metadata(result, "qa_pairs")
    assert pairs["redacted/acme/widgets/secret:github_token"] == 1 and pairs["redacted/acme/widgets/email"] == 2
    assert pairs["redacted/total"] == 8
    prompts = metadata(result, "prompts")
    # the reply is a source of its own example and of others' (as another issue's reply): counted where it shows
    assert prompts["redacted/acme/widgets/secret:slack_token"] == files.count("[SECRET:slack_token]") >= 1
    assert prompts["redacted/acme/widgets/secret:github_token"] == files.count("[SECRET:github_token]") >= 1

    # A file holding a token (written by hand, or before redaction): the check fails and blocks training.
    with config.prompts_path(TRAIN).open("a") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": f"my token {GITHUB_TOKEN}"},
                                              {"role": "assistant", "content": "ok", "weight": 1}]}) + "\n")
    rerun = materialize(DATA_ASSETS, instance=instance, raise_on_error=False, resources=room,
                        selection=dg.AssetSelection.checks(processing.no_secrets_in_prompts))
    [evaluation] = rerun.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["found/secret:github_token"].value == 1
