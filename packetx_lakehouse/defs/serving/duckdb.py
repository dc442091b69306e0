"""Serving: the gold tables, the star schema and operational facts in one DuckDB database."""


import datetime as dt
from pathlib import Path

import dagster as dg
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pyiceberg.expressions import And, EqualTo, In
from pyiceberg.table import Table

from packetx_lakehouse.defs.bronze.assets import (
    BRONZE_QUARANTINE_KEY,
    LANDING_PROBLEMS_KEY,
)
from packetx_lakehouse.defs.checks import DayChecks, check_spec, problems_check
from packetx_lakehouse.defs.conventions import asset_key, daily_step, refreshes_new_lines, serving_spec
from packetx_lakehouse.defs.metadata import markdown_preview
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource
from packetx_lakehouse.defs.tables import add_day_metadata, split_days
from packetx_lakehouse.lib.schemas import (
    BRONZE_QUARANTINE,
    FRESHNESS_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_DATE_DIM,
    GOLD_DIRECTION_DIM,
    GOLD_IP_DIM,
    GOLD_SERVED_DAILY,
    GOLD_USERS_DIM,
    LANDING_PROBLEMS,
    STAR_DIMENSIONS,
    STAR_FACT,
)
from packetx_lakehouse.lib.serving import duckdb_store
from packetx_lakehouse.lib.storage.iceberg import (
    ensure_table,
    read_partitions,
    recorded_totals,
    source_generations,
    touched_since,
)
from packetx_lakehouse.lib.transform import checks as checks_lib
from packetx_lakehouse.lib.transform.upgrades import upgrade_row_grain_fact

SERVING_KEY = dg.AssetKey(["serving", "duckdb"])
REFERENTIAL_INTEGRITY = "star_schema_referential_integrity"


def serving_duckdb_assets(
    partitions: dg.DailyPartitionsDefinition, *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """The DuckDB serving copy; it reads Iceberg, so on AWS it reaches S3 and Glue (``retry_policy``)."""
    spec = serving_spec(
        SERVING_KEY,
        deps=[asset_key(t) for t in GOLD_SERVED_DAILY + STAR_DIMENSIONS] + [BRONZE_QUARANTINE_KEY, LANDING_PROBLEMS_KEY],
        kinds={"duckdb"},
        # Markdown in the UI: a code span keeps `<data dir>` from being read as an HTML tag.
        description="DuckDB database `<data dir>/serving/packetx.duckdb` with gold.* (aggregates and star "
        "schema) and ops.* (quarantine, landing problems, partition freshness): query it with "
        "`packetx-lakehouse sql \"<query>\"`.",
    )

    @dg.multi_asset(name="serving_duckdb", specs=[spec],
                    **daily_step(partitions, check_specs=[check_spec(
                        SERVING_KEY, REFERENTIAL_INTEGRITY, "every fact finds its user version, IPs, hour and direction")],
                        pool="duckdb_serving", retry_policy=retry_policy))
    def serving_duckdb(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, duckdb: DuckDBResource):
        days = partition_dates(context)
        catalog = iceberg.load()
        loaded: dict[str, pa.Table] = {}
        Path(duckdb.database).parent.mkdir(parents=True, exist_ok=True)
        with duckdb.get_connection() as con:
            upgrade_row_grain_fact(catalog)
            for table_def in GOLD_SERVED_DAILY:
                loaded[table_def.name] = _serve_days(con, ensure_table(catalog, table_def), f"gold.{table_def.name}",
                                                     days, refreshes_new_lines(context))
            for table_def in STAR_DIMENSIONS:
                loaded[table_def.name] = _serve_whole(con, ensure_table(catalog, table_def), f"gold.{table_def.name}")
            quarantine = read_partitions(ensure_table(catalog, BRONZE_QUARANTINE), values=days)
            duckdb_store.replace_days(con, "ops.quarantine", quarantine.drop_columns(["ingested_at"]), days)
            # Small, and undated problems (bad names) belong to no day: copied whole every time.
            duckdb_store.replace_table(con, "ops.landing_problems", ensure_table(catalog, LANDING_PROBLEMS).scan().to_arrow())
            # Whole: a layer that lags on a day that did not reach serving must still show (the freshness panel).
            duckdb_store.replace_table(con, "ops.partitions", _partition_summary(catalog))
            rows = {name: con.execute(f"SELECT count(*) FROM gold.{name}").fetchone()[0] for name in loaded}
            served = {t.name: dict(con.execute(f"SELECT log_date, count(*) FROM gold.{t.name} WHERE log_date IN "
                                               "(SELECT unnest(?::DATE[])) GROUP BY 1", [days]).fetchall())
                      for t in GOLD_SERVED_DAILY}
        daily = {t.name: split_days(loaded[t.name], days) for t in GOLD_SERVED_DAILY}
        quarantined = split_days(quarantine, days)
        add_day_metadata(context, SERVING_KEY, {day: {
            "dagster/row_count": sum(served[name].get(day, 0) for name in served),
            "rows_served": dg.MetadataValue.json({name: served[name].get(day, 0) for name in served}),
            "rows_copied_by_this_run": dg.MetadataValue.json({name: daily[name][day].num_rows for name in daily}),
            "quarantined_lines": quarantined[day].num_rows,
            "preview": markdown_preview(daily[GOLD_DAILY_USER_BANDWIDTH.name][day].select(
                ["log_date", "user", "total_kb", "inbound_kb", "outbound_kb", "internal_kb"])),
        } for day in days})
        yield dg.MaterializeResult(
            metadata={
                "database": dg.MetadataValue.path(duckdb.database),
                "rows_in_database": dg.MetadataValue.json(rows),
                "dashboard": dg.MetadataValue.md("`packetx-lakehouse dashboard`, then <http://127.0.0.1:8501>"),
            }
        )
        checks = DayChecks(context)
        dimensions = [loaded[t.name] for t in (GOLD_USERS_DIM, GOLD_IP_DIM, GOLD_DATE_DIM, GOLD_DIRECTION_DIM)]
        for day, facts in daily[STAR_FACT.name].items():
            yield from checks.evaluate(day, problems_check(REFERENTIAL_INTEGRITY, checks_lib.orphan_facts(facts, *dimensions),
                                                            SERVING_KEY))

    return serving_duckdb


def _serve_days(con, table: Table, name: str, days: list[dt.date], refresh: bool) -> pa.Table:
    """Copy the run's days of a per-day table; returns the rows copied.

    A refresh copies only what changed since the copy the database holds: the days, or the hours
    of them, the table's commits since then replaced (their summaries say which). Without a copy
    to start from (a first copy, expired snapshots) or for a rebuild, the run's days are copied whole.
    """
    snapshot = table.current_snapshot()
    version = snapshot.snapshot_id if snapshot else None
    schema = table.schema().as_arrow()
    if duckdb_store.columns_differ(con, name, schema.names):
        # Served by an earlier version with other columns (the row-grain fact): every day anew.
        data = table.scan().to_arrow()
        duckdb_store.replace_table(con, name, data, version=version)
        return read_partitions(table, values=days)
    served = duckdb_store.served_version(con, name) if refresh else None
    touched = touched_since(table, served, days) if served is not None else None
    if touched is None:
        data = read_partitions(table, values=days)
        duckdb_store.replace_days(con, name, data, days, version=version)
        return data
    copied = [schema.empty_table()]
    for day, hours in sorted(touched.items()):
        if hours is None:
            data = read_partitions(table, values=[day])
            duckdb_store.replace_days(con, name, data, [day], version=version)
        else:
            stamps = sorted(dt.datetime.fromisoformat(h) for h in hours)
            data = table.scan(row_filter=And(EqualTo("log_date", day.isoformat()), In("hour_utc", sorted(hours)))).to_arrow()
            duckdb_store.replace_days(con, name, data, [day], hours=stamps, version=version)
        copied.append(data)
    if not touched and version != served:
        duckdb_store.replace_days(con, name, schema.empty_table(), [], version=version)
    return pa.concat_tables(copied)


def _serve_whole(con, table: Table, name: str) -> pa.Table:
    """Copy a whole (small) Iceberg table unless the database already holds its current snapshot;
    returns its rows either way. Dimensions change far less often than the days that run."""
    snapshot = table.current_snapshot()
    version = snapshot.snapshot_id if snapshot else None
    if version is not None and duckdb_store.served_version(con, name) == version:
        # As Iceberg types them (DuckDB names the UTC zone "Etc/UTC").
        return con.execute(f"SELECT * FROM {name}").to_arrow_table().cast(table.schema().as_arrow())
    data = table.scan().to_arrow()
    duckdb_store.replace_table(con, name, data, version=version)
    return data


def _partition_summary(catalog) -> pa.Table:
    """Rows per layer and day, from each table's metadata (no data file is read).

    The day totals every commit keeps; a table written by an earlier version, without them, from
    its partition statistics (which read every manifest).
    """
    layers, tables, dates, counts = [], [], [], []
    for layer, table_def in FRESHNESS_TABLES.items():
        table = ensure_table(catalog, table_def)
        by_day = {day: totals["records"] for day in source_generations(table)
                  if (totals := recorded_totals(table, day)) is not None and totals["records"]}
        if not by_day and table.current_snapshot() is not None:
            by_day = _counted_partitions(table)
        for day, count in sorted(by_day.items()):
            layers.append(layer)
            tables.append(table_def.identifier)
            dates.append(day)
            counts.append(int(count))
    return pa.table({"layer": layers, "table_name": tables, "log_date": pa.array(dates, pa.date32()),
                     "rows": pa.array(counts, pa.int64())})


def _counted_partitions(table: Table) -> dict[dt.date, int]:
    partitions = table.inspect.partitions()
    if partitions.num_rows == 0:  # a table with no data files has no partition column either
        return {}
    by_day: dict[dt.date, int] = {}
    for partition, count in zip(partitions.column("partition").to_pylist(), partitions.column("record_count").to_pylist()):
        by_day[partition["log_date"]] = by_day.get(partition["log_date"], 0) + count
    return by_day
