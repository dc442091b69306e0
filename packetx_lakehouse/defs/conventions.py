"""What every asset shares: keys named after their tables, one way to declare a spec, and the
execution options of every daily step (partitions, range backfills, pools)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import dagster as dg

from packetx_lakehouse.defs.metadata import column_lineage, column_schema
from packetx_lakehouse.lib.schemas import RAW_NAMESPACE, STAR_DIMENSIONS, TableDef
from packetx_lakehouse.settings import DEFAULT_BACKFILL_DAYS_PER_RUN

OWNERS = ["team:packetx-data"]
#: A backfill runs up to a month per run: each step handles a range of days in one pass
#: (``PACKETX_BACKFILL_DAYS_PER_RUN`` changes it per deployment, see ``definitions.py``).
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=DEFAULT_BACKFILL_DAYS_PER_RUN)
#: Every Iceberg write holds a slot of this pool (see ``dagster.yaml``).
ICEBERG_POOL = "iceberg_writes"
#: Steps that reach S3, Glue, DynamoDB or a warehouse over the network: a dropped connection,
#: throttling or a brief outage heals by itself. Safe, because every write replaces whole days.
#: Waits about 2, 6 and 14 s (exponential, with jitter) before failing for good.
NETWORK_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
AC = dg.AutomationCondition
#: A day whose parent failed a blocking check (bronze: a file whose rows are not on its date) is
#: built from nothing until the parent is fixed: the parent's materialisation (recorded before its
#: run failed) does not count. The check is partitioned, so this holds for that day only.
NO_PARENT_BLOCKED = ~AC.any_deps_match(
    AC.any_checks_match(AC.check_failed(), blocking_only=True)
).with_label("no parent failed a blocking check")
#: Daily tables follow their parents by themselves, for ANY day: ``eager()`` acts on the latest
#: partition only, so a day re-materialised from the UI a week later would stop where it was clicked.
#: (A run that writes the child too triggers nothing: any_deps_updated ignores updates made by a
#: run that also targets the child, as far as the run records its targets. The landing sensor's and
#: the schedule's requests name all of them, ``DailyTargets``.)
DAILY_AUTOMATION = (AC.eager().without(AC.in_latest_time_window()) & NO_PARENT_BLOCKED).with_label("eager, any day")
#: Wait for parents requested on the same tick: they may run in another run (the unpartitioned
#: dimensions always do), and copying before they finish would serve stale dimensions.
NOT_WITH_PARENTS = ~AC.any_deps_match(AC.will_be_requested()).with_label("no parent requested this tick")


#: Run tag the landing sensor puts on its runs: a refresh takes in only the lines each day's files
#: gained since the last run (``docs/live-refresh.md``). Without it (the daily schedule, backfills,
#: a run from the UI) every day is read and rebuilt whole.
REFRESH_TAG = "packetx/refresh"
NEW_LINES = "new-lines"


def refreshes_new_lines(context: dg.AssetExecutionContext) -> bool:
    """Whether this run is a refresh of new lines (``REFRESH_TAG``) rather than a rebuild of whole days."""
    return context.run.tags.get(REFRESH_TAG) == NEW_LINES


def asset_key(table_def: TableDef) -> dg.AssetKey:
    """An Iceberg table's asset key: ``<namespace>/<table>``, as shown in the UI."""
    return dg.AssetKey([table_def.namespace, table_def.name])


#: The raw archive, bronze's audit trail (not a table): here, since maintenance observes it too.
RAW_ARCHIVE_KEY = dg.AssetKey([RAW_NAMESPACE, "raw_archive"])


def table_spec(
    table_def: TableDef,
    *,
    group: str,
    deps: Iterable[dg.AssetKey | dg.AssetDep] = (),
    automation_condition: dg.AutomationCondition | None = DAILY_AUTOMATION,
    kinds: Iterable[str] = ("iceberg", "polars"),
) -> dg.AssetSpec:
    """The spec of the asset that is one lakehouse table; its description lives with its schema.

    Its columns (types, meanings) and, for derived tables, their lineage are definition metadata:
    static, so the UI shows them before the first run and no materialisation repeats them.
    """
    metadata: dict[str, Any] = {"dagster/table_name": table_def.identifier,
                                "dagster/column_schema": column_schema(table_def)}
    if table_def.derived_from is not None:
        metadata["dagster/column_lineage"] = column_lineage(table_def, asset_key(table_def.derived_from))
    return dg.AssetSpec(
        asset_key(table_def),
        description=table_def.description,
        deps=list(deps),
        group_name=group,
        kinds=set(kinds),
        owners=OWNERS,
        automation_condition=automation_condition,
        metadata=metadata,
    )


#: A serving copy follows each gold day, and never the (unpartitioned) dimensions' updates as such:
#: those touch every day, and would request a copy of all of them.
SERVING_AUTOMATION = (
    (AC.newly_missing() | AC.any_deps_updated().ignore(dg.AssetSelection.assets(*map(asset_key, STAR_DIMENSIONS))))
    .since_last_handled()
    & ~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress() & NOT_WITH_PARENTS & NO_PARENT_BLOCKED
).with_label("each gold day, after the dimensions")


def serving_spec(key: dg.AssetKey, *, deps: Iterable[dg.AssetKey], kinds: Iterable[str], description: str) -> dg.AssetSpec:
    """A copy of gold somewhere people or apps read it: it follows gold by itself."""
    return dg.AssetSpec(key, deps=list(deps), group_name="serving", kinds=set(kinds), owners=OWNERS,
                        automation_condition=SERVING_AUTOMATION, description=description)


def daily_step(
    partitions: dg.PartitionsDefinition,
    *,
    check_specs: Iterable[dg.AssetCheckSpec] = (),
    pool: str = ICEBERG_POOL,
    retry_policy: dg.RetryPolicy | None = None,
) -> dict[str, Any]:
    """``@dg.multi_asset`` options of every daily step: partitions, a month per backfill run, a pool,
    a retry policy where the step reaches the network (``NETWORK_RETRY``), and its checks, each
    partitioned by day like the step.

    A day's check result is that day's (``DayChecks``): the UI shows a check failed while ANY day's
    latest evaluation failed, and a later run of another day cannot turn it green; re-materialising
    the day clears its result until the check runs again.
    """
    return {"partitions_def": partitions, "backfill_policy": BACKFILL_POLICY, "pool": pool,
            "retry_policy": retry_policy, "check_specs": [_by_day(spec, partitions) for spec in check_specs]}


def _by_day(spec: dg.AssetCheckSpec, partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview in Dagster 1.13
        return dg.AssetCheckSpec(spec.name, asset=spec.asset_key, description=spec.description,
                                 additional_deps=spec.additional_deps, blocking=spec.blocking, metadata=spec.metadata,
                                 automation_condition=spec.automation_condition, partitions_def=partitions)
