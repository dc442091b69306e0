"""Storage after re-runs: a day re-run 41 times as its file grows, then maintenance (issue 14).

A device capturing all day makes the landing sensor re-run its day every minute or so. Each run
replaces the day in every table, and the raw archive keeps each version of the file. This
measures what that leaves on disk, on day 1 of a lakehouse and on day 30 (after a month of one
run per day), before and after the maintenance pass the hourly schedule runs. The pass runs
with its clock set past the retention windows (simulated, nobody sleeps): the state every
re-run day reaches a day later.

Run in a fresh worker process like every other measurement (``benchmarks/run.py``).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    BENCH_START,
    SEED,
    Profile,
    generator_options,
    run_worker,
    worker_settings,
)

#: Runs of the same day, each after its file grew (the figure the issue measured on main).
RERUNS = 41
#: After maintenance: warehouse bytes at most twice what the current snapshots reference, and a
#: bounded number of metadata files per table, on day 1 and day 30 alike.
TARGETS = (("storage_bytes_over_live", "<=", 2.0), ("metadata_files_per_table", "<=", 10))
USER = "rerun-bench"


def _growing_versions(text: bytes, versions: int) -> list[bytes]:
    """The file as the sensor sees it ``versions`` times during the day: ever longer prefixes, whole lines."""
    lines = text.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    return [header + b"".join(body[: len(body) * n // versions]) for n in range(1, versions + 1)]


def _write(path: Path, data: bytes) -> None:
    from packetx_lakehouse.lib.storage.objectstore import write_bytes_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, data)


def measure_storage(settings) -> dict[str, Any]:
    """Warehouse and raw-archive files and bytes, and what the current snapshots reference."""
    from packetx_lakehouse.defs.resources import open_catalog
    from packetx_lakehouse.lib.schemas import TABLES_BY_LAYER
    from packetx_lakehouse.lib.storage.maintenance import sum_storage, table_storage
    from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore

    catalog = open_catalog(settings)
    storages = [table_storage(catalog.load_table(t.identifier)) for layer in TABLES_BY_LAYER.values() for t in layer]
    totals = sum_storage(storages)
    versions: dict[str, int] = {}
    archive = LocalObjectStore(settings.archive_dir)
    archive_objects = archive.list()
    for info in archive_objects:
        if info.key.endswith(".gz"):  # date=<day>/<file>.<sha16>.gz; manifests are .json
            source = info.key.rsplit(".", 2)[0]
            versions[source] = versions.get(source, 0) + 1
    return {
        "warehouse_files": totals["files"],
        "warehouse_bytes": totals["bytes"],
        "parquet_files": totals["data_files"],
        "parquet_bytes": sum(s.bytes_by_kind.get("data", 0) for s in storages),
        "live_bytes": totals["live_bytes"],
        "storage_bytes_over_live": round(totals["bytes"] / totals["live_bytes"], 3),
        "metadata_files": totals["metadata_files"],
        "metadata_files_per_table": max(s.metadata_files for s in storages),
        "metadata_json_files": sum(s.files_by_kind.get("metadata_json", 0) for s in storages),
        "snapshots_per_table": max(s.snapshots for s in storages),
        "max_data_files_per_partition": max(s.max_data_files_per_partition for s in storages),
        "tables": len(storages),
        "archive_objects": len(archive_objects),
        "archive_bytes": sum(info.size for info in archive_objects),
        "archive_versions_per_file": max(versions.values(), default=0),
    }


def worker_maintenance(data_dir: Path, first: dt.date, days: int, pairs: int, maintain: bool = True) -> dict[str, Any]:
    """Day 1 re-run ``RERUNS`` times; days 2..days-1 once each; day ``days`` re-run ``RERUNS`` times.

    After each re-run phase: storage before and after one maintenance pass. Between days the pass
    runs once a day, as the schedule would.
    """
    import time

    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.devices.generator import generate_day
    from packetx_lakehouse.runner import materialize_range

    settings = worker_settings(data_dir)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    out: dict[str, Any] = {"reruns": RERUNS, "days": days}

    def run_day(day: dt.date, data: bytes) -> float:
        _write(settings.traffic_log_dir / f"{USER}-{day.isoformat()}.csv", data)
        started = time.perf_counter()
        materialize_range(defs, day, day, instance=instance, log_level="WARNING")
        return time.perf_counter() - started

    def rerun_phase(name: str, day: dt.date) -> None:
        text = generate_day(USER, day, seed=SEED, options=generator_options(pairs))
        seconds = [run_day(day, version) for version in _growing_versions(text, RERUNS)]
        phase: dict[str, Any] = {"run_seconds_first": round(seconds[0], 3), "run_seconds_last": round(seconds[-1], 3)}
        phase["before"] = measure_storage(settings)
        if maintain:
            started = time.perf_counter()
            phase["maintenance"] = _maintain(settings)
            phase["maintenance_seconds"] = round(time.perf_counter() - started, 3)
            phase["after"] = measure_storage(settings)
        out[name] = phase

    rerun_phase("day1", first)
    for offset in range(1, days - 1):
        day = first + dt.timedelta(days=offset)
        run_day(day, generate_day(USER, day, seed=SEED, options=generator_options(pairs)))
        if maintain:
            _maintain(settings)
    rerun_phase(f"day{days}", first + dt.timedelta(days=days - 1))
    return out


def _maintain(settings) -> dict[str, int]:
    """One pass of the scheduled job's work, its clock just past every retention window (nothing sleeps)."""
    from packetx_lakehouse.defs.maintenance.job import run_maintenance

    windows = max(dt.timedelta(hours=settings.snapshot_retention_hours),
                  dt.timedelta(hours=settings.orphan_grace_hours), dt.timedelta(days=settings.archive_retention_days))
    return run_maintenance(settings, now=dt.datetime.now(dt.UTC) + windows + dt.timedelta(minutes=1)).totals()


def measure(root: Path, profile: Profile) -> dict[str, Any]:
    """The scenario in a fresh worker; the flat keys ``bench`` reports (``storage_bytes_over_live`` ...)."""
    data_dir = root / "maintenance"
    out = run_worker("maintenance", data_dir, first=BENCH_START.isoformat(), days=profile.history_days,
                     pairs=profile.history_pairs)
    shutil.rmtree(data_dir, ignore_errors=True)
    last = f"day{profile.history_days}"
    phases = {"day1": out["day1"], "day30": out[last]}
    return {
        "maintenance": out,
        "storage_bytes_over_live": {k: p["after"]["storage_bytes_over_live"] for k, p in phases.items()},
        "metadata_files_per_table": {k: p["after"]["metadata_files_per_table"] for k, p in phases.items()},
        "storage_bytes_over_live_before": {k: p["before"]["storage_bytes_over_live"] for k, p in phases.items()},
        "metadata_files_per_table_before": {k: p["before"]["metadata_files_per_table"] for k, p in phases.items()},
    }


def format_lines(result: dict[str, Any]) -> list[str]:
    """The scenario's rows of the table ``bench`` prints."""
    phases = result["maintenance"]
    lines = [f"{RERUNS} re-runs of a day, before -> after maintenance:"]
    for name in ("day1", f"day{phases['days']}"):
        before, after = phases[name]["before"], phases[name]["after"]
        lines += [
            f"{'  ' + name + ': warehouse bytes / live bytes':<44} "
            f"{before['storage_bytes_over_live']:>9.2f}x -> {after['storage_bytes_over_live']:>6.2f}x",
            f"{'  ' + name + ': warehouse files (Parquet)':<44} "
            f"{before['warehouse_files']:>5} ({before['parquet_files']}) -> {after['warehouse_files']} "
            f"({after['parquet_files']})",
            f"{'  ' + name + ': metadata files, most in one table':<44} "
            f"{before['metadata_files_per_table']:>10} -> {after['metadata_files_per_table']:>6}",
            f"{'  ' + name + ': raw-archive versions of the file':<44} "
            f"{before['archive_versions_per_file']:>10} -> {after['archive_versions_per_file']:>6}",
        ]
    return lines
