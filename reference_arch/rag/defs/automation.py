"""Keeping the index fresh: a daily schedule, a GitHub polling sensor, a docs-folder sensor, and
declarative automation for everything downstream of ingestion.

- ``rag_daily_schedule`` loads yesterday's GitHub and Slack partition at 01:00 UTC.
- ``rag_github_sensor`` polls for issues updated since its cursor (the newest ``updated_at`` seen; the
  API with ``GITHUB_TOKEN``, else the export) and requests one run over the days they fall on.
- ``rag_docs_sensor`` fingerprints the docs partitions from the files' content hashes (a touched but
  unchanged file triggers nothing; a changed, new or deleted file does), adds new partitions and
  requests a run for each partition whose fingerprint moved, including a folder that vanished
  (re-loading it empty removes its documents). Run keys count each partition's changes, so content
  that returns to an earlier state (an edit reverted) is a new run, not a skipped duplicate.
- ``rag_automation_sensor`` evaluates the processing assets' ``AutomationCondition`` (documents ->
  chunks -> embeddings -> vector index -> retrieval evaluation: each runs after its upstream updates),
  so ingestion runs from any of the above flow into the index and its metrics. ``rag_index_job`` runs
  the same assets explicitly.
All start stopped; turn them on in the UI (Automation tab).
"""

import json
from datetime import timedelta, timezone

import dagster as dg

from reference_arch.rag import config
from reference_arch.rag.defs.evaluation import retrieval_evaluation
from reference_arch.rag.defs.ingestion import DAILY, DOCS_PARTITIONS, docs_assets, github_assets, slack_assets
from reference_arch.rag.defs.processing import chunk_embeddings, chunks, documents
from reference_arch.rag.defs.index import vector_index

PROCESSING = dg.AssetSelection.assets(documents, chunks, chunk_embeddings, vector_index, retrieval_evaluation)

rag_daily_ingestion_job = dg.define_asset_job(
    "rag_daily_ingestion_job", selection=dg.AssetSelection.assets(github_assets, slack_assets),
    description="Load a day (or a range of days) of GitHub issues and Slack messages.")
rag_github_job = dg.define_asset_job(
    "rag_github_job", selection=dg.AssetSelection.assets(github_assets),
    description="Load GitHub issues updated in a day or a range of days.")
rag_docs_job = dg.define_asset_job(
    "rag_docs_job", selection=dg.AssetSelection.assets(docs_assets),
    description="Load a docs partition (a package's docstrings or a docs folder).")
rag_index_job = dg.define_asset_job(
    "rag_index_job", selection=PROCESSING,
    description="Documents -> chunks -> embeddings -> vector index -> retrieval evaluation, explicitly.")


@dg.schedule(job=rag_daily_ingestion_job, cron_schedule="0 1 * * *", execution_timezone="UTC",
             description="At 01:00 UTC, load yesterday's GitHub issues and Slack messages.")
def rag_daily_schedule(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time.astimezone(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    return dg.RunRequest(partition_key=day, run_key=f"daily:{day}")


def github_updates_since(cursor: str) -> list[str]:
    """``updated_at`` (ISO, UTC) of the issues updated after ``cursor``, newest first."""
    from reference_arch.sources.export_files import SkipStats, read_records, to_iso
    from reference_arch.sources.github import github_export_path

    token, repos = config.github_token(), config.github_repos()
    found: list[str] = []
    if token and repos:
        from dlt.sources.helpers.rest_client.paginators import HeaderLinkPaginator

        from reference_arch.sources.http_client import rest_client

        client = rest_client(config.github_api_url(), "GitHub", token=token, paginator=HeaderLinkPaginator(),
                             data_selector="$", max_attempts=3)
        for repo in repos:
            params = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100}
            if cursor:
                params["since"] = cursor  # only what changed: usually one short page
            for page in client.paginate(f"/repos/{repo}/issues", params=params):
                found += [to_iso(issue["updated_at"]) for issue in page if issue.get("updated_at")]
    else:
        stats = SkipStats()
        for path in sorted(github_export_path().glob("*/*/issues*.json*")):
            for _, raw in read_records(path, stats):
                if isinstance(raw, dict) and raw.get("updated_at"):
                    try:
                        found.append(to_iso(raw["updated_at"]))
                    except (TypeError, ValueError):
                        continue
    return sorted((u for u in found if u and u > (cursor or "")), reverse=True)


@dg.sensor(job=rag_github_job, minimum_interval_seconds=300,
           description="Polls GitHub (or the export) for issues updated since the cursor and loads their days.")
def rag_github_sensor(context: dg.SensorEvaluationContext):
    from reference_arch.common.settings import SOURCES_ENV, source_enabled

    try:
        if not source_enabled("github"):
            return dg.SkipReason(f"the github source is switched off (see {SOURCES_ENV})")
    except ValueError as err:
        return dg.SkipReason(str(err))
    try:
        updates = github_updates_since(context.cursor or "")
    except Exception as err:  # noqa: BLE001 - an unreachable API skips this tick, the next one retries
        return dg.SkipReason(f"cannot poll GitHub: {err}")
    if not updates:
        return dg.SkipReason(f"no issue updated since {context.cursor or 'the start'}")
    keys = set(DAILY.get_partition_keys())
    days = sorted({u[:10] for u in updates} & keys)
    newest = updates[0]
    if not days:
        return dg.SensorResult(cursor=newest, skip_reason="the updates fall outside the partitions")
    tags = {} if len(days) == 1 else {"dagster/asset_partition_range_start": days[0],
                                      "dagster/asset_partition_range_end": days[-1]}
    request = dg.RunRequest(run_key=f"github:{days[0]}:{days[-1]}:{newest}", tags=tags,
                            partition_key=days[0] if len(days) == 1 else None)
    context.log.info(f"{len(updates)} issues updated since {context.cursor or 'the start'}: days {days[0]}..{days[-1]}")
    return dg.SensorResult(run_requests=[request], cursor=newest)


def _docs_cursor(cursor: str | None) -> tuple[dict[str, str], dict[str, int]]:
    """``({partition: fingerprint}, {partition: changes seen})`` from the docs sensor's cursor (or the
    earlier cursor, the fingerprints alone)."""
    state = json.loads(cursor) if cursor else {}
    if "fingerprints" in state:
        return state["fingerprints"], state.get("changes", {})
    return state, {}


@dg.sensor(job=rag_docs_job, minimum_interval_seconds=60,
           description="Watches REFERENCE_ARCH_DOCS_DIR and the configured packages; requests a run for each docs "
                       "partition whose content changed, appeared or vanished (cursor: content fingerprints).")
def rag_docs_sensor(context: dg.SensorEvaluationContext):
    from reference_arch.sources.docs import partition_fingerprints

    try:
        prints = partition_fingerprints()
    except (FileNotFoundError, ValueError) as err:
        return dg.SkipReason(f"cannot scan the docs: {err}")
    previous, changes = _docs_cursor(context.cursor)
    known = set(context.instance.get_dynamic_partitions(DOCS_PARTITIONS.name))
    new = sorted(set(prints) - known)
    changed = sorted(k for k, fingerprint in prints.items() if previous.get(k) != fingerprint)
    vanished = sorted(k for k in previous if k not in prints and k in known)
    # A run key is used once: a change counter in it makes a return to an earlier content (A -> B -> A)
    # a new key, where the fingerprint alone would repeat the first one's and the daemon would skip it.
    for k in changed + vanished:
        changes[k] = changes.get(k, 0) + 1
    requests = [dg.RunRequest(partition_key=k, run_key=f"{k}:{changes[k]}:{prints[k]}") for k in changed]
    requests += [dg.RunRequest(partition_key=k, run_key=f"{k}:{changes[k]}:gone:{previous[k]}") for k in vanished]
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps({"fingerprints": prints, "changes": changes}, sort_keys=True),
        dynamic_partitions_requests=[DOCS_PARTITIONS.build_add_request(new)] if new else [],
        skip_reason=None if requests else "no docs changed",
    )


rag_automation_sensor = dg.AutomationConditionSensorDefinition(
    "rag_automation_sensor", target=PROCESSING, minimum_interval_seconds=60,
    description="Runs documents -> chunks -> embeddings -> vector index -> retrieval evaluation after "
                "ingestion updates them.")
