import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    HOURLY_SNAPSHOTS,
    RECENT_SNAPSHOTS,
    SNAPSHOTS_KEPT,
    TABLE_PROPERTIES,
    ensure_table,
    local_catalog,
    replace_partitions,
    snapshots_beyond_budget,
)
from packetx_lakehouse.lib.storage.maintenance import (
    MaintenancePolicy,
    expirable_snapshots,
    file_kind,
    list_table_files,
    maintain_table,
    referenced_files,
    table_storage,
)
from packetx_lakehouse_harness.devserver import PATIENCE, poll

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
EVENTS = TableDef(
    "test_ns",
    "events",
    pa.schema([pa.field("log_date", pa.date32(), False), pa.field("n", pa.int64(), False)]),
)
HOUR_MS = 3_600_000
#: A day later, past every window of the default policy (nothing sleeps).
DAY = dt.timedelta(days=1)


def events(day: dt.date, values: range) -> pa.Table:
    return pa.table({"log_date": pa.array([day] * len(values), pa.date32()), "n": pa.array(values, pa.int64())},
                    schema=EVENTS.schema)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def snapshots(*stamps_ms: int) -> list[Snapshot]:
    return [Snapshot(snapshot_id=n, timestamp_ms=ms, sequence_number=n, manifest_list=f"l{n}")
            for n, ms in enumerate(stamps_ms, start=1)]


def rows(table) -> list[tuple]:
    return sorted((r["log_date"], r["n"]) for r in table.to_pylist())


@pytest.fixture
def catalog(tmp_path: Path):
    return local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")


def rerun(table, day: dt.date, times: int, size: int = 50):
    """``times`` re-runs of one day, each replacing it with more rows (a file that grows)."""
    for n in range(1, times + 1):
        replace_partitions(table, events(day, range(n * size)), values=[day])
    return table.refresh()


# --- which snapshots go ----------------------------------------------------------------------


def test_the_write_path_keeps_the_newest_snapshots_and_one_per_earlier_hour():
    # A day re-run every minute for ten hours: 600 snapshots, oldest first.
    minutes = snapshots(*(m * 60_000 for m in range(600)))
    expired = set(snapshots_beyond_budget(minutes, recent=2, hourly=6))
    kept = [s for s in minutes if s.snapshot_id not in expired]
    # The last two, and the newest snapshot of each of the six hours before the current one.
    assert [s.timestamp_ms // 60_000 for s in kept] == [239, 299, 359, 419, 479, 539, 598, 599]


def test_a_table_written_once_a_day_keeps_its_last_writes():
    days = snapshots(*(d * 24 * HOUR_MS for d in range(20)))
    expired = set(snapshots_beyond_budget(days, recent=RECENT_SNAPSHOTS, hourly=HOURLY_SNAPSHOTS))
    assert sorted(s.snapshot_id for s in days if s.snapshot_id not in expired) == list(range(21 - SNAPSHOTS_KEPT, 21))
    assert snapshots_beyond_budget(days[:5], recent=4, hourly=6) == []


def test_a_snapshot_expires_once_it_has_been_superseded_long_enough():
    t0 = 1_000 * HOUR_MS
    at = dt.datetime.fromtimestamp((t0 + 30 * HOUR_MS) / 1000, dt.UTC)
    # Written at t0, t0+1h, t0+7h (superseded 29, 23 and 6 hours before ``at``), the current at t0+24h.
    metadata = _metadata(snapshots(t0, t0 + HOUR_MS, t0 + 7 * HOUR_MS, t0 + 24 * HOUR_MS))
    policy = MaintenancePolicy(snapshot_max_age=dt.timedelta(hours=24), min_snapshots=1)
    # Snapshot 1 is 30 h old but was replaced only 29 h ago; 2 was replaced 23 h ago: kept.
    assert expirable_snapshots(metadata, at, policy) == [1]
    assert expirable_snapshots(metadata, at + DAY, policy) == [1, 2, 3]
    assert expirable_snapshots(metadata, at + DAY, MaintenancePolicy(min_snapshots=3)) == [1]


def _metadata(snaps: list[Snapshot]) -> TableMetadata:
    """Table metadata holding ``snaps``, the last one current."""
    base = new_table_metadata(Schema(), UNPARTITIONED_PARTITION_SPEC, UNSORTED_SORT_ORDER, "file:///t", {})
    head = SnapshotRef(snapshot_id=snaps[-1].snapshot_id, snapshot_ref_type=SnapshotRefType.BRANCH)
    return base.model_copy(update={"snapshots": snaps, "current_snapshot_id": head.snapshot_id, "refs": {"main": head}})


def test_policy_rejects_keeping_no_snapshot():
    with pytest.raises(ValueError, match="min_snapshots"):
        MaintenancePolicy(min_snapshots=0)


# --- on a real table -------------------------------------------------------------------------


def test_forty_one_reruns_of_a_day_shrink_to_the_live_data_after_maintenance(catalog):
    table = ensure_table(catalog, EVENTS)
    # Enough rows that the metadata kept whatever the data (the last 5 metadata JSON files, each
    # with the table's snapshot budget) is not what the bound below measures.
    replace_partitions(table, events(D2, range(20_000)), values=[D2])
    table = rerun(table, D1, 41)
    before = table_storage(table)
    assert before.files_by_kind["data"] == 42  # every re-run left its data file behind
    # The metadata JSON files are capped as the writes commit, not by maintenance.
    assert before.files_by_kind["metadata_json"] == int(TABLE_PROPERTIES["write.metadata.previous-versions-max"]) + 1

    done = maintain_table(table, now=now() + DAY, policy=MaintenancePolicy())
    table = table.refresh()
    after = table_storage(table)
    assert done.after == after  # what the pass reports is what a fresh look finds
    assert done.snapshots_expired == before.snapshots - 1 and done.snapshots_kept == 1
    assert done.files_deleted["data"] == 40 and done.young_unreferenced == 0
    assert after.files_by_kind["data"] == 2 and after.live_data_files == 2
    assert set(list_table_files(table)) == referenced_files(table)  # nothing dead is left
    # The expiry's own commit wrote one metadata JSON and dropped the oldest one.
    assert after.files == before.files - done.total_files_deleted
    assert after.bytes <= 2 * after.live_bytes
    expected = pa.concat_tables([events(D1, range(41 * 50)), events(D2, range(20_000))])
    assert rows(table.scan().to_arrow()) == rows(expected)


def test_maintenance_within_the_windows_deletes_nothing_and_time_travel_still_reads(catalog):
    table = rerun(ensure_table(catalog, EVENTS), D1, 6)
    kept = {s.snapshot_id: rows(table.scan(snapshot_id=s.snapshot_id).to_arrow()) for s in table.snapshots()}
    done = maintain_table(table, now=now(), policy=MaintenancePolicy())
    assert done.snapshots_expired == 0 and done.total_files_deleted == 0
    # A day later all but the oldest remain (min_snapshots); each still reads exactly what it held.
    assert len(kept) >= 2
    done = maintain_table(table, now=now() + DAY, policy=MaintenancePolicy(min_snapshots=len(kept) - 1))
    table = table.refresh()
    assert done.snapshots_expired == 1 and done.total_files_deleted > 0
    assert len(table.snapshots()) == len(kept) - 1
    for snapshot in table.snapshots():
        assert rows(table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()) == kept[snapshot.snapshot_id]
    assert set(list_table_files(table)) == referenced_files(table)


def test_an_orphan_younger_than_the_safety_window_survives_an_older_one_goes(catalog, tmp_path):
    table = rerun(ensure_table(catalog, EVENTS), D1, 2)
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    young, old = data_dir / "crashed-write-young.parquet", data_dir / "crashed-write-old.parquet"
    young.write_bytes(b"PAR1 young")
    old.write_bytes(b"PAR1 old")
    two_hours_ago = (now() - dt.timedelta(hours=2)).timestamp()
    os.utime(old, (two_hours_ago, two_hours_ago))
    # A sibling table's location shares the prefix: it must never be listed as ours.
    sibling = Path(table.location().removeprefix("file://") + "_archive") / "x.parquet"
    sibling.parent.mkdir()
    sibling.write_bytes(b"not ours")
    os.utime(sibling, (two_hours_ago, two_hours_ago))

    done = maintain_table(table, now=now(), policy=MaintenancePolicy(orphan_grace=dt.timedelta(hours=1)))
    assert young.exists() and not old.exists() and sibling.exists()
    assert done.files_deleted.get("data") == 1
    assert done.young_unreferenced >= 1  # the young orphan, plus the replaced day (written just now)
    assert rows(table.refresh().scan().to_arrow()) == rows(events(D1, range(100)))


def test_file_kinds_follow_pyiceberg_names():
    assert file_kind("file:///w/t/metadata/00003-ab.metadata.json") == "metadata_json"
    assert file_kind("s3://b/t/metadata/snap-1-0-ab.avro") == "manifest_list"
    assert file_kind("s3://b/t/metadata/ab-m0.avro") == "manifest"
    assert file_kind("file:///w/t/data/log_date=2026-01-01/00000-0-ab.parquet") == "data"


def test_a_write_survives_maintenance_expiring_what_its_own_expiry_drops(catalog, tmp_path):
    """Maintenance's expiry moves no branch, so a write staged before it still passes its
    requirements, and its in-commit expiry names snapshots that are gone: a lost race to retry."""
    table = rerun(ensure_table(catalog, EVENTS), D1, RECENT_SNAPSHOTS + 1)
    assert len(table.snapshots()) == RECENT_SNAPSHOTS  # the next write's expiry drops the oldest
    stale = catalog.load_table(EVENTS.identifier)
    other = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse").load_table(EVENTS.identifier)
    assert maintain_table(other, now=now() + DAY, policy=MaintenancePolicy()).snapshots_expired == RECENT_SNAPSHOTS - 1
    replace_partitions(stale, events(D1, range(7)), values=[D1])
    assert rows(table.refresh().scan().to_arrow()) == rows(events(D1, range(7)))


def test_a_write_keeps_the_files_of_the_version_it_planned_on_through_maintenance(catalog, tmp_path):
    """Other writers' in-commit expiry drops the snapshot a slow write started from; maintenance
    must still leave its files while that version was current within the safety window."""
    table = ensure_table(catalog, EVENTS)
    replace_partitions(table, events(D1, range(5)), values=[D1])
    replace_partitions(table, events(D2, range(5)), values=[D2])
    slow = catalog.load_table(EVENTS.identifier)  # plans on this version, commits later
    fast = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse").load_table(EVENTS.identifier)
    for n in range(RECENT_SNAPSHOTS + 1):
        replace_partitions(fast, events(D2, range(10 + n)), values=[D2])
    assert slow.current_snapshot().snapshot_id not in {s.snapshot_id for s in fast.refresh().snapshots()}
    two_hours_ago = (now() - dt.timedelta(hours=2)).timestamp()
    for path in (tmp_path / "warehouse").rglob("*"):
        os.utime(path, (two_hours_ago, two_hours_ago))

    maintain_table(fast, now=now(), policy=MaintenancePolicy(orphan_grace=dt.timedelta(hours=1)))
    replace_partitions(slow, events(D1, range(7)), values=[D1])
    assert rows(table.refresh().scan().to_arrow()) == rows(pa.concat_tables([events(D1, range(7)),
                                                                            events(D2, range(10 + RECENT_SNAPSHOTS))]))
    # A day later that version is long replaced: its files go.
    done = maintain_table(fast, now=now() + DAY, policy=MaintenancePolicy())
    assert done.total_files_deleted > 0
    assert set(list_table_files(table.refresh())) == referenced_files(table)


def _writer(warehouse: str, first_day: int, rounds: int, commits, wanted, passes) -> None:
    """Re-write three days ``rounds`` times; after every sixth write, wait for a maintenance pass of its
    own: a ticket, the number of a pass that ends after this write and after every earlier ticket."""
    catalog = local_catalog(Path(warehouse) / "catalog.db", Path(warehouse) / "warehouse")
    table = ensure_table(catalog, EVENTS)
    for n in range(rounds):
        day = dt.date(2026, 2, first_day + n % 3)
        # Two writers in a tight loop on one table collide far more often than pool-limited runs
        # do; the retry budget is not what this test is about.
        replace_partitions(table, events(day, range(n * 10, n * 10 + 5 + n)), values=[day], retries=30)
        seen = passes.value
        with commits.get_lock():
            commits.value += 1
        if n % 6 == 5:
            with wanted.get_lock():
                wanted.value = ticket = max(wanted.value + 1, seen + 1)
            poll("a maintenance pass", lambda: passes.value >= ticket, interval=0.005)


def _maintainer(warehouse: str, stop, commits, wanted, passes, deleted) -> None:
    """A maintenance pass every three commits, or while a writer's ticket is not served (hourly in production)."""
    catalog = local_catalog(Path(warehouse) / "catalog.db", Path(warehouse) / "warehouse")
    table = catalog.load_table(EVENTS.identifier)
    # Every replaced snapshot goes at once: only the safety window (real time, real file ages)
    # and the recent metadata versions stand between maintenance and the writers.
    policy = MaintenancePolicy(snapshot_max_age=dt.timedelta(0), min_snapshots=1, orphan_grace=dt.timedelta(hours=1))
    started = -3
    while True:
        poll("writes", lambda: stop.is_set() or passes.value < wanted.value or commits.value >= started + 3,
             interval=0.005)
        if stop.is_set():
            return
        started = commits.value
        done = maintain_table(table, now=now(), policy=policy)
        with deleted.get_lock():
            deleted.value += done.total_files_deleted
        with passes.get_lock():
            passes.value += 1


def test_maintenance_next_to_two_writer_processes_loses_nothing_and_breaks_nothing(tmp_path):
    import multiprocessing

    catalog = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")
    table = ensure_table(catalog, EVENTS)
    for first in (1, 10):
        for n in range(3):
            day = dt.date(2026, 2, first + n)
            rerun(table, day, 3)
    # Everything written so far is two hours old: past the safety window, so maintenance deletes
    # it as soon as neither the table nor a version current within the window reaches it.
    two_hours_ago = (now() - dt.timedelta(hours=2)).timestamp()
    for path in (tmp_path / "warehouse").rglob("*"):
        if path.is_file():
            os.utime(path, (two_hours_ago, two_hours_ago))

    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    commits, wanted, passes, deleted = (spawn.Value("i", 0) for _ in range(4))
    maintainer = spawn.Process(target=_maintainer, args=(str(tmp_path), stop, commits, wanted, passes, deleted))
    writers = [spawn.Process(target=_writer, args=(str(tmp_path), first, 24, commits, wanted, passes))
               for first in (1, 10)]
    try:
        maintainer.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=PATIENCE)
        stop.set()
        maintainer.join(timeout=PATIENCE)
    finally:  # a failed or timed-out test leaves no process behind
        for process in (*writers, maintainer):
            if process.is_alive():
                process.kill()
                process.join()
    assert [w.exitcode for w in writers] == [0, 0] and maintainer.exitcode == 0
    # Each writer waited for a pass of its own four times (eight distinct tickets): eight passes at least.
    assert passes.value >= wanted.value >= 8 and deleted.value > 0

    table = table.refresh()
    expected = [(dt.date(2026, 2, first + n % 3), v) for first in (1, 10) for n in (21, 22, 23)
                for v in range(n * 10, n * 10 + 5 + n)]
    assert rows(table.scan().to_arrow()) == sorted(expected)
    for snapshot in table.snapshots():  # every retained snapshot still reads
        table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    # Once the windows have passed, what is left on disk is exactly what the table references.
    maintain_table(table, now=now() + DAY, policy=MaintenancePolicy())
    table = table.refresh()
    assert set(list_table_files(table)) == referenced_files(table)
    assert rows(table.scan().to_arrow()) == sorted(expected)
