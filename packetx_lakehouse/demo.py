"""The ``demo`` command: a populated lakehouse from nothing, then a few real answers."""

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import duckdb
from pyiceberg.catalog import Catalog

from packetx_lakehouse.dashboard import queries
from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.defs.operations.watch import WATCH_JOB
from packetx_lakehouse.defs.partitions import check_partition_key, daily_partitions
from packetx_lakehouse.defs.resources import archive_store, landing_store, open_catalog
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.devices.samples import sample_captures
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.lib.ingest.archive import archived_days
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.schemas import DAILY_TOTAL_CHANGES, DEVICE_STATUS, TABLES_BY_LAYER, TableDef
from packetx_lakehouse.lib.storage.iceberg import ensure_table
from packetx_lakehouse.progress import run_progress
from packetx_lakehouse.runner import day_ranges, failure_message, landing_days, materialize_range, project_instance
from packetx_lakehouse.settings import Settings


def seed_landing(settings: Settings, *, users: int, days: int, seed: int) -> list[str]:
    """Fill an empty local landing directory with a generated week plus the real samples."""
    landing = settings.traffic_log_dir
    if any(parse_log_file_name(p.name) for p in landing.glob("*")):
        return []
    start = dt.date.today() - dt.timedelta(days=days)
    options = GeneratorOptions(bad_lines=3, restarts=1)
    written = [p.name for p in generate(landing, users=users, days=days, start=start, seed=seed, options=options)]
    for sample in sample_captures():
        target = landing / sample.name
        if not target.exists():
            shutil.copyfile(sample, target)
            written.append(sample.name)
    return written


def seed_s3_landing(settings: Settings, *, users: int, days: int, seed: int) -> list[str]:
    """On AWS the demo plays the devices: the same files, uploaded to an empty S3 landing prefix."""
    if landing_days(landing_store(settings))[0]:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        seed_landing(settings.model_copy(update={"traffic_log_dir": Path(tmp)}), users=users, days=days, seed=seed)
        return [result.name for result in upload_files(settings, sorted(Path(tmp).iterdir()))]


def table_rows(catalog: Catalog, table_def: TableDef) -> int:
    """Row count from the current snapshot's summary: no scan needed."""
    snapshot = ensure_table(catalog, table_def).current_snapshot()
    return int(snapshot.summary["total-records"]) if snapshot and snapshot.summary else 0


def run_demo(*, users: int, days: int, seed: int) -> int:
    settings = Settings.from_env()
    landing = landing_store(settings)
    seeded = (seed_s3_landing if settings.is_aws else seed_landing)(settings, users=users, days=days, seed=seed)
    if seeded:
        print(f"Seeded {landing.describe('')} with {len(seeded)} files (generated week + real samples).")
    defs = build_definitions(settings)
    partitions = daily_partitions(settings)
    present, problems = landing_days(landing)
    for problem in problems:
        print(f"ignored {problem.object_key}: {problem.reason}")
    ingestible = []
    for day in present:
        problem = check_partition_key(partitions, day, f"files for {day}")
        if problem:
            print(f"skipped: {problem}")
        else:
            ingestible.append(day)
    if not ingestible:
        print(f"No traffic logs to ingest in {landing.describe('')}.")
        return 1
    first, last = ingestible[0], ingestible[-1]
    # Days the archive holds in between count too: a file retracted and then removed from the
    # landing area still empties its day's tables.
    ranges = day_ranges(set(ingestible) | {d for d in archived_days(archive_store(settings)) if first <= d <= last})
    print(f"Materialising every asset for {first} .. {last} ({len(ingestible)} days with files"
          + (f"; {len(ranges)} runs, one per stretch of consecutive days: no day without data is run"
             if len(ranges) > 1 else "") + ") ...", flush=True)
    steps = len(defs.resolve_job_def(DAILY_PIPELINE).graph.node_defs)  # one per multi-asset
    instance = project_instance(settings)
    failed_runs = 0
    for start, end in ranges:
        with run_progress(steps, f"daily_pipeline {start} .. {end}") as on_event:
            result = materialize_range(defs, start, end, instance=instance, log_level="WARNING", on_event=on_event,
                                       raise_on_error=False)
        if not result.success:
            # A day that failed (a misdated file) stops only itself: the runner built the others.
            failed_runs += 1
            print(f"Run {result.run_id} FAILED: {failure_message(result)}\nThe stretch's other days were built.")
            continue
        checks = result.get_asset_check_evaluations()
        failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in checks if not e.passed]
        print(f"Run {result.run_id} succeeded; asset checks: {len(checks) - len(failed)} passed, {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else "") + ".")
    # The generated days end yesterday: judge the devices as they stood at the end of the data.
    judged = dt.datetime.combine(last, dt.time(23, 59), dt.UTC)
    watch = defs.resolve_job_def(WATCH_JOB).execute_in_process(instance=instance, run_config={
        "ops": {"device_silence": {"config": {"at": judged.isoformat()}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    print(f"Run {watch.run_id} of {WATCH_JOB} succeeded: devices judged as at {judged:%Y-%m-%d %H:%M} UTC, "
          "each day's totals recorded.\n")
    where = f"Glue, warehouse {settings.s3_warehouse_uri}" if settings.is_aws else settings.catalog_path
    print(f"Iceberg tables (catalog 'packetx' at {where}):")
    catalog = open_catalog(settings)
    for table_def in (t for layer in TABLES_BY_LAYER.values() for t in layer):
        print(f"  {table_def.identifier:<40} {table_rows(catalog, table_def):>10,} rows")
    print_answers(settings.serving_path)
    print_devices(catalog)
    print("\nOpen the Dagster UI:  .venv/bin/packetx-lakehouse ui   -> http://127.0.0.1:3000")
    return 1 if failed_runs else 0


ANSWERS = {
    "Top users by traffic": """
        SELECT user, round(sum(total_kb) / 1024, 1) AS mb, round(sum(outbound_kb) / 1024, 1) AS outbound_mb,
               round(sum(internal_kb) / 1024, 1) AS internal_mb, count(*) AS days
        FROM gold.daily_user_bandwidth GROUP BY user ORDER BY mb DESC LIMIT 5""",
    "Traffic anomalies (robust z-score over the trailing 7 days)": """
        SELECT user, hour_utc, round(kb / 1024, 1) AS mb, round(baseline_median_kb / 1024, 1) AS baseline_mb,
               round(robust_z, 1) AS z
        FROM gold.traffic_anomalies ORDER BY robust_z DESC LIMIT 5""",
    "Quarantined lines": """
        SELECT reason, count(*) AS lines FROM ops.quarantine GROUP BY reason ORDER BY lines DESC LIMIT 5""",
}


def _print_rows(title: str, header: list[str], rows: list[tuple]) -> None:
    print(f"\n{title}:")
    if not rows:
        print("  (none)")
        return
    widths = [max(len(str(v)) for v in [h, *(r[i] for r in rows)]) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


def print_answers(database: Path) -> None:
    """A few real answers from the serving database, as a user would query it."""
    with duckdb.connect(str(database), read_only=True) as con:
        for title, sql in ANSWERS.items():
            cursor = con.execute(sql)
            _print_rows(title, [d[0] for d in cursor.description], cursor.fetchall())
            if title == "Top users by traffic":
                print_top_hosts(con)
        top = con.execute("SELECT user, strftime(hour_utc AT TIME ZONE 'UTC', '%Y-%m-%dT%H') "
                          "FROM gold.traffic_anomalies ORDER BY robust_z DESC LIMIT 1").fetchone()
    if top:
        print(f"\nWhy the first one stands out:  .venv/bin/packetx-lakehouse explain-anomaly {top[0]} {top[1]}")
    print(f"\nServing database: {database}\nAsk your own questions:  .venv/bin/packetx-lakehouse sql "
          "\"SELECT * FROM packetx_gold.daily_user_bandwidth\"  (add --as-of 10m: as it was 10 minutes ago)")


def print_top_hosts(con: duckdb.DuckDBPyConnection, limit: int = 5) -> None:
    """The dashboard's own query over every served day: the same hosts, MB and users as its panel."""
    bounds = queries.date_bounds(con)
    hosts = queries.top_external_hosts(con, queries.Filters(*bounds), limit) if bounds else None
    rows = [] if hosts is None else [(h["remote_ip"], round(h["kb"] / 1024, 1), h["users"])
                                     for h in hosts.iter_rows(named=True)]
    _print_rows("Top external hosts", ["remote_ip", "mb", "users"], rows)


def print_devices(catalog: Catalog) -> None:
    """Each device's state (from Iceberg: the serving copy holds only the pipeline's tables)."""
    status = ensure_table(catalog, DEVICE_STATUS).scan(
        selected_fields=("user", "status", "last_seen_utc", "active_hours", "history_days")).to_arrow()
    rows = [(r["user"], r["status"], f"{r['last_seen_utc']:%Y-%m-%d %H:%M}", r["active_hours"] or "-",
             r["history_days"]) for r in status.to_pylist()]
    _print_rows("Devices, silent ones first (packetx_gold.device_status)",
                ["user", "status", "last_seen_utc", "active_hours", "history_days"], rows)
    print(f"Each day's totals and every later change of them: packetx_gold.daily_total_changes "
          f"({table_rows(catalog, DAILY_TOTAL_CHANGES):,} rows)")
