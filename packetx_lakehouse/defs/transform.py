"""Bronze, silver and gold's per-day tables in one step: the data flows in memory from layer to layer.

Each layer still commits its own tables and has its own assets and checks; one ``RunTables``
is handed from layer to layer, so silver takes the rows bronze just committed from memory (a
backfill's week does not read five million rows back), and gold takes silver's. The step is
subsettable: a layer re-run alone (from the UI, an automation condition, a test) reads its input
from Iceberg (``RunTables``), which is exactly what a whole run would have handed it.
A check asked for without its asset validates what Iceberg holds.

Two ways through it (``docs/live-refresh.md``). A rebuild reads the run's days of bronze whole
and replaces them in every table. A refresh (the landing sensor's runs of one day) takes only
the rows bronze gained since silver's generation, extends silver from its conversations, and
replaces in gold only the hours and user-days those rows touch; each commit continues the
generation the table held, so a refresh computed from a state another run has left is refused
and done again. A refresh that cannot be told from the tables' history (a day rebuilt meanwhile,
a layer left behind further than the kept snapshots reach) is a rebuild; both give the same rows.

Checks are evaluated day by day (``DayChecks``): a rebuild on the rows it wrote, a refresh on the
rows it wrote and on the day's totals every commit keeps in its table's metadata. Dagster's
``blocking`` acts between steps only, so a failed blocking check of silver is enforced here: gold
is not built from that silver, and silver is not built from a bronze that failed one (or from a
day whose file is mostly off its date: bronze stops the step). Either way Dagster then fails the
step, naming the check, and nothing downstream runs.
"""


import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import polars as pl
import pyarrow as pa
from pyiceberg.expressions import And, EqualTo, In

from packetx_lakehouse.defs.bronze import assets as bronze
from packetx_lakehouse.defs.checks import KB_VALID, ROWS_CONSERVED, UNIQUE_KEY, DayChecks, selected_checks
from packetx_lakehouse.defs.conventions import asset_key, daily_step, refreshes_new_lines
from packetx_lakehouse.defs.gold import daily
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import (
    DeviceTimezonesResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)
from packetx_lakehouse.defs.silver import assets as silver
from packetx_lakehouse.defs.tables import RunTables, redo_when_stale, split_days
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_HOURLY_CELLS,
    GOLD_HOURLY_TABLES,
    GOLD_PACKETS_FACT,
    SILVER_CONVERSATIONS,
    SILVER_PACKETS,
    TableDef,
)
from packetx_lakehouse.lib.storage.iceberg import changes_since, recorded_totals, source_generations
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse.lib.transform.checks import KB_COLUMNS, ROW_COLUMNS, kb_totals, live_kb, live_rows, row_totals
from packetx_lakehouse.lib.transform.frames import MICRO_KB
from packetx_lakehouse.lib.transform.silver import SilverChange, extend_silver, to_silver
from packetx_lakehouse.lib.transform.upgrades import upgrade_row_grain_fact

Event = bronze.Event
SILVER_TABLES = (SILVER_PACKETS, SILVER_CONVERSATIONS)
#: The name of the daily step (the op): what a run's steps and a failure message name.
DAILY_STEP = "bronze_to_gold"


def transform_assets(
    partitions: dg.DailyPartitionsDefinition,
    limits: IngestLimits = IngestLimits(),
    *,
    retry_policy: dg.RetryPolicy | None = None,
) -> dg.AssetsDefinition:
    """The raw archive, bronze, silver, its conversations and every per-day gold table, over
    ``partitions``; the landing sensor, schedules and backfills drive it.

    Args:
        partitions: The daily partitions.
        limits: Per-file bounds (from the settings): a file past one is refused and recorded.
        retry_policy: Where storage is reached over the network (AWS).
    """
    bronze_keys = {spec.key for spec in bronze.bronze_specs()}
    layer_keys = {spec.key for spec in [*silver.silver_specs(), *daily.gold_daily_specs()]}

    @dg.multi_asset(
        name=DAILY_STEP,
        specs=[*bronze.bronze_specs(), *silver.silver_specs(), *daily.gold_daily_specs()],
        can_subset=True,
        **daily_step(partitions, check_specs=[*bronze.bronze_check_specs(), *silver.silver_check_specs(),
                                              *daily.gold_daily_check_specs()], retry_policy=retry_policy),
    )
    @redo_when_stale
    def bronze_to_gold(
        context: dg.AssetExecutionContext,
        iceberg: IcebergCatalogResource,
        landing: ObjectStoreResource,
        raw_archive: ObjectStoreResource,
        device_timezones: DeviceTimezonesResource,
    ) -> Iterator[Event]:
        tables = RunTables(iceberg.load(), partition_dates(context))
        checks = DayChecks(context, held_back=True)  # the step is @redo_when_stale
        if bronze_keys & context.selected_asset_keys:
            # Commits bronze and keeps its rows in ``tables``: silver's input, handed over in memory.
            yield from bronze.ingest_bronze(context, tables, checks, landing.store(), raw_archive.store(), partitions,
                                            limits)
            if checks.blocked("silver and gold are not built from this bronze and nothing downstream runs"):
                return
        if not layer_keys & context.selected_asset_keys and all(
                key.asset_key not in layer_keys for key in context.selected_asset_check_keys):
            return  # bronze alone
        refresh = _refresh_plan(context, tables, layer_keys) if refreshes_new_lines(context) else None
        if refresh is not None:
            yield from _refresh(context, tables, device_timezones, checks, refresh)
            return
        yield from _silver(context, tables, device_timezones, checks)
        if checks.blocked("gold is not built from this silver and nothing downstream runs"):
            return
        yield from _gold(context, tables, device_timezones, checks)
        checks.blocked("nothing downstream of gold (anomalies, dimensions, serving) runs")

    return bronze_to_gold


# --- rebuilding whole days ---------------------------------------------------------------------


def _silver(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks
) -> Iterator[Event]:
    selected = selected_checks(context, silver.SILVER_PACKETS_KEY)
    build = silver.SILVER_PACKETS_KEY in context.selected_asset_keys
    if not build and not selected:
        return
    accounting = None
    if build or ROWS_CONSERVED in selected:
        # Without a build, the same transform of the stored bronze gives the stored silver's accounting.
        accounting = to_silver(tables.get(BRONZE_PACKETS), zones.zones, zones.default)
        tables.forget(BRONZE_PACKETS)
    if build:
        # Silver carries the source version of the bronze it was built from.
        generations = tables.generations(BRONZE_PACKETS)
        yield tables.commit(context, SILVER_PACKETS, accounting.table, generations=generations,
                            per_day=lambda day, rows: silver.silver_day_metadata(
                                accounting.input_rows_by_day.get(day, 0),
                                accounting.exact_duplicates_by_day.get(day, 0), rows))
        # Silver's rows and their conversations are one state: the latter is always written with the
        # former (a subset that asked for silver alone gets it written too, reported when asked for).
        conversations = tables.commit(context, SILVER_CONVERSATIONS, accounting.conversations, generations=generations,
                                      report=asset_key(SILVER_CONVERSATIONS) in context.selected_asset_keys)
        if conversations is not None:
            yield conversations
    for day, stored in tables.by_day(SILVER_PACKETS).items():
        if ROWS_CONSERVED in selected:
            yield from checks.evaluate(day, silver.rows_conserved(accounting.input_rows_by_day.get(day, 0),
                                                                  stored.num_rows,
                                                                  accounting.exact_duplicates_by_day.get(day, 0)))
        if KB_VALID in selected:
            yield from checks.evaluate(day, silver.kb_valid(stored))
        if UNIQUE_KEY in selected:
            yield from checks.evaluate(day, silver.unique_key(stored))


def _gold(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks
) -> Iterator[Event]:
    build = [t for t in GOLD_DAILY_TABLES if asset_key(t) in context.selected_asset_keys]
    selected = {t: selected_checks(context, asset_key(t)) for t in GOLD_DAILY_TABLES}
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
        built = gold.build_daily_tables(silver_rows, tables.get(SILVER_CONVERSATIONS))
        tables.forget(SILVER_PACKETS)
        for table_def in build:
            yield tables.commit(context, table_def, built[table_def], generations=tables.generations(SILVER_PACKETS))
    del silver_rows
    written = {t: tables.by_day(t) for t in GOLD_DAILY_TABLES if selected[t] or t in KB_COLUMNS or t in ROW_COLUMNS}
    for day in tables.days:
        of_day = {t: rows[day] for t, rows in written.items()}
        yield from _gold_checks(tables, zones, checks, selected, day, of_day, silver_kb[day], silver_live_rows[day],
                                kb_totals(of_day) if daily.KB_CONSERVED in selected[GOLD_DAILY_USER_BANDWIDTH] else {},
                                row_totals(of_day) if ROWS_CONSERVED in selected[GOLD_PACKETS_FACT] else {})


def _gold_checks(
    tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks, selected: dict[TableDef, set[str]],
    day: dt.date,
    written: dict[TableDef, pa.Table], silver_kb: float, silver_rows: int, gold_kb: dict[str, float],
    gold_rows: dict[str, int],
) -> Iterator[Event]:
    """Gold's checks of one day: keys and KB on the rows written, conservation on the day's totals."""
    for table_def in GOLD_DAILY_TABLES:
        if UNIQUE_KEY in selected[table_def]:
            yield from checks.evaluate(day, daily.unique_key(table_def, written[table_def]))
    if KB_VALID in selected[GOLD_DAILY_USER_BANDWIDTH]:
        yield from checks.evaluate(day, daily.kb_valid(written[GOLD_DAILY_USER_BANDWIDTH]))
    if daily.KB_CONSERVED in selected[GOLD_DAILY_USER_BANDWIDTH]:
        yield from checks.evaluate(day, daily.kb_conserved(silver_kb, gold_kb))
    if ROWS_CONSERVED in selected[GOLD_PACKETS_FACT]:
        yield from checks.evaluate(day, daily.rows_conserved(silver_rows, gold_rows))
    if daily.HOURS_ON_ONE_DAY in selected[GOLD_HOURLY_BANDWIDTH]:
        result = daily.hours_on_one_day(tables.table(GOLD_HOURLY_BANDWIDTH), {day: written[GOLD_HOURLY_BANDWIDTH]},
                                        zones.zones, zones.default)
        yield from checks.evaluate(day, result[day])


# --- refreshing one day with its new lines -----------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Where a refresh of ``day`` starts: the generation each layer holds."""

    day: dt.date
    bronze: int
    silver: int
    gold: int


def _refresh_plan(context: dg.AssetExecutionContext, tables: RunTables, layer_keys: set[dg.AssetKey]) -> _Plan | None:
    """The refresh this run can make, or None for a rebuild: a run of one day, with every silver
    and gold asset selected, whose silver and gold tables each agree on one generation and keep totals."""
    if len(tables.days) != 1 or not layer_keys <= set(context.selected_asset_keys):
        return None
    day = tables.days[0]

    def generation(table_defs: tuple[TableDef, ...]) -> int | None:
        found = {source_generations(tables.table(t), [day])[day] for t in table_defs}
        if len(found) != 1:
            return None
        held = found.pop()
        kept = all(recorded_totals(tables.table(t), day) is not None for t in table_defs)
        return held if held == 0 or kept else None

    bronze = source_generations(tables.table(BRONZE_PACKETS), [day])[day]
    silver_at, gold_at = generation(SILVER_TABLES), generation(GOLD_DAILY_TABLES)
    if silver_at is None or gold_at is None or not gold_at <= silver_at <= bronze:
        context.log.info(f"{day}: rebuilt whole (its silver or gold tables do not agree on a generation)")
        return None
    return _Plan(day, bronze, silver_at, gold_at)


def _refresh(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks,
    plan: _Plan,
) -> Iterator[Event]:
    day, where_day = plan.day, EqualTo("log_date", plan.day.isoformat())
    stored_conversations = tables.read(SILVER_CONVERSATIONS, where_day)
    change, earlier = None, SILVER_PACKETS.schema.empty_table()
    if plan.bronze != plan.silver:
        new = changes_since(tables.table(BRONZE_PACKETS), day, plan.silver)
        if new is None or new.removed.num_rows:
            context.log.info(f"{day}: rebuilt whole (bronze's changes since silver's generation are not all kept)")
            yield from _rebuild(context, tables, zones, checks)
            return
        read: dict[str, pa.Table] = {}

        def earlier_rows(user_days: frozenset[tuple[dt.date, str]]) -> pa.Table:
            users = sorted(user for _, user in user_days)
            read["rows"] = tables.read(SILVER_PACKETS, And(where_day, In("user", users)))
            return read["rows"]

        change = extend_silver(new.added, _of_users(stored_conversations, new.added), earlier_rows, zones.zones,
                               zones.default)
        earlier = read.get("rows", earlier)
    conversations = _updated(stored_conversations, change.conversations if change else None)
    yield from _refresh_silver(context, tables, checks, plan, change, earlier, conversations)
    if checks.blocked("gold is not built from this silver and nothing downstream runs"):
        return
    if plan.gold == plan.silver:
        removed, added = earlier, change.added if change else SILVER_PACKETS.schema.empty_table()
        replaced = change.replaced if change else frozenset()
    else:
        behind = changes_since(tables.table(SILVER_PACKETS), day, plan.gold)
        if behind is None:
            context.log.info(f"{day}: gold rebuilt whole (silver's changes since gold's generation are not all kept)")
            yield from _gold(context, tables, zones, checks)
            checks.blocked("nothing downstream of gold (anomalies, dimensions, serving) runs")
            return
        removed, added = behind.removed, behind.added
        replaced = frozenset(pl.from_arrow(removed.select(["log_date", "user"])).unique().iter_rows())
    yield from _refresh_gold(context, tables, zones, checks, plan, removed, added, replaced, conversations)
    checks.blocked("nothing downstream of gold (anomalies, dimensions, serving) runs")


def _rebuild(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks
) -> Iterator[Event]:
    yield from _silver(context, tables, zones, checks)
    if checks.blocked("gold is not built from this silver and nothing downstream runs"):
        return
    yield from _gold(context, tables, zones, checks)
    checks.blocked("nothing downstream of gold (anomalies, dimensions, serving) runs")


def _of_users(conversations: pa.Table, rows: pa.Table) -> pa.Table:
    users = pl.from_arrow(rows.select(["user"])).unique()
    return pl.from_arrow(conversations).join(users, on="user", how="semi").to_arrow().cast(conversations.schema)


def _updated(stored: pa.Table, changed: pa.Table | None) -> pa.Table:
    """The day's conversations: the stored ones, those of the user-days ``changed`` holds replaced."""
    if changed is None or not changed.num_rows:
        return stored
    users = pl.from_arrow(changed.select(["user"])).unique()
    kept = pl.from_arrow(stored).join(users, on="user", how="anti").to_arrow().cast(stored.schema)
    return pa.concat_tables([kept, changed.cast(stored.schema)])


def _refresh_silver(
    context: dg.AssetExecutionContext, tables: RunTables, checks: DayChecks, plan: _Plan, change: SilverChange | None,
    earlier: pa.Table, conversations: pa.Table,
) -> Iterator[Event]:
    day = plan.day
    bronze_rows = (recorded_totals(tables.table(BRONZE_PACKETS), day) or {}).get("records", 0)  # none yet: 0
    stored_rows, duplicates = _sum(conversations, "rows"), _sum(conversations, "duplicates")
    if change is None:
        yield dg.MaterializeResult(asset_key=silver.SILVER_PACKETS_KEY, metadata={"new_rows": 0})
        yield dg.MaterializeResult(asset_key=asset_key(SILVER_CONVERSATIONS), metadata={"changed_rows": 0})
        added = SILVER_PACKETS.schema.empty_table()
    else:
        added, moves = change.added, ({day: plan.silver}, {day: plan.bronze})
        new_duplicates = change.exact_duplicates_by_day.get(day, 0)
        metadata = lambda _day, rows: silver.silver_day_metadata(change.input_rows_by_day.get(day, 0),  # noqa: E731
                                                                 new_duplicates, rows)
        if change.replaced:
            users = sorted(user for _, user in change.replaced)
            yield tables.replace_where(context, SILVER_PACKETS, added, where=And(EqualTo("log_date", day.isoformat()),
                                                                                In("user", users)),
                                       replaced=earlier, continues=moves[0], generations=moves[1], per_day=metadata,
                                       user_days_read_again=", ".join(users))
        else:
            yield tables.append(context, SILVER_PACKETS, added, continues=moves[0], generations=moves[1],
                                per_day=metadata)
        yield tables.commit(context, SILVER_CONVERSATIONS, conversations, generations=moves[1])
    selected = selected_checks(context, silver.SILVER_PACKETS_KEY)
    if ROWS_CONSERVED in selected:
        yield from checks.evaluate(day, silver.rows_conserved(bronze_rows, stored_rows, duplicates))
    if KB_VALID in selected:
        yield from checks.evaluate(day, silver.kb_valid(added))
    if UNIQUE_KEY in selected:
        yield from checks.evaluate(day, silver.unique_key(added))


def _refresh_gold(
    context: dg.AssetExecutionContext, tables: RunTables, zones: DeviceTimezonesResource, checks: DayChecks,
    plan: _Plan, removed: pa.Table, added: pa.Table, replaced: frozenset[tuple[dt.date, str]], conversations: pa.Table,
) -> Iterator[Event]:
    day = plan.day
    stored_daily = tables.read(GOLD_DAILY_USER_BANDWIDTH, EqualTo("log_date", day.isoformat()))
    selected = {t: selected_checks(context, asset_key(t)) for t in GOLD_DAILY_TABLES}
    if not removed.num_rows and not added.num_rows and plan.gold == plan.bronze:
        # Nothing new: no commit, and the checks judge the day as stored.
        for table_def in GOLD_DAILY_TABLES:
            yield dg.MaterializeResult(asset_key=asset_key(table_def), metadata={"unchanged": True})
        written = {t: t.schema.empty_table() for t in GOLD_DAILY_TABLES} | {GOLD_DAILY_USER_BANDWIDTH: stored_daily}
    else:
        hours = gold.touched_hours(removed, added)
        in_hours = And(EqualTo("log_date", day.isoformat()),
                       In("hour_utc", [h.isoformat() for h in hours["hour_utc"].to_list()]))
        stored_cells = tables.read(GOLD_HOURLY_CELLS, in_hours) if hours.height else GOLD_HOURLY_CELLS.schema.empty_table()
        refreshed = gold.refresh_daily_tables(removed, added, stored_cells, conversations, stored_daily, replaced)
        # What each hourly table holds of those hours: derived from the stored cells, as it was.
        before = gold.hourly_tables(gold.cells_of(stored_cells))
        continues, generations = {day: plan.gold}, {day: plan.bronze}
        for table_def in GOLD_DAILY_TABLES:
            rows = refreshed.tables[table_def]
            if table_def not in GOLD_HOURLY_TABLES:
                yield tables.commit(context, table_def, rows, generations=generations)
            elif hours.height:
                yield tables.replace_where(context, table_def, rows, where=in_hours, replaced=before[table_def],
                                           continues=continues, generations=generations,
                                           hours={day: hours["hour_utc"].to_list()}, hours_replaced=hours.height)
            else:  # silver moved on without a counted row: the generation follows, nothing else
                yield tables.append(context, table_def, rows, continues=continues, generations=generations)
        written = refreshed.tables
    gold_kb = {t.name: (recorded_totals(tables.table(t), day) or {}).get(column, 0) / MICRO_KB
               for t, column in KB_COLUMNS.items() if t in GOLD_HOURLY_TABLES}
    gold_rows = {t.name: (recorded_totals(tables.table(t), day) or {}).get(column, 0)
                 for t, column in ROW_COLUMNS.items() if t in GOLD_HOURLY_TABLES}
    daily_rows = {GOLD_DAILY_USER_BANDWIDTH: written[GOLD_DAILY_USER_BANDWIDTH]}
    gold_kb[GOLD_DAILY_USER_BANDWIDTH.name] = _sum(daily_rows[GOLD_DAILY_USER_BANDWIDTH], "total_kb", micro=True)
    gold_rows[GOLD_DAILY_USER_BANDWIDTH.name] = _sum(daily_rows[GOLD_DAILY_USER_BANDWIDTH], "rows")
    yield from _gold_checks(tables, zones, checks, selected, day, written, _sum(conversations, "live_kb", micro=True),
                            _sum(conversations, "live_rows"), gold_kb, gold_rows)


def _sum(table: pa.Table, column: str, *, micro: bool = False) -> float | int:
    """A column's total; ``micro``: KB summed exactly as micro-KB (what every commit's totals keep)."""
    if micro:
        return (pl.from_arrow(table.select([column]))[column] * MICRO_KB).round().cast(pl.Int64).sum() / MICRO_KB
    return int(pl.from_arrow(table.select([column]))[column].sum() or 0)
