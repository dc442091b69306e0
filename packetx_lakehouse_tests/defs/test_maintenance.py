"""The ``lakehouse_maintenance`` job: what it removes, what it reports, and that it is safe next to runs."""

import datetime as dt
import multiprocessing
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.bronze.assets import RAW_ARCHIVE_KEY
from packetx_lakehouse.defs.conventions import ICEBERG_POOL, asset_key
from packetx_lakehouse.defs.maintenance.job import MAINTENANCE_JOB
from packetx_lakehouse.defs.operations.watch import WATCH_JOB
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.ingest.archive import collect_day, load_manifest
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_USER_BANDWIDTH,
    TABLES_BY_LAYER,
)
from packetx_lakehouse.lib.storage.iceberg import ensure_table
from packetx_lakehouse.lib.storage.maintenance import table_storage
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.devserver import PATIENCE, poll
from packetx_lakehouse_tests.conftest import TEST_START_DATE

DAYS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]
OPTIONS = GeneratorOptions(minutes_per_day=40, pairs_per_minute=8)
#: Everything past its window at once (no write runs next to this job in these tests).
EAGER = {"snapshot_retention_hours": 0, "orphan_grace_hours": 0, "archive_retention_days": 0}


def grown(user: str, day: dt.date, part: int, parts: int) -> bytes:
    """The day's file after ``part`` of ``parts`` of the day: PacketX appends whole blocks."""
    lines = generate_day(user, day, seed=3, options=OPTIONS).splitlines(keepends=True)
    return b"".join(lines[: 1 + (len(lines) - 1) * part // parts])


def write_round(settings: Settings, part: int, parts: int) -> None:
    settings.traffic_log_dir.mkdir(parents=True, exist_ok=True)
    for day in DAYS:
        (settings.traffic_log_dir / f"alice-{day}.csv").write_bytes(grown("alice", day, part, parts))


def bronze_rows(settings: Settings) -> int:
    return ensure_table(open_catalog(settings), BRONZE_PACKETS).scan().to_arrow().num_rows


def observations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict]:
    return {event.asset_observation_data.asset_observation.asset_key:
            {k: v.value for k, v in event.asset_observation_data.asset_observation.metadata.items()}
            for event in result.all_events if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION}


def test_the_job_records_per_table_and_for_the_archive_what_it_removed(lakehouse):
    settings = lakehouse.settings.model_copy(update=EAGER)
    defs = build_definitions(settings)
    for part in (1, 2, 3):
        write_round(settings, part, 3)
        materialize_range(defs, DAYS[0], DAYS[-1], log_level="WARNING")
    assert defs.resolve_job_def(WATCH_JOB).execute_in_process().success  # the operations tables exist too
    expected = bronze_rows(settings)

    result = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process()
    assert result.success
    seen = observations(result)
    every_table = {asset_key(t) for layer in TABLES_BY_LAYER.values() for t in layer}
    assert every_table | {RAW_ARCHIVE_KEY} == set(seen)
    bronze = seen[asset_key(BRONZE_PACKETS)]
    # The three runs' snapshots were all within the write path's budget: this pass expires the two
    # older ones, whose files outlive it (the table version that reached them was current within
    # the safety window), so only metadata the runs' own commits dropped goes now.
    assert bronze["snapshots_kept"] == 1 and bronze["data_files_deleted"] == 0
    assert bronze["bytes_deleted"] > 0 and bronze["live_bytes"] <= bronze["bytes"]
    # The file grew: each growth is a part of its version, all named by the manifest, none deleted.
    assert seen[RAW_ARCHIVE_KEY]["versions_deleted"] == 0
    archive = LocalObjectStore(settings.archive_dir)
    for day in DAYS:
        parts = load_manifest(archive, day).files[f"alice-{day}.csv"].parts
        assert len(parts) == 3 and all(archive.exists(part.key) for part in parts)
    output = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT)
    totals = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert totals["files_deleted"] >= len(every_table) and totals["archive_versions_deleted"] == 0
    assert totals["errors"] == {} and bronze_rows(settings) == expected

    # The next pass deletes the two older runs' files of each day, and then there is nothing left to do.
    again = observations(defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process())
    assert again[asset_key(BRONZE_PACKETS)]["data_files_deleted"] == 2 * len(DAYS)
    last = observations(defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process())
    assert {key: seen["files_deleted"] for key, seen in last.items() if key != RAW_ARCHIVE_KEY} == {
        key: 0 for key in every_table}
    assert last[RAW_ARCHIVE_KEY]["versions_deleted"] == 0
    assert bronze_rows(settings) == expected


def test_the_version_bronze_was_built_from_survives_a_failed_run(lakehouse):
    settings = lakehouse.settings.model_copy(update=EAGER)
    defs = build_definitions(settings)
    write_round(settings, 1, 2)
    materialize_range(defs, DAYS[0], DAYS[0], log_level="WARNING")
    archive = LocalObjectStore(settings.archive_dir)
    built_from = load_manifest(archive, DAYS[0]).files[f"alice-{DAYS[0]}.csv"].archive_key
    # A run archives a rewritten file (a new version, not a growth), then dies before bronze commits.
    path = settings.traffic_log_dir / f"alice-{DAYS[0]}.csv"
    path.write_bytes(grown("alice", DAYS[0], 2, 2).replace(b"8.8.8.8", b"8.8.4.4"))
    landing = LocalObjectStore(settings.traffic_log_dir)
    collect_day(landing, archive, DAYS[0], [i for i in landing.list() if str(DAYS[0]) in i.key],
                now=dt.datetime.now(dt.UTC))
    assert load_manifest(archive, DAYS[0]).files[f"alice-{DAYS[0]}.csv"].archive_key != built_from

    result = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process()
    assert archive.exists(built_from)
    assert observations(result)[RAW_ARCHIVE_KEY]["held_for_bronze"] == [f"{DAYS[0]}/alice-{DAYS[0]}.csv"]
    # The next run rebuilds bronze from the current version; then the old one may go.
    materialize_range(defs, DAYS[0], DAYS[0], log_level="WARNING")
    defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process()
    assert not archive.exists(built_from)


def test_the_job_is_hourly_in_the_writers_pool_and_takes_its_knobs_from_the_environment(monkeypatch, tmp_path):
    for name, value in {"PACKETX_DATA_DIR": str(tmp_path), "PACKETX_SNAPSHOT_RETENTION_HOURS": "48",
                        "PACKETX_ORPHAN_GRACE_HOURS": "6",
                        "PACKETX_ARCHIVE_RETENTION_DAYS": "30"}.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(Settings.from_env())
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    assert [node.definition.pool for node in job.nodes] == [ICEBERG_POOL]
    schedule = defs.resolve_schedule_def(f"{MAINTENANCE_JOB}_schedule")
    assert schedule.cron_schedule == "40 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    maintenance = defs.resources["maintenance"]
    policy, retention = maintenance.policy(), maintenance.archive_retention()
    assert (policy.snapshot_max_age, policy.min_snapshots, policy.orphan_grace) == (
        dt.timedelta(hours=48), 1, dt.timedelta(hours=6))
    assert retention.keep_all_for == dt.timedelta(days=30)


@pytest.mark.parametrize(("name", "value"), [("PACKETX_ORPHAN_GRACE_HOURS", "-1"),
                                             ("PACKETX_SNAPSHOT_RETENTION_HOURS", "1d"),
                                             ("PACKETX_SNAPSHOTS_MIN_KEPT", "3"),  # retired: says what instead
                                             ("PACKETX_ARCHIVE_RETENTION_DAYS", "a week")])
def test_a_bad_retention_setting_stops_start_up_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


# --- next to running pipelines, in other processes, with no Dagster pool between them ---------


def _settings(data_dir: str, **overrides) -> Settings:
    return Settings(data_dir=Path(data_dir), traffic_log_dir=Path(data_dir) / "traffic_log",
                    start_date=TEST_START_DATE, **overrides)


def _pipeline_rounds(data_dir: str, first: int, parts: int, running, passes) -> None:
    """Re-run both days as their files grow; each run overlaps at least one maintenance pass."""
    settings = _settings(data_dir)
    defs = build_definitions(settings)
    for part in range(first, parts + 1):
        write_round(settings, part, parts)
        seen = passes.value
        running.value = 1
        materialize_range(defs, DAYS[0], DAYS[-1], log_level="WARNING")
        running.value = 0
        poll("a maintenance pass started during the run", lambda: passes.value > seen, 300, interval=0.005)


def _maintenance_passes(data_dir: str, stop, running, passes, removed) -> None:
    """Maintenance passes back to back for as long as a pipeline run is in flight."""
    # Every replaced snapshot and archive version goes at once; the safety window is the default.
    defs = build_definitions(_settings(data_dir, snapshot_retention_hours=0, archive_retention_days=0))
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    while True:
        poll("a pipeline run", lambda: stop.is_set() or running.value, 300, interval=0.005)
        if stop.is_set():
            return
        result = job.execute_in_process()
        output = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT)
        totals = {k: v.value for k, v in output.event_specific_data.metadata.items()}
        with removed.get_lock():
            removed.value += totals["files_deleted"] + totals["archive_versions_deleted"]
        with passes.get_lock():
            passes.value += 1


@pytest.mark.e2e  # pipeline runs and maintenance passes in processes of their own
def test_maintenance_running_next_to_pipeline_runs_loses_nothing(lakehouse):
    settings = lakehouse.settings
    defs = build_definitions(settings)
    parts = 4
    write_round(settings, 1, parts)
    materialize_range(defs, DAYS[0], DAYS[-1], log_level="WARNING")
    # What exists now is two hours old: past the safety window, fair game once nothing needs it.
    two_hours_ago = time.time() - 7200
    for path in settings.data_dir.rglob("*"):
        if path.is_file() and "traffic_log" not in path.parts:
            os.utime(path, (two_hours_ago, two_hours_ago))

    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    running, passes, removed = (spawn.Value("i", 0) for _ in range(3))
    maintainer = spawn.Process(target=_maintenance_passes,
                               args=(str(settings.data_dir), stop, running, passes, removed))
    runner = spawn.Process(target=_pipeline_rounds, args=(str(settings.data_dir), 2, parts, running, passes))
    try:
        maintainer.start()
        runner.start()
        runner.join(timeout=PATIENCE)
        stop.set()
        maintainer.join(timeout=PATIENCE)
    finally:  # a failed or timed-out test leaves no process behind
        for process in (runner, maintainer):
            if process.is_alive():
                process.kill()
                process.join()
    assert (runner.exitcode, maintainer.exitcode) == (0, 0)
    assert passes.value >= parts - 1 and removed.value > 0

    # Bronze holds exactly the final files; gold has both days; every retained snapshot reads.
    lines = sum(grown("alice", day, parts, parts).count(b"\n") - 1 for day in DAYS)
    assert bronze_rows(settings) == lines
    catalog = open_catalog(settings)
    gold = ensure_table(catalog, GOLD_DAILY_USER_BANDWIDTH).scan().to_arrow()
    assert sorted(set(gold.column("log_date").to_pylist())) == DAYS
    for table_def in (t for layer in TABLES_BY_LAYER.values() for t in layer):
        table = ensure_table(catalog, table_def)
        for snapshot in table.snapshots():
            table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
        assert table_storage(table).files > 0
    # The archive still holds every day's current version, and the run re-reads it.
    archive = LocalObjectStore(settings.archive_dir)
    for day in DAYS:
        assert archive.exists(load_manifest(archive, day).files[f"alice-{day}.csv"].archive_key)
    assert materialize_range(defs, DAYS[0], DAYS[-1], log_level="WARNING").success
    assert bronze_rows(settings) == lines
