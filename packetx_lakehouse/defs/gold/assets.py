"""Gold: daily aggregates and the star schema, from silver.

The per-day tables come from one multi-asset that reads the day's silver rows once. Dimensions
are unpartitioned and rebuilt in full from small per-day inputs (``user_ip_hourly``,
``daily_ips``), so their content never depends on the order in which days were loaded.
"""

import datetime as dt

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.defs.checks import problems_check
from packetx_lakehouse.defs.conventions import BACKFILL_POLICY, OWNERS, asset_key, daily_asset_options
from packetx_lakehouse.defs.metadata import iceberg_metadata
from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS, partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource
from packetx_lakehouse.defs.silver.assets import SILVER_PACKETS_KEY
from packetx_lakehouse.lib import gold
from packetx_lakehouse.lib.iceberg import (
    WriteResult,
    ensure_table,
    read_partitions,
    replace_partitions,
    replace_table,
)
from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_IPS,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_DATE_DIM,
    GOLD_DIRECTION_DIM,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_IP_DIM,
    GOLD_PACKETS_FACT,
    GOLD_TOP_EXTERNAL_HOSTS,
    GOLD_TRAFFIC_ANOMALIES,
    GOLD_USER_IP_HOURLY,
    GOLD_USERS_DIM,
    SILVER_PACKETS,
    TableDef,
)


#: The per-day tables built from one read of silver, with what each holds.
DAILY_TABLES: dict[TableDef, str] = {
    GOLD_HOURLY_BANDWIDTH: "KB and minutes seen per user, UTC hour, remote IP and direction.",
    GOLD_DAILY_USER_BANDWIDTH: "Per user and day: total / inbound / outbound / internal / unknown KB, "
    "distinct remote hosts and the peak minute.",
    GOLD_TOP_EXTERNAL_HOSTS: "Per user and day, the top public remote IPs by KB, with rank and share.",
    GOLD_USER_IP_HOURLY: "The user's device IP in every UTC hour: the input users_dim is rebuilt from.",
    GOLD_DAILY_IPS: "Every IP address seen on a day: the input ip_dim is rebuilt from.",
    GOLD_PACKETS_FACT: "Star-schema fact: one row per counted silver row, keyed to the dimensions "
    "(users by durable user_id + point in time).",
}
_BUILDERS = {
    GOLD_HOURLY_BANDWIDTH: gold.hourly_bandwidth,
    GOLD_DAILY_USER_BANDWIDTH: gold.daily_user_bandwidth,
    GOLD_TOP_EXTERNAL_HOSTS: gold.top_external_hosts,
    GOLD_USER_IP_HOURLY: gold.user_ip_hourly,
    GOLD_DAILY_IPS: gold.daily_ips,
}
KB_CONSERVED = "kb_conserved"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(asset_key(t), description=d, deps=[SILVER_PACKETS_KEY], group_name="gold",
                     kinds={"iceberg", "polars"}, automation_condition=dg.AutomationCondition.eager(),
                     owners=OWNERS)
        for t, d in DAILY_TABLES.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(KB_CONSERVED, asset=asset_key(GOLD_DAILY_USER_BANDWIDTH),
                          description="daily, hourly and fact KB all equal silver KB excluding restart replays"),
        *(dg.AssetCheckSpec("unique_key", asset=asset_key(t), description=f"one row per {', '.join(t.key)}")
          for t in DAILY_TABLES),
        dg.AssetCheckSpec("kb_valid", asset=asset_key(GOLD_DAILY_USER_BANDWIDTH),
                          description="no negative, NaN or null KB"),
    ],
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BACKFILL_POLICY,
    pool="iceberg_writes",
)
def gold_daily(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource):
    days = partition_dates(context)
    catalog = iceberg.load()
    silver = read_partitions(ensure_table(catalog, SILVER_PACKETS), values=days)
    live = pc.invert(silver.column("is_restart_replay"))
    silver_kb = pc.sum(pc.filter(silver.column("kb"), live)).as_py() or 0.0
    frame = pl.from_arrow(silver.select(list(gold.BUILDER_COLUMNS)))  # once, not once per builder
    outputs = {table_def: build(frame) for table_def, build in _BUILDERS.items()}
    del frame
    # The fact takes silver's own Arrow columns (no text round trip through Polars).
    outputs[GOLD_PACKETS_FACT] = gold.packets_fact(silver)
    kb_totals = {
        "silver (excluding replays)": silver_kb,
        **{t.name: pc.sum(outputs[t].column(c)).as_py() or 0.0
           for t, c in ((GOLD_DAILY_USER_BANDWIDTH, "total_kb"), (GOLD_HOURLY_BANDWIDTH, "kb"),
                        (GOLD_PACKETS_FACT, "kb"))},
    }
    for table_def, data in outputs.items():
        written = replace_partitions(ensure_table(catalog, table_def), data, values=days,
                                     snapshot_properties={"dagster.run_id": context.run.run_id})
        key = asset_key(table_def)
        yield dg.MaterializeResult(asset_key=key, metadata=iceberg_metadata(table_def.identifier, written, data))
        yield problems_check("unique_key", gold.duplicate_keys(data, table_def.key), key)
    daily = outputs[GOLD_DAILY_USER_BANDWIDTH]
    kb_columns = ["total_kb", "inbound_kb", "outbound_kb", "internal_kb", "unknown_kb"]
    yield problems_check("kb_valid", gold.negative_or_nan(daily, kb_columns), asset_key(GOLD_DAILY_USER_BANDWIDTH))
    mismatched = [f"{name}: {kb:,.3f} KB vs silver {silver_kb:,.3f} KB" for name, kb in kb_totals.items()
                  if abs(kb - silver_kb) > 1e-6 * max(1.0, abs(silver_kb))]
    yield problems_check(KB_CONSERVED, mismatched, asset_key(GOLD_DAILY_USER_BANDWIDTH),
                         {"kb_totals": dg.MetadataValue.json({k: round(v, 3) for k, v in kb_totals.items()})})


#: A day's anomalies are scored against the 7 days before it.
BASELINE_DAYS = 7


@dg.asset(
    key=asset_key(GOLD_TRAFFIC_ANOMALIES),
    deps=[dg.AssetDep(asset_key(GOLD_HOURLY_BANDWIDTH),
                      partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-BASELINE_DAYS))],
    group_name="gold",
    kinds={"iceberg", "polars"},
    description="User-hours whose KB is far above that user's trailing 7-day baseline "
    "(robust z-score on median and MAD), with the score and the baseline. A day loaded late also "
    "re-scores the 7 days after it, whose baseline it is part of.",
    **daily_asset_options(),
)
def traffic_anomalies(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource):
    days = partition_dates(context)
    catalog = iceberg.load()
    baseline = dt.timedelta(days=BASELINE_DAYS)
    window = [days[0] - baseline + dt.timedelta(days=n) for n in range((days[-1] - days[0] + 2 * baseline).days + 1)]
    hourly = read_partitions(ensure_table(catalog, GOLD_HOURLY_BANDWIDTH), values=window)
    # Days after the run whose baseline includes a run day, and which already have data.
    present = set(hourly.column("log_date").unique().to_pylist())
    following = [d for d in window if days[-1] < d and d in present]
    scored = days + following
    found = [gold.traffic_anomalies(hourly, day) for day in scored]
    anomalies = pa.concat_tables(found) if found else GOLD_TRAFFIC_ANOMALIES.schema.empty_table()
    written = replace_partitions(ensure_table(catalog, GOLD_TRAFFIC_ANOMALIES), anomalies, values=scored)
    for day in following:
        context.log_event(dg.AssetMaterialization(
            asset_key=asset_key(GOLD_TRAFFIC_ANOMALIES), partition=day.isoformat(),
            metadata={"reason": f"re-scored: its baseline includes {days[0]}..{days[-1]}"},
        ))
    return dg.MaterializeResult(metadata={
        **iceberg_metadata(GOLD_TRAFFIC_ANOMALIES.identifier, written, anomalies),
        "days_rescored_after_run": ", ".join(d.isoformat() for d in following) or "none",
    })


_DIMENSION_OPTIONS = dict(
    group_name="gold",
    kinds={"iceberg", "polars"},
    # An unpartitioned dimension over daily parents: every day since the start date without data
    # counts as a "missing dep", which would block plain eager() forever.
    automation_condition=dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()),
    pool="iceberg_writes",
    owners=OWNERS,
)


@dg.asset(
    key=asset_key(GOLD_USERS_DIM),
    deps=[asset_key(GOLD_USER_IP_HOURLY)],
    description="Users as a slowly changing dimension (type 2) on the device's local IP: one version "
    "per run of hours with the same IP, contiguous validity, exactly one current row per user.",
    **_DIMENSION_OPTIONS,
)
def users_dim(iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
    catalog = iceberg.load()
    hourly_ips = ensure_table(catalog, GOLD_USER_IP_HOURLY).scan().to_arrow()
    return _replace_dimension(catalog, GOLD_USERS_DIM, gold.users_dim(hourly_ips))


@dg.asset(
    key=asset_key(GOLD_IP_DIM),
    deps=[asset_key(GOLD_DAILY_IPS)],
    description="Every IP address seen, with a stable surrogate key, version, scope and private flag.",
    **_DIMENSION_OPTIONS,
)
def ip_dim(iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
    catalog = iceberg.load()
    ips = ensure_table(catalog, GOLD_DAILY_IPS).scan(selected_fields=("ip",)).to_arrow().column("ip")
    return _replace_dimension(catalog, GOLD_IP_DIM, gold.ip_dim(pc.unique(ips)))


@dg.asset(
    key=asset_key(GOLD_DATE_DIM),
    # Not a data dependency: the calendar grows with the partitions, so it is rebuilt (a no-op
    # when unchanged) whenever new facts land, which keeps every fact's date_key resolvable.
    deps=[asset_key(GOLD_PACKETS_FACT)],
    description="Calendar at hour grain (UTC) covering every partition from the start date to tomorrow.",
    **_DIMENSION_OPTIONS,
)
def date_dim(iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
    first = DAILY_PARTITIONS.start.date() - dt.timedelta(days=1)
    last = dt.date.fromisoformat(DAILY_PARTITIONS.get_last_partition_key()) + dt.timedelta(days=1)
    return _replace_dimension(iceberg.load(), GOLD_DATE_DIM, gold.date_dim(first, last))


@dg.asset(
    key=asset_key(GOLD_DIRECTION_DIM),
    description="The four traffic directions and what each means.",
    **_DIMENSION_OPTIONS,
)
def direction_dim(iceberg: IcebergCatalogResource) -> dg.MaterializeResult:
    return _replace_dimension(iceberg.load(), GOLD_DIRECTION_DIM, gold.direction_dim())


def _replace_dimension(catalog, table_def: TableDef, data: pa.Table) -> dg.MaterializeResult:
    table = ensure_table(catalog, table_def)
    current = table.scan().to_arrow()
    order = [(column, "ascending") for column in table_def.key]
    # A scan returns large strings where the builders make strings: compare values, not types.
    if current.num_rows == data.num_rows and current.cast(data.schema).sort_by(order).equals(data.sort_by(order)):
        # Unchanged: no new snapshot, so re-runs leave the table (and its history) as it was.
        snapshot = table.current_snapshot()
        unchanged = WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location())
        return dg.MaterializeResult(metadata={**iceberg_metadata(table_def.identifier, unchanged, data),
                                              "unchanged": True})
    written = replace_table(table, data)
    return dg.MaterializeResult(metadata=iceberg_metadata(table_def.identifier, written, data))


@dg.asset_check(asset=asset_key(GOLD_USERS_DIM), description="SCD2 validity: one current row per user, "
                "no overlapping or gapped versions, versions numbered in order")
def users_dim_scd2_valid(iceberg: IcebergCatalogResource) -> dg.AssetCheckResult:
    dim = ensure_table(iceberg.load(), GOLD_USERS_DIM).scan().to_arrow()
    return problems_check("users_dim_scd2_valid", gold.scd2_problems(dim))


@dg.asset_check(asset=asset_key(GOLD_IP_DIM), description="one row per ip_key and per ip")
def ip_dim_unique(iceberg: IcebergCatalogResource) -> dg.AssetCheckResult:
    dim = ensure_table(iceberg.load(), GOLD_IP_DIM).scan().to_arrow()
    return problems_check("ip_dim_unique", gold.duplicate_keys(dim, ["ip_key"]) + gold.duplicate_keys(dim, ["ip"]))


GOLD_ASSETS = [gold_daily, traffic_anomalies, users_dim, ip_dim, date_dim, direction_dim]
GOLD_CHECKS = [users_dim_scd2_valid, ip_dim_unique]
