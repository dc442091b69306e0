"""Silver: typed, deduplicated rows in UTC with traffic direction and restart replays flagged."""

import dagster as dg
import pyarrow.compute as pc

from packetx_lakehouse.defs.bronze.assets import BRONZE_PACKETS_KEY
from packetx_lakehouse.defs.checks import problems_check
from packetx_lakehouse.defs.conventions import asset_key, daily_asset_options
from packetx_lakehouse.defs.metadata import iceberg_metadata
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import DeviceTimezonesResource, IcebergCatalogResource
from packetx_lakehouse.lib.gold import duplicate_keys, negative_or_nan
from packetx_lakehouse.lib.iceberg import ensure_table, read_partitions, replace_partitions
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, SILVER_PACKETS
from packetx_lakehouse.lib.silver import to_silver

SILVER_PACKETS_KEY = asset_key(SILVER_PACKETS)


@dg.asset(
    key=SILVER_PACKETS_KEY,
    deps=[BRONZE_PACKETS_KEY],
    group_name="silver",
    kinds={"iceberg", "polars"},
    description="Typed, validated, deduplicated PacketX rows in UTC, partitioned by day and user. "
    "Direction is derived around the user's device IP (PacketX orders each pair as text, so its "
    "'source' is not the sender); restart replays are kept but flagged so gold never counts them.",
    check_specs=[
        dg.AssetCheckSpec("rows_conserved", asset=SILVER_PACKETS_KEY,
                          description="bronze rows = silver rows + exact duplicates removed"),
        dg.AssetCheckSpec("kb_valid", asset=SILVER_PACKETS_KEY, description="no negative, NaN or null KB"),
        dg.AssetCheckSpec("unique_key", asset=SILVER_PACKETS_KEY,
                          description="one row per source file line"),
    ],
    **daily_asset_options(),
)
def silver_packets(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, device_timezones: DeviceTimezonesResource
):
    days = partition_dates(context)
    catalog = iceberg.load()
    bronze = read_partitions(ensure_table(catalog, BRONZE_PACKETS), values=days)
    result = to_silver(bronze, device_timezones.zones, device_timezones.default)
    silver = result.table
    written = replace_partitions(ensure_table(catalog, SILVER_PACKETS), silver, values=days,
                                 snapshot_properties={"dagster.run_id": context.run.run_id})
    live_kb = pc.sum(pc.filter(silver.column("kb"), pc.invert(silver.column("is_restart_replay")))).as_py() or 0.0
    yield dg.MaterializeResult(
        metadata={
            **iceberg_metadata(SILVER_PACKETS.identifier, written, silver),
            "bronze_rows": result.input_rows,
            "exact_duplicates_removed": result.exact_duplicates,
            "restart_replay_rows_flagged": result.restart_replays,
            "kb_excluding_replays": round(live_kb, 3),
        }
    )
    yield dg.AssetCheckResult(
        check_name="rows_conserved",
        passed=result.input_rows == silver.num_rows + result.exact_duplicates,
        metadata={"bronze_rows": result.input_rows, "silver_rows": silver.num_rows,
                  "exact_duplicates": result.exact_duplicates},
    )
    yield problems_check("kb_valid", negative_or_nan(silver, ["kb", "total_kb"]))
    yield problems_check("unique_key", duplicate_keys(silver, SILVER_PACKETS.key))

