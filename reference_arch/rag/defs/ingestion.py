"""Ingestion with dlt: GitHub and Slack by day, docs by package or folder, into the rag warehouse.

Each source is one multi-asset whose assets are the source's dlt resources (``rag/github_issues``,
``rag/github_comments``, ``rag/slack_messages``...). The assets are declared from the resource names
below and run through ``dagster_dlt.DagsterDltResource`` with a translator that gives the same keys,
which is what ``@dlt_assets`` does; declaring them here keeps dlt (0.6 s to import) out of the
location's import. ``test_ingestion.py`` builds the ``@dlt_assets`` version from the real sources and
checks the two agree. The dlt source is built inside the run, from the partition's window.

- GitHub and Slack: daily partitions on update time; a backfill of many days is one run
  (``BackfillPolicy.single_run``) that loads the whole window at once.
- Docs: one dynamic partition per package and per top-level docs folder. ``rag/docs_partitions``
  registers them on the instance (so ``reference-arch materialize rag`` finds them) and the
  ``rag_docs_sensor`` keeps them current as files change.
"""

import warnings
from typing import Iterator

import dagster as dg

from reference_arch.common.locations import asset_defaults
from reference_arch.common.metadata import table
from reference_arch.rag import config

warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# end_offset=1: today is a partition too, so the GitHub sensor can load today's updates as they come.
DAILY = dg.DailyPartitionsDefinition(start_date=config.start_date(), end_offset=1)
DOCS_PARTITIONS = dg.DynamicPartitionsDefinition(name="rag_docs")
SINGLE_RUN = dg.BackfillPolicy.single_run()

# The resources each dlt source yields (see sources/github/, sources/slack/, sources/docs/).
DLT_RESOURCES = {"github": ("issues", "comments"), "slack": ("channels", "users", "messages"), "docs": ("pages",)}
DESCRIPTIONS = {
    ("github", "issues"): "GitHub issues and pull requests (flagged is_pull_request) updated in the partition's "
                          "days, merged on id: the REST API with GITHUB_TOKEN, else the export "
                          "(REFERENCE_ARCH_GITHUB_EXPORT, default: the tidepool sample).",
    ("github", "comments"): "Comments of the issues loaded in the same window, merged on id.",
    ("slack", "channels"): "Slack channels (id, name, topic, purpose), merged on id.",
    ("slack", "users"): "Slack users (names for message authors), merged on id.",
    ("slack", "messages"): "Slack messages and thread replies posted in the partition's days, merged on "
                           "(channel, ts): the Web API with SLACK_BOT_TOKEN, else the workspace export "
                           "(REFERENCE_ARCH_SLACK_EXPORT, default: the tidepool sample).",
    ("docs", "pages"): "Documentation pages of the partition (a package's docstrings or a docs folder's "
                       "Markdown/rst/txt files); loading a partition replaces it, so deleted files disappear.",
}
KINDS = {"github": {"dlt", "duckdb", "github"}, "slack": {"dlt", "duckdb", "slack"}, "docs": {"dlt", "duckdb", "python"}}
DOCS_PARTITIONS_KEY = dg.AssetKey(["rag", "docs_partitions"])


def dlt_asset_key(source: str, resource: str) -> dg.AssetKey:
    return dg.AssetKey(["rag", f"{source}_{resource}"])


def dlt_spec(source: str, resource: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        dlt_asset_key(source, resource), **asset_defaults("rag", prefix=False), kinds=KINDS[source],
        description=DESCRIPTIONS[(source, resource)], deps=[DOCS_PARTITIONS_KEY] if source == "docs" else [],
        metadata={"dlt_source": source, "dlt_resource": resource},
    )


def dlt_specs(source: str) -> list[dg.AssetSpec]:
    return [dlt_spec(source, resource) for resource in DLT_RESOURCES[source]]


def translator():
    """A ``DagsterDltTranslator`` giving each dlt resource the spec declared above."""
    from dagster_dlt import DagsterDltTranslator

    class RagDltTranslator(DagsterDltTranslator):
        def get_asset_spec(self, data):
            default = super().get_asset_spec(data)
            spec = dlt_spec(data.resource.source_name, data.resource.name)
            return spec.replace_attributes(metadata={**default.metadata, **spec.metadata})

    return RagDltTranslator()


def skipped_source(context: dg.AssetExecutionContext, source_name: str) -> Iterator[dg.MaterializeResult]:
    """Results for a source switched off (``REFERENCE_ARCH_RAG_SOURCES``, or other sources configured):
    nothing is read or loaded, and rag/documents leaves its rows out."""
    from reference_arch.common.settings import SOURCES_ENV, enabled_sources

    context.log.info(f"{source_name} is switched off (enabled: {', '.join(sorted(enabled_sources())) or 'none'}; "
                     f"see {SOURCES_ENV}): nothing loaded")
    for key in context.selected_asset_keys:
        yield dg.MaterializeResult(asset_key=key, metadata={"enabled": False, "rows_loaded": 0})


def _enabled(source_name: str) -> bool:
    from reference_arch.common.settings import source_enabled

    try:
        return source_enabled(source_name)
    except ValueError as err:
        raise dg.Failure(description=str(err)) from None


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return err


def run_dlt(context: dg.AssetExecutionContext, source_name: str, dlt_source) -> Iterator[dg.MaterializeResult]:
    """Load ``dlt_source`` with dagster-dlt under the warehouse lock; one result per resource, with the
    counts of what the source skipped as bad input."""
    from dagster_dlt import DagsterDltResource

    from reference_arch.sources.http_client import ApiError
    from reference_arch.rag import warehouse
    from reference_arch.rag.partition_counts import log_partition_counts, partition_row_counts

    try:
        # The pipeline is built under the lock too: building it touches the working folder that
        # another process's load (another partition of this source) is using.
        with warehouse.locked_pipeline(source_name) as pipeline:
            results = list(DagsterDltResource().run(context=context, dlt_source=dlt_source,
                                                    dlt_pipeline=pipeline, dagster_dlt_translator=translator()))
            if _ranged(context):  # each partition's own count, read back before another load can write
                counts = partition_row_counts(pipeline, source_name, list(DLT_RESOURCES[source_name]),
                                              context.partition_keys, context.assets_def.partitions_def)
    except Exception as err:  # dlt wraps the source's errors: report the root cause in one line
        cause = _root_cause(err)
        if isinstance(cause, (FileNotFoundError, ValueError, ApiError)):
            raise dg.Failure(description=f"cannot load {source_name}: {cause}") from err
        raise
    if _ranged(context):
        log_partition_counts(context, counts, lambda resource: dlt_asset_key(source_name, resource))
    stats = dlt_source.skipped
    if stats.total:
        context.log.warning(f"{source_name}: skipped {stats.total} bad records or files: "
                            + "; ".join(stats.examples[:5]))
    for result in results:
        yield dg.MaterializeResult(asset_key=result.asset_key, metadata={
            **run_counts(context, result.metadata or {}), **stats.as_metadata(), "warehouse": warehouse.warehouse_path()
            if warehouse.destination_name() == "duckdb" else warehouse.destination_name()})


def _ranged(context: dg.AssetExecutionContext) -> bool:
    return context.has_partition_key_range and len(context.partition_keys) > 1


def run_counts(context: dg.AssetExecutionContext, metadata: dict) -> dict:
    """dagster-dlt's metadata, with its ``rows_loaded`` (the whole load's count) renamed in a run over a
    range of partitions: Dagster records a ranged run's metadata on every partition of the range and
    cannot record one value per partition (dagster-io/dagster#18123), so there the count is labelled
    as the run's, with the range it covers, and each partition's own ``rows_loaded`` is an
    observation (``partition_counts``). A one-partition run (the schedule's, a sensor's) keeps
    ``rows_loaded``, its own count."""
    if not _ranged(context) or "rows_loaded" not in metadata:
        return dict(metadata)
    counts = {k: v for k, v in metadata.items() if k != "rows_loaded"}
    keys = context.partition_keys
    counts["rows_loaded_in_run"] = metadata["rows_loaded"]
    counts["run_partitions"] = f"{keys[0]} .. {keys[-1]} ({len(keys)} partitions, one load)"
    return counts


@dg.multi_asset(name="rag_github", specs=dlt_specs("github"), partitions_def=DAILY, backfill_policy=SINGLE_RUN,
                description="GitHub issues and comments of the partition's days, loaded with dlt.")
def github_assets(context: dg.AssetExecutionContext):
    from reference_arch.sources.github import github_source

    if not _enabled("github"):
        yield from skipped_source(context, "github")
        return
    token, repos = config.github_token(), config.github_repos()
    if token and not repos:
        raise dg.Failure(description=f"GITHUB_TOKEN is set but no repository is named: set "
                                     f"{config.REPOS_ENV}=owner/name[,owner/name] (or unset GITHUB_TOKEN to read "
                                     "the local export)")
    window = context.partition_time_window  # the whole range in a single-run backfill
    source = github_source(repos or None, since=window.start, until=window.end, token=token,
                           base_url=config.github_api_url())
    yield from run_dlt(context, "github", source)


@dg.multi_asset(name="rag_slack", specs=dlt_specs("slack"), partitions_def=DAILY, backfill_policy=SINGLE_RUN,
                description="Slack channels, users and the partition's messages with their threads, loaded with dlt.")
def slack_assets(context: dg.AssetExecutionContext):
    from reference_arch.sources.slack import slack_source

    if not _enabled("slack"):
        yield from skipped_source(context, "slack")
        return
    window = context.partition_time_window
    source = slack_source(config.slack_channels() or None, token=config.slack_token(), oldest=window.start,
                          latest=window.end, base_url=config.slack_api_url())
    yield from run_dlt(context, "slack", source)


@dg.multi_asset(name="rag_docs", specs=dlt_specs("docs"), partitions_def=DOCS_PARTITIONS, backfill_policy=SINGLE_RUN,
                description="Documentation pages of the partitions (packages' docstrings, docs folders), loaded with dlt.")
def docs_assets(context: dg.AssetExecutionContext):
    from reference_arch.sources.docs import current_fingerprints, docs_source, loaded_fingerprints
    from reference_arch.rag import warehouse

    keys = context.partition_keys
    try:
        now = current_fingerprints(keys)
    except (FileNotFoundError, ValueError) as err:
        raise dg.Failure(description=f"cannot load docs: {err}") from None
    loaded = loaded_fingerprints(warehouse.read_table("docs", "pages", ["partition", "kind", "content_hash"]))
    if all(loaded.get(k) == now[k] for k in keys):
        # Nothing changed since these partitions were loaded: the warehouse already holds them.
        context.log.info(f"docs partitions unchanged since their last load: {', '.join(keys)}")
        for key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key, metadata={"unchanged": True, "rows_loaded": 0})
        return
    yield from run_dlt(context, "docs", docs_source(partitions=keys))


def docs_partition_changes(instance: dg.DagsterInstance) -> tuple[dict[str, str], list[str]]:
    """The docs partitions as they are now (``{key: fingerprint}``) and those the instance lacks."""
    from reference_arch.sources.docs import partition_fingerprints

    try:
        prints = partition_fingerprints()
    except (FileNotFoundError, ValueError) as err:
        raise dg.Failure(description=f"cannot list the docs partitions: {err}") from None
    known = set(instance.get_dynamic_partitions(DOCS_PARTITIONS.name))
    return prints, sorted(set(prints) - known)


@dg.asset(
    **asset_defaults("rag"), kinds={"python"},  # its key is DOCS_PARTITIONS_KEY
    description="The docs partitions: one per package in REFERENCE_ARCH_DOCS_PACKAGES and per top-level folder "
                "of REFERENCE_ARCH_DOCS_DIR, each with a fingerprint of its content; new ones are added to the "
                "instance (the rag_docs_sensor does the same on every tick).",
)
def docs_partitions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    prints, new = docs_partition_changes(context.instance)
    if new:
        context.instance.add_dynamic_partitions(DOCS_PARTITIONS.name, new)
    return dg.MaterializeResult(metadata={
        "partitions": len(prints),
        "added": dg.MetadataValue.text(", ".join(new) or "none"),
        "fingerprints": table([{"partition": k, "fingerprint": v[:80]} for k, v in sorted(prints.items())],
                              ["partition", "fingerprint"]),
    })
