"""Ingestion: GitHub issues and comments by month, then the month's question/answer pairs.

``finetune/github_issues`` loads the issues created in the partition's months (and their comments)
with the shared dlt source into DuckDB under the project home: the API when ``GITHUB_TOKEN`` and
``REFERENCE_ARCH_GITHUB_REPOS`` are set, the local export otherwise. ``finetune/qa_pairs`` turns
each month into pairs, one JSONL file per month, so an empty month is an empty file and a month
re-run replaces only its own file. Both take a whole range of months in one run.

Months loaded at once (the multiprocess executor, several runs) share the DuckDB file and the dlt
pipeline's working folder: the pipeline is built and run, and the file read, under one file lock
(``common/warehouse_lock.py``), so the second load waits for the first.
"""


import contextlib
import os
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg

from reference_arch.common import settings
from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.common.warehouse_lock import warehouse_lock
from reference_arch.finetune.config import finetune_dir

REPOS_ENV = "REFERENCE_ARCH_GITHUB_REPOS"  # named in messages
# Months by issue creation date; the current month is included (it fills up until it ends).
MONTHLY = dg.MonthlyPartitionsDefinition(start_date=settings.value("finetune_start").isoformat(), end_offset=1)
DATASET = "github"
# Single-run backfills (one run loads a range of months) are beta in Dagster 1.13.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def warehouse_path() -> Path:
    return finetune_dir() / "warehouse.duckdb"  # not "github.duckdb": a catalog named like the schema is ambiguous


@contextlib.contextmanager
def locked():
    """Hold the warehouse's lock across processes: build and run the dlt pipeline, and read the file, under it;
    a damaged warehouse fails in one line, before a load writes into it (``common/warehouse_damage``)."""
    from reference_arch.common.warehouse_damage import guarded

    with warehouse_lock(finetune_dir()), guarded(str(warehouse_path()), damaged):
        yield


def damaged(cause: str):
    """The one line for this location's damaged warehouse (``warehouse_damage.damaged``)."""
    import shlex

    from reference_arch.common.settings import dlt_pipelines_dir
    from reference_arch.common.warehouse_damage import damaged as damage_failure

    return damage_failure(str(warehouse_path()), cause, [f"{shlex.quote(dlt_pipelines_dir())}/finetune_github"],
                          "finetune")


def pairs_path(month: str) -> Path:
    return finetune_dir("qa_pairs") / f"{month}.jsonl"


def configured_repos() -> list[str]:
    return list(settings.value("github_repos") or ())


def load_github(since: datetime, until: datetime, log) -> dict:
    """Run the dlt pipeline for issues created in ``[since, until)``; returns what it loaded and skipped."""
    import dlt

    from reference_arch.sources.export_files import SkipStats
    from reference_arch.sources.github import github_source
    from reference_arch.common.settings import dlt_pipelines_dir

    token, repos = os.environ.get("GITHUB_TOKEN"), configured_repos()
    if token and not repos:
        raise dg.Failure(f"GITHUB_TOKEN is set but no repository is named: set {REPOS_ENV}=owner/name[,owner/name] "
                         "(or unset GITHUB_TOKEN to read the local export)")
    stats = SkipStats()
    try:
        source = github_source(repos or None, since=since, until=until, token=token, window_on="created_at",
                               stats=stats)
        with locked():  # building the pipeline touches the working folder another month's load may be using
            pipeline = dlt.pipeline(pipeline_name="finetune_github", pipelines_dir=dlt_pipelines_dir(),
                                    destination=dlt.destinations.duckdb(str(warehouse_path())), dataset_name=DATASET)
            info = pipeline.run(source)
    except Exception as err:  # dlt wraps the source's errors: surface the root cause
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, (FileNotFoundError, ValueError)):
            raise dg.Failure(f"cannot read GitHub issues: {cause}") from err
        raise
    log.info(str(info))
    return {"mode": "api" if token else "export", "skipped": stats.as_metadata()}


def read_window(since: datetime, until: datetime) -> tuple[list[dict], list[dict]]:
    """Issues created in ``[since, until)`` and their comments, as the pair builder wants them."""
    with locked():  # a load in another process holds the file for writing: wait for it
        if not warehouse_path().exists():
            return [], []
        return _read_window(since, until)


def _read_window(since: datetime, until: datetime) -> tuple[list[dict], list[dict]]:
    import duckdb

    with duckdb.connect(str(warehouse_path()), read_only=True) as con:
        tables = {row[0] for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [DATASET]).fetchall()}
        if "issues" not in tables:
            return [], []
        issue_rows = con.execute(
            f"""select id, number, repo, title, body, created_at, html_url, is_pull_request
                from {DATASET}.issues where created_at >= ? and created_at < ? order by created_at, id""",
            [since, until]).fetchall()
        issues = [dict(zip(("id", "number", "repo", "title", "body", "created_at", "url", "is_pull_request"), r))
                  for r in issue_rows]
        comments: list[dict] = []
        if issues and "comments" in tables:
            comment_rows = con.execute(
                f"""select c.issue_id, c.body, c.created_at, c.user_login, c.user_type, c.author_association
                    from {DATASET}.comments c join {DATASET}.issues i on c.issue_id = i.id
                    where i.created_at >= ? and i.created_at < ?""", [since, until]).fetchall()
            comments = [dict(zip(("issue_id", "body", "created_at", "author", "author_type", "author_association"),
                                 r)) for r in comment_rows]
    return issues, comments


@dg.asset(
    **asset_defaults("finetune"),
    partitions_def=MONTHLY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"dlt", "duckdb", "github"},
    description="GitHub issues created in the month and their comments, loaded with the shared dlt GitHub "
                "source into DuckDB (the API with GITHUB_TOKEN and REFERENCE_ARCH_GITHUB_REPOS, else the export).",
)
def github_issues(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    window = context.partition_time_window
    loaded = load_github(window.start, window.end, context.log)
    issues, comments = read_window(window.start, window.end)
    return dg.MaterializeResult(metadata={
        "months": dg.MetadataValue.text(", ".join(context.partition_keys)),
        "mode": loaded["mode"],
        "issues": len(issues),
        "comments": len(comments),
        **loaded["skipped"],
        "warehouse": dg.MetadataValue.path(str(warehouse_path())),
    })


@dg.asset(
    **asset_defaults("finetune"),
    partitions_def=MONTHLY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[github_issues],
    kinds={"python", "duckdb"},
    description="Question/answer pairs of the month: question = issue title + body, answer = the first reply "
                "by an OWNER, MEMBER or COLLABORATOR (bots excluded); cleaned, de-duplicated, filters counted; "
                "secrets and personal data masked with typed placeholders (the warehouse keeps the raw text).",
)
def qa_pairs(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from reference_arch.common.redaction import counts_metadata, redactor
    from reference_arch.finetune.jsonl import write_jsonl
    from reference_arch.finetune.qa import build_pairs, redact_pairs

    try:
        masker = redactor()
    except ValueError as err:
        raise dg.Failure(f"cannot mask the pairs: {err}") from None
    totals: Counter = Counter()
    masked: dict[str, Counter] = {}
    by_month, all_pairs = [], []
    for month in context.partition_keys:
        window = MONTHLY.time_window_for_partition_key(month)
        pairs, counts = build_pairs(*read_window(window.start, window.end))
        pairs = redact_pairs(pairs, masker, masked)
        write_jsonl(pairs_path(month), pairs)
        totals.update(counts)
        all_pairs += pairs
        mean_answer = sum(len(p["answer"]) for p in pairs) / len(pairs) if pairs else 0.0
        by_month.append({"month": month[:7], "issues": counts["issues"], "pairs": len(pairs),
                         "no_answer": counts["no_answer"], "bot_replies": counts["bot_replies"],
                         "empty_body": counts["empty_body"], "mean_answer_chars": round(mean_answer, 1)})
        context.log.info(f"{month[:7]}: {counts['issues']} issues -> {len(pairs)} pairs")
    count_keys = ("issues", "pairs", "pull_requests", "empty_body", "empty_replies", "bot_replies", "no_answer",
                  "duplicates", "cleaned")
    return dg.MaterializeResult(metadata={
        **{key: totals[key] for key in count_keys},
        **counts_metadata(masked), "redaction": masker.fingerprint(),
        "by_month": table(by_month, ["month", *((c, "int") for c in ("issues", "pairs", "no_answer", "bot_replies",
                                                                     "empty_body")), ("mean_answer_chars", "float")]),
        "sample": table([{**p, "issue": f"{p['repo']}#{p['number']}", "answered_by": p["answer_author"]}
                         for p in all_pairs[:10]], ["issue", "question", "answer", "answered_by"], max_chars=160),
    })
