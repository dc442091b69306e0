"""Traffic anomalies: each day's user-hours scored against the 7 days before them."""


import dagster as dg
import pyarrow as pa

from packetx_lakehouse.defs.conventions import asset_key, daily_step, table_spec
from packetx_lakehouse.defs.metadata import iceberg_metadata
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource
from packetx_lakehouse.lib.schemas import GOLD_HOURLY_BANDWIDTH, GOLD_TRAFFIC_ANOMALIES
from packetx_lakehouse.defs.tables import redo_when_stale
from packetx_lakehouse.lib.storage.iceberg import (
    ensure_table,
    read_partitions,
    replace_partitions,
    source_generations,
)
from packetx_lakehouse.lib.transform import gold

ANOMALIES_KEY = asset_key(GOLD_TRAFFIC_ANOMALIES)


def anomalies_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    baseline = dg.AssetDep(asset_key(GOLD_HOURLY_BANDWIDTH),
                           partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-gold.BASELINE_DAYS))

    @dg.multi_asset(name="traffic_anomalies", specs=[table_spec(GOLD_TRAFFIC_ANOMALIES, group="gold", deps=[baseline])],
                    **daily_step(partitions))
    @redo_when_stale
    def traffic_anomalies(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
        days = partition_dates(context)
        catalog = iceberg.load()
        hourly_table, window = ensure_table(catalog, GOLD_HOURLY_BANDWIDTH), gold.anomaly_window(days)
        hourly = read_partitions(hourly_table, values=window)
        scored = gold.days_to_score(days, hourly.column("log_date").unique().to_pylist())
        found = [gold.traffic_anomalies(hourly, day) for day in scored]
        anomalies = pa.concat_tables(found) if found else GOLD_TRAFFIC_ANOMALIES.schema.empty_table()
        # Each scored day depends on the days before it: the commit carries the source version of
        # every day of the window read, so a stale baseline is refused like stale data.
        written = replace_partitions(ensure_table(catalog, GOLD_TRAFFIC_ANOMALIES), anomalies, values=scored,
                                     generations=source_generations(hourly_table, window),
                                     snapshot_properties={"dagster.run_id": context.run.run_id})
        following = scored[len(days):]
        for day in following:
            context.log_event(dg.AssetMaterialization(
                asset_key=ANOMALIES_KEY, partition=day.isoformat(),
                metadata={"reason": f"re-scored: its baseline includes {days[0]}..{days[-1]}"},
            ))
        return dg.MaterializeResult(metadata={
            **iceberg_metadata(GOLD_TRAFFIC_ANOMALIES.identifier, written, anomalies),
            "days_rescored_after_run": ", ".join(d.isoformat() for d in following) or "none",
        })

    return traffic_anomalies
