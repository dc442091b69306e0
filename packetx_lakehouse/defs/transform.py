"""Silver and gold's per-day tables in one step: the data flows in memory from layer to layer.

Each layer still commits its own tables and has its own asset and checks. The step is
subsettable: a layer re-run alone (from the UI, an automation condition, a test) reads its input
from Iceberg (``RunTables``), which is exactly what a whole run would have handed it.
A check asked for without its asset validates what Iceberg holds.
"""


from collections.abc import Iterator

import dagster as dg

from packetx_lakehouse.defs.conventions import asset_key, daily_step
from packetx_lakehouse.defs.gold import daily
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import (
    DeviceTimezonesResource,
    IcebergCatalogResource,
)
from packetx_lakehouse.defs.silver import assets as silver
from packetx_lakehouse.defs.tables import RunTables, redo_when_stale
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    SILVER_PACKETS,
)
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse.lib.transform.checks import KB_COLUMNS, live_kb
from packetx_lakehouse.lib.transform.silver import to_silver

Event = dg.MaterializeResult | dg.AssetCheckResult


def transform_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    """Silver plus every per-day gold table, over ``partitions``."""

    @dg.multi_asset(
        name="silver_and_gold",
        specs=[silver.silver_spec(), *daily.gold_daily_specs()],
        check_specs=[*silver.silver_check_specs(), *daily.gold_daily_check_specs()],
        can_subset=True,
        **daily_step(partitions),
    )
    @redo_when_stale
    def silver_and_gold(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, device_timezones: DeviceTimezonesResource
    ) -> Iterator[Event]:
        tables = RunTables(iceberg.load(), partition_dates(context))
        yield from _silver(context, tables, device_timezones)
        yield from _gold(context, tables)

    return silver_and_gold


def _checks_of(context: dg.AssetExecutionContext, key: dg.AssetKey) -> set[str]:
    return {check.name for check in context.selected_asset_check_keys if check.asset_key == key}


def _silver(context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource) -> Iterator[Event]:
    checks = _checks_of(context, silver.SILVER_PACKETS_KEY)
    build = silver.SILVER_PACKETS_KEY in context.selected_asset_keys
    if not build and not checks:
        return
    accounting = None
    if build or silver.ROWS_CONSERVED in checks:
        # Without a build, the same transform of the stored bronze gives the stored silver's accounting.
        accounting = to_silver(tables.get(BRONZE_PACKETS), zones.zones, zones.default)
        tables.forget(BRONZE_PACKETS)
    if build:
        # Silver carries the source version of the bronze it was built from.
        yield tables.commit(context, SILVER_PACKETS, accounting.table, generations=tables.generations(BRONZE_PACKETS),
                            **silver.silver_metadata(accounting))
    stored = tables.get(SILVER_PACKETS)
    if silver.ROWS_CONSERVED in checks:
        yield silver.rows_conserved(accounting, stored.num_rows)
    if "kb_valid" in checks:
        yield silver.kb_valid(stored)
    if "unique_key" in checks:
        yield silver.unique_key(stored)


def _gold(context: dg.AssetExecutionContext, tables: RunTables) -> Iterator[Event]:
    build = [t for t in GOLD_DAILY_TABLES if asset_key(t) in context.selected_asset_keys]
    checks = {t: _checks_of(context, asset_key(t)) for t in GOLD_DAILY_TABLES}
    if not build and not any(checks.values()):
        return
    silver_rows = tables.get(SILVER_PACKETS)
    silver_kb = live_kb(silver_rows)
    if build:
        built = gold.build_daily_tables(silver_rows)
        tables.forget(SILVER_PACKETS)
        for table_def in build:
            yield tables.commit(context, table_def, built[table_def], generations=tables.generations(SILVER_PACKETS))
    del silver_rows
    for table_def in GOLD_DAILY_TABLES:
        if "unique_key" in checks[table_def]:
            yield daily.unique_key(table_def, tables.get(table_def))
    if "kb_valid" in checks[GOLD_DAILY_USER_BANDWIDTH]:
        yield daily.kb_valid(tables.get(GOLD_DAILY_USER_BANDWIDTH))
    if daily.KB_CONSERVED in checks[GOLD_DAILY_USER_BANDWIDTH]:
        yield daily.kb_conserved(silver_kb, {t: tables.get(t) for t in KB_COLUMNS})
