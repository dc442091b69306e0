"""Traffic anomalies: each day's user-hours scored against the 7 days before them.

Scored from ``user_hourly`` (a row per user-hour), so a day's scoring reads a few thousand rows
whatever the traffic. A refresh whose window is at the generations the anomalies were scored
from changes nothing and is not scored again.
"""


import datetime as dt

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from packetx_lakehouse.defs.conventions import asset_key, daily_step, refreshes_new_lines, table_spec
from packetx_lakehouse.defs.metadata import iceberg_metadata, partition_metadata
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource
from packetx_lakehouse.defs.tables import (
    add_day_metadata,
    log_lost_commits,
    redo_when_stale,
    split_days,
)
from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_TRAFFIC_ANOMALIES,
    GOLD_USER_HOURLY,
)
from packetx_lakehouse.lib.storage.iceberg import (
    ensure_table,
    read_partitions,
    replace_partitions,
    source_generations,
)
from packetx_lakehouse.lib.transform import gold

ANOMALIES_KEY = asset_key(GOLD_TRAFFIC_ANOMALIES)
#: A day is re-scored when any day of its window changed, with whatever baseline exists: days
#: without traffic are never materialised, so "no missing parent" (eager) would block the first
#: week of every device forever. Only a day with traffic (its own gold day exists) is scored: a
#: day without any has nothing to score. A day the run that changed its window already re-scored
#: (``days_rescored_after_run``) is not asked again.
ANOMALY_AUTOMATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing()).allow(
        dg.AssetSelection.assets(asset_key(GOLD_DAILY_USER_BANDWIDTH)))
    & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
).with_label("a day with traffic whose window updated")


def anomalies_assets(
    partitions: dg.DailyPartitionsDefinition, *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    baseline = dg.AssetDep(asset_key(GOLD_USER_HOURLY),
                           partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-gold.BASELINE_DAYS))
    # The day's own gold: whether it has traffic to score at all (see ANOMALY_AUTOMATION).
    traffic = asset_key(GOLD_DAILY_USER_BANDWIDTH)

    @dg.multi_asset(name="traffic_anomalies", specs=[table_spec(GOLD_TRAFFIC_ANOMALIES, group="gold", deps=[baseline, traffic],
                                                                 automation_condition=ANOMALY_AUTOMATION)],
                    **daily_step(partitions, retry_policy=retry_policy))
    @redo_when_stale
    def traffic_anomalies(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
        days = partition_dates(context)
        catalog = iceberg.load()
        hourly_table, window = ensure_table(catalog, GOLD_USER_HOURLY), gold.anomaly_window(days)
        anomalies_table = ensure_table(catalog, GOLD_TRAFFIC_ANOMALIES)
        if refreshes_new_lines(context) and source_generations(anomalies_table, window) == source_generations(
                hourly_table, window):
            return dg.MaterializeResult(metadata={"unchanged": True})
        hourly = _user_hours(catalog, hourly_table, window)
        scored = gold.days_to_score(days, hourly.column("log_date").unique().to_pylist())
        found = [gold.traffic_anomalies(hourly, day) for day in scored]
        anomalies = pa.concat_tables(found) if found else GOLD_TRAFFIC_ANOMALIES.schema.empty_table()
        # Each scored day depends on the days before it: the commit carries the source version of
        # every day of the window read, so a stale baseline is refused like stale data.
        written = replace_partitions(anomalies_table, anomalies, values=scored,
                                     generations=source_generations(hourly_table, window),
                                     snapshot_properties={"dagster.run_id": context.run.run_id},
                                     on_retry=log_lost_commits(context, GOLD_TRAFFIC_ANOMALIES))
        following = scored[len(days):]
        by_day = split_days(anomalies, scored)
        shared = iceberg_metadata(GOLD_TRAFFIC_ANOMALIES.identifier, written)
        for day in following:
            context.log_event(dg.AssetMaterialization(
                asset_key=ANOMALIES_KEY, partition=day.isoformat(),
                metadata={**shared, **partition_metadata(by_day[day]),
                          "reason": f"re-scored: its baseline includes {days[0]}..{days[-1]}"},
            ))
        add_day_metadata(context, ANOMALIES_KEY, {day: partition_metadata(by_day[day]) for day in days})
        return dg.MaterializeResult(metadata={
            **shared, "days_rescored_after_run": ", ".join(d.isoformat() for d in following) or "none",
        })

    return traffic_anomalies


def _user_hours(catalog: Catalog, user_hourly: Table, window: list[dt.date]) -> pa.Table:
    """KB per user-hour of the window's days: ``user_hourly``, or for a day built before it existed
    (a lakehouse of an earlier version, not rebuilt since) the same sums of ``hourly_bandwidth``."""
    columns = ["log_date", "user", "hour_utc", "kb"]
    found = read_partitions(user_hourly, values=window).select(columns)
    hourly_bandwidth = ensure_table(catalog, GOLD_HOURLY_BANDWIDTH)
    older = [day for day, generation in source_generations(hourly_bandwidth, window).items()
             if generation and not source_generations(user_hourly, [day])[day]]
    if not older:
        return found
    return pa.concat_tables([found, read_partitions(hourly_bandwidth, values=older).select(columns)])
