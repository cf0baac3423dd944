"""Feedback comments at the door (issue 22.4), through the CLI and through ``feedback_job`` as the UI launches
it: a 1,000,000-character comment is refused in one line before anything is stored, and a comment with bytes
the command line could not decode (lone surrogates) is repaired as a question is, not a crash."""

from __future__ import annotations

import dagster as dg

from reference_arch.cli import main
from reference_arch.common.feedback import read_feedback
from reference_arch_tests.prompt.test_feedback import ask_json, refused

UNDECODABLE = "wrong, see caf\udce9 \udcff"  # what `--comment $'caf\xe9 \xff'` gives Python (surrogateescape)


def test_a_long_comment_is_refused_and_bytes_are_repaired_through_the_cli(registry_with_tiny_model, capsys):
    first, second = ask_json("What is a series?", capsys), ask_json("What is a DataFrame?", capsys)

    line = refused(["feedback", first["run_id"], "up", "--comment", "x" * 1_000_000], capsys)
    assert line == ("error: the comment is 1000000 characters long, over the limit of 2000: say why in fewer words")
    assert read_feedback() == []  # refused before any run: nothing stored
    assert [r.job_name for r in dg.DagsterInstance.get().get_runs()] == ["prompt_question_job"] * 2

    assert main(["feedback", second["run_id"], "down", "--comment", UNDECODABLE]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: the comment held 2 bytes that are not valid UTF-8; they were replaced with U+FFFD"]
    [record] = read_feedback()
    assert record["comment"] == "wrong, see caf\ufffd \ufffd" and record["verdict"] == "down"
    assert main(["feedback", first["run_id"], "down", "--comment", UNDECODABLE.rsplit(" ", 1)[0]]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [  # one byte: it said "1 bytes that are"
        "note: the comment held 1 byte that is not valid UTF-8; it was replaced with U+FFFD"]


def test_feedback_job_bounds_and_repairs_the_comment_as_the_ui_launches_it(registry_with_tiny_model, capsys):
    from reference_arch.cli.runs import first_failure
    from reference_arch.prompt.definitions import defs

    first, second = ask_json("What is a series?", capsys), ask_json("What is a DataFrame?", capsys)
    job = defs.resolve_job_def("feedback_job")
    instance = dg.DagsterInstance.get()

    def judge(run_id: str, verdict: str, comment: str):
        config = {"ops": {"record_feedback": {"config": {"run_id": run_id, "verdict": verdict, "comment": comment}}}}
        return job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)

    long = judge(first["run_id"], "up", "x" * 1_000_000)
    assert not long.success and first_failure(long) == (
        "record_feedback: feedback refused: the comment is 1000000 characters long, over the limit of 2000: "
        "say why in fewer words")
    assert read_feedback() == []
    assert judge(first["run_id"], "up", "short and right").success
    assert judge(second["run_id"], "down", "half an emoji \ud83d").success  # JSON run config may hold "\ud83d"
    assert [r["comment"] for r in read_feedback()] == ["short and right", "half an emoji \ufffd"]


def test_a_secret_masked_in_a_question_or_comment_is_said(registry_with_tiny_model, capsys):
    """A trial pasted a token into a question and saw it vanish from the answer, unexplained."""
    from reference_arch_tests.fake_secrets import GITHUB_TOKEN

    answered = ask_json(f"Why does {GITHUB_TOKEN} fail for user a@example.com?", capsys)
    assert GITHUB_TOKEN not in str(answered)
    # ask_json read the output: ask again for stderr
    assert main(["ask", "prompt", f"Why does {GITHUB_TOKEN} fail?"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "note: the question held 1 secret (github_token); masked before any model, log or the run database saw "
        "it (REFERENCE_ARCH_REDACT)"]
    assert main(["feedback", answered["run_id"], "down", "--comment", f"leaked {GITHUB_TOKEN} and a@example.com"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "note: the comment held 1 email, 1 secret (github_token); masked before any model, log or the run database "
        "saw it (REFERENCE_ARCH_REDACT)"]
    assert GITHUB_TOKEN not in read_feedback()[0]["comment"]
