"""Silver and gold's per-day tables in one step: the data flows in memory from layer to layer.

Each layer still commits its own tables and has its own asset and checks. The step is
subsettable: a layer re-run alone (from the UI, an automation condition, a test) reads its input
from Iceberg (``RunTables``), which is exactly what a whole run would have handed it.
A check asked for without its asset validates what Iceberg holds.

Checks are evaluated day by day (``DayChecks``). Dagster's ``blocking`` acts between steps only,
so a failed blocking check of silver is enforced here: gold is not built from that silver. Either
way Dagster then fails the step, naming the check, and nothing downstream runs.
"""


from collections.abc import Iterator

import dagster as dg

from packetx_lakehouse.defs.checks import DayChecks
from packetx_lakehouse.defs.conventions import asset_key, daily_step
from packetx_lakehouse.defs.gold import daily
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import (
    DeviceTimezonesResource,
    IcebergCatalogResource,
)
from packetx_lakehouse.defs.silver import assets as silver
from packetx_lakehouse.defs.tables import RunTables, redo_when_stale, split_days
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_PACKETS_FACT,
    SILVER_PACKETS,
)
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse.lib.transform.checks import KB_COLUMNS, ROW_COLUMNS, live_kb, live_rows
from packetx_lakehouse.lib.transform.silver import to_silver
from packetx_lakehouse.lib.transform.upgrades import upgrade_row_grain_fact

Event = dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation


def transform_assets(
    partitions: dg.DailyPartitionsDefinition, *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """Silver plus every per-day gold table, over ``partitions``."""

    @dg.multi_asset(
        name="silver_and_gold",
        specs=[silver.silver_spec(), *daily.gold_daily_specs()],
        check_specs=[*silver.silver_check_specs(), *daily.gold_daily_check_specs()],
        can_subset=True,
        **daily_step(partitions, retry_policy=retry_policy),
    )
    @redo_when_stale
    def silver_and_gold(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, device_timezones: DeviceTimezonesResource
    ) -> Iterator[Event]:
        tables = RunTables(iceberg.load(), partition_dates(context))
        checks = DayChecks(context)
        yield from _silver(context, tables, device_timezones, checks)
        if checks.blocked("gold is not built from this silver and nothing downstream runs"):
            return
        yield from _gold(context, tables, device_timezones, checks)
        checks.blocked("nothing downstream of gold (anomalies, dimensions, serving) runs")

    return silver_and_gold


def _checks_of(context: dg.AssetExecutionContext, key: dg.AssetKey) -> set[str]:
    return {check.name for check in context.selected_asset_check_keys if check.asset_key == key}


def _silver(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks
) -> Iterator[Event]:
    selected = _checks_of(context, silver.SILVER_PACKETS_KEY)
    build = silver.SILVER_PACKETS_KEY in context.selected_asset_keys
    if not build and not selected:
        return
    accounting = None
    if build or silver.ROWS_CONSERVED in selected:
        # Without a build, the same transform of the stored bronze gives the stored silver's accounting.
        accounting = to_silver(tables.get(BRONZE_PACKETS), zones.zones, zones.default)
        tables.forget(BRONZE_PACKETS)
    if build:
        # Silver carries the source version of the bronze it was built from.
        yield tables.commit(context, SILVER_PACKETS, accounting.table, generations=tables.generations(BRONZE_PACKETS),
                            per_day=lambda day, rows: silver.silver_day_metadata(accounting, day, rows))
    for day, stored in tables.by_day(SILVER_PACKETS).items():
        if silver.ROWS_CONSERVED in selected:
            yield from checks.evaluate(day, silver.rows_conserved(accounting, day, stored.num_rows))
        if "kb_valid" in selected:
            yield from checks.evaluate(day, silver.kb_valid(stored))
        if "unique_key" in selected:
            yield from checks.evaluate(day, silver.unique_key(stored))


def _gold(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks
) -> Iterator[Event]:
    build = [t for t in GOLD_DAILY_TABLES if asset_key(t) in context.selected_asset_keys]
    selected = {t: _checks_of(context, asset_key(t)) for t in GOLD_DAILY_TABLES}
    if not build and not any(selected.values()):
        return
    upgraded = upgrade_row_grain_fact(tables.catalog)
    if upgraded is not None:
        context.log.info(f"{GOLD_PACKETS_FACT.identifier} upgraded to the hourly grain: {upgraded} rows")
    silver_rows = tables.get(SILVER_PACKETS)
    silver_days = split_days(silver_rows, tables.days)
    silver_kb = {day: live_kb(rows) for day, rows in silver_days.items()}
    silver_live_rows = {day: live_rows(rows) for day, rows in silver_days.items()}
    del silver_days
    if build:
        built = gold.build_daily_tables(silver_rows)
        tables.forget(SILVER_PACKETS)
        for table_def in build:
            yield tables.commit(context, table_def, built[table_def], generations=tables.generations(SILVER_PACKETS))
    del silver_rows
    for table_def in GOLD_DAILY_TABLES:
        if "unique_key" in selected[table_def]:
            for day, rows in tables.by_day(table_def).items():
                yield from checks.evaluate(day, daily.unique_key(table_def, rows))
    if "kb_valid" in selected[GOLD_DAILY_USER_BANDWIDTH]:
        for day, rows in tables.by_day(GOLD_DAILY_USER_BANDWIDTH).items():
            yield from checks.evaluate(day, daily.kb_valid(rows))
    if daily.KB_CONSERVED in selected[GOLD_DAILY_USER_BANDWIDTH]:
        by_day = {t: tables.by_day(t) for t in KB_COLUMNS}
        for day in tables.days:
            yield from checks.evaluate(day, daily.kb_conserved(silver_kb[day], {t: by_day[t][day] for t in KB_COLUMNS}))
    if daily.ROWS_CONSERVED in selected[GOLD_PACKETS_FACT]:
        by_day = {t: tables.by_day(t) for t in ROW_COLUMNS}
        for day in tables.days:
            yield from checks.evaluate(day, daily.rows_conserved(silver_live_rows[day],
                                                                 {t: by_day[t][day] for t in ROW_COLUMNS}))
    if daily.HOURS_ON_ONE_DAY in selected[GOLD_HOURLY_BANDWIDTH]:
        results = daily.hours_on_one_day(tables.table(GOLD_HOURLY_BANDWIDTH), tables.by_day(GOLD_HOURLY_BANDWIDTH),
                                         zones.zones, zones.default)
        for day, result in results.items():
            yield from checks.evaluate(day, result)
