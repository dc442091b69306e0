import datetime as dt
import sqlite3

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from sqlalchemy.exc import OperationalError

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    StaleSourceError,
    ensure_table,
    local_catalog,
    migrate_table,
    partition_filter,
    partition_slices,
    read_partitions,
    replace_partitions,
    replace_table,
    source_generations,
    sql_catalog,
    sqlite_catalog_url,
)

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
EVENTS = TableDef(
    "test_ns",
    "events",
    pa.schema([pa.field("log_date", pa.date32(), False), pa.field("user", pa.string(), False),
               pa.field("n", pa.int64(), False)]),
    partition_by=("log_date", "user"),
)


def events(rows: list[tuple[dt.date, str, int]]) -> pa.Table:
    dates, users, ns = zip(*rows) if rows else ((), (), ())
    return pa.Table.from_arrays([pa.array(dates, pa.date32()), pa.array(users, pa.string()), pa.array(ns, pa.int64())],
                                schema=EVENTS.schema)


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["log_date"], r["user"], r["n"]))


def test_grouped_rows_are_cut_into_zero_copy_slices_in_order():
    data = events([(D1, "a", 1), (D1, "a", 2), (D1, "b", 3), (D2, "a", 4)])
    slices = partition_slices(data, ["log_date", "user"])
    assert [s.to_pylist() for s in slices] == [data.slice(0, 2).to_pylist(), data.slice(2, 1).to_pylist(),
                                               data.slice(3, 1).to_pylist()]


def test_interleaved_rows_are_sorted_first_so_each_partition_is_one_slice():
    data = events([(D1, "a", 1), (D2, "a", 2), (D1, "a", 3), (D1, "b", 4)])
    slices = partition_slices(data, ["log_date", "user"])
    assert [(s.column("log_date")[0].as_py(), s.column("user")[0].as_py(), s.num_rows) for s in slices] == [
        (D1, "a", 2), (D1, "b", 1), (D2, "a", 1)]
    assert sorted_rows(pa.concat_tables(slices)) == sorted_rows(data)


@pytest.mark.parametrize("columns", [[], None])
def test_unpartitioned_data_is_one_slice(columns):
    data = events([(D1, "a", 1)])
    assert partition_slices(data, columns) == [data]
    assert partition_slices(data.slice(0, 0), columns) == []


def test_replacing_partitions_writes_one_file_per_partition_and_leaves_others(tmp_path):
    table = ensure_table(local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse"), EVENTS)
    first = events([(D1, "a", 1), (D2, "b", 2), (D1, "b", 3), (D3, "a", 4), (D1, "a", 5)])
    replace_partitions(table, first, values=[D1, D2, D3])
    table = table.refresh()
    assert sorted(f.file.record_count for f in table.scan().plan_files()) == [1, 1, 1, 2]

    replace_partitions(table, events([(D2, "b", 20), (D2, "c", 21)]), values=[D2])
    table = table.refresh()
    expected = [r for r in first.to_pylist() if r["log_date"] != D2] + events([(D2, "b", 20), (D2, "c", 21)]).to_pylist()
    assert sorted_rows(table.scan().to_arrow()) == sorted(expected, key=lambda r: (r["log_date"], r["user"], r["n"]))
    assert sorted_rows(read_partitions(table, values=[D2])) == sorted_rows(events([(D2, "b", 20), (D2, "c", 21)]))
    assert table.current_snapshot().summary["total-records"] == "6"

    replace_partitions(table, events([]), values=[D1])
    assert sorted_rows(read_partitions(table.refresh(), values=[D1, D3])) == sorted_rows(events([(D3, "a", 4)]))


def test_replacing_whole_partitions_is_one_overwrite_snapshot_that_rewrites_no_file(tmp_path):
    table = ensure_table(local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse"), EVENTS)
    replace_partitions(table, events([(D1, "a", 1), (D2, "a", 2)]), values=[D1, D2])
    before = {f.file.file_path for f in table.refresh().scan().plan_files()}
    replace_partitions(table, events([(D1, "a", 10), (D1, "b", 11)]), values=[D1])
    table = table.refresh()
    assert len(table.snapshots()) == 2
    summary = table.current_snapshot().summary
    assert summary.operation.value == "overwrite"
    assert (summary["deleted-data-files"], summary["added-data-files"], summary["total-records"]) == ("1", "2", "3")
    after = {f.file.file_path for f in table.scan().plan_files()}
    assert len(before & after) == 1  # D2's file is untouched, D1's dropped whole
    assert sorted_rows(table.scan().to_arrow()) == sorted_rows(events([(D1, "a", 10), (D1, "b", 11), (D2, "a", 2)]))


def test_a_partition_read_matches_a_scan_and_sees_another_writers_commit(tmp_path):
    catalog_path, warehouse = tmp_path / "catalog.db", tmp_path / "warehouse"
    table = ensure_table(local_catalog(catalog_path, warehouse), EVENTS)
    mine = events([(D1, "a", 1), (D1, "b", 2)])
    replace_partitions(table, mine, values=[D1])
    read = read_partitions(table.refresh(), values=[D1])
    assert read.schema == table.scan().to_arrow().schema
    assert sorted_rows(read) == sorted_rows(mine)

    replace_partitions(table, mine, values=[D1])
    # Another writer (here PyIceberg itself, as another process would) commits in between.
    other = ensure_table(local_catalog(catalog_path, warehouse), EVENTS)
    other.overwrite(events([(D1, "c", 3)]), overwrite_filter=partition_filter("log_date", [D1]))
    assert sorted_rows(read_partitions(table.refresh(), values=[D1])) == sorted_rows(events([(D1, "c", 3)]))


def _write_days(catalog_url: str, warehouse: str, first_day: int, rounds: int) -> None:
    """One writer process: replace its own days of the shared table, over and over."""
    table = ensure_table(sql_catalog(catalog_url, warehouse), EVENTS)
    for n in range(rounds):
        day = dt.date(2026, 2, first_day + n % 3)
        # Two writers in a tight loop collide far more often than pool-limited runs do, and a loaded
        # machine can starve one of them for many of the other's commits: the retry budget is not
        # what this test is about.
        replace_partitions(table, events([(day, "alice", n), (day, "bob", n)]), values=[day], generations={day: n},
                           retries=30)


def assert_concurrent_writers_lose_nothing(catalog_url: str, warehouse: str) -> None:
    """Two processes commit their own days to one table at once: every commit lands, none is lost."""
    import concurrent.futures
    import multiprocessing

    ensure_table(sql_catalog(catalog_url, warehouse), EVENTS)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in [pool.submit(_write_days, catalog_url, warehouse, first, 12) for first in (1, 10)]:
            done.result()
    table = ensure_table(sql_catalog(catalog_url, warehouse), EVENTS)
    by_day = sorted((r["log_date"].day, r["user"], r["n"]) for r in table.scan().to_arrow().to_pylist())
    # Each writer's last round (n = 11, 10, 9 for its three days) is all that remains of each day.
    assert by_day == sorted((first + n % 3, user, n) for first in (1, 10) for n in (9, 10, 11)
                            for user in ("alice", "bob"))
    assert source_generations(table) == {dt.date(2026, 2, first + n % 3): n for first in (1, 10) for n in (9, 10, 11)}


def test_two_processes_committing_to_one_sqlite_catalog_lose_nothing(tmp_path):
    """Pools keep one writer at a time in Dagster; the write path must still survive a race."""
    assert_concurrent_writers_lose_nothing(sqlite_catalog_url(tmp_path / "catalog.db"), (tmp_path / "warehouse").as_uri())


def test_manifests_are_merged_so_a_month_of_days_plans_from_a_few(tmp_path):
    catalog = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")
    # A table made before the merge settings existed is brought up to date when loaded.
    catalog.create_namespace(EVENTS.namespace)
    catalog.create_table(EVENTS.identifier, schema=EVENTS.schema)
    table = ensure_table(catalog, EVENTS)
    assert table.properties["commit.manifest-merge.enabled"] == "true"
    days = [D1 + dt.timedelta(days=n) for n in range(30)]
    for n, day in enumerate(days):
        replace_partitions(table, events([(day, "a", n)]), values=[day])
        table = table.refresh()
    assert len(table.current_snapshot().manifests(table.io)) <= 2
    assert sorted(r["n"] for r in table.scan().to_arrow().to_pylist()) == list(range(30))


def test_a_commit_built_from_older_sources_than_the_table_holds_is_refused(tmp_path):
    catalog_path, warehouse = tmp_path / "catalog.db", tmp_path / "warehouse"
    table = ensure_table(local_catalog(catalog_path, warehouse), EVENTS)
    replace_partitions(table, events([(D1, "a", 1), (D2, "a", 1)]), values=[D1, D2], generations={D1: 1, D2: 1})
    stale = ensure_table(local_catalog(catalog_path, warehouse), EVENTS)  # a run that read generation 1 ...
    # ... while another run commits day 1 from generation 2
    replace_partitions(table.refresh(), events([(D1, "b", 2)]), values=[D1], generations={D1: 2})

    with pytest.raises(StaleSourceError, match=r"2026-01-01: this write was built from generation 1, the table "
                                               r"holds 2") as refused:
        replace_partitions(stale, events([(D1, "a", 9)]), values=[D1], generations={D1: 1})
    assert refused.value.stale == {D1: (1, 2)}
    table = table.refresh()
    assert sorted_rows(read_partitions(table, values=[D1])) == sorted_rows(events([(D1, "b", 2)]))
    # The same sources again (a re-run) and other days' older sources are fine.
    replace_partitions(table, events([(D1, "b", 3)]), values=[D1], generations={D1: 2})
    replace_partitions(table.refresh(), events([(D2, "c", 4)]), values=[D2], generations={D2: 1})
    assert source_generations(table.refresh()) == {D1: 2, D2: 1}
    assert source_generations(table, [D1, D3]) == {D1: 2, D3: 0}


def test_a_whole_table_replace_must_be_built_from_every_day_the_table_holds(tmp_path):
    table = ensure_table(local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse"), EVENTS)
    replace_table(table, events([(D1, "a", 1), (D2, "a", 2)]), generations={D1: 1, D2: 1})
    with pytest.raises(StaleSourceError) as refused:  # built before day 2 existed
        replace_table(table.refresh(), events([(D1, "a", 1)]), generations={D1: 1})
    assert refused.value.stale == {D2: (0, 1)}
    replace_table(table.refresh(), events([(D1, "a", 1), (D2, "a", 5), (D3, "a", 6)]), generations={D1: 1, D2: 2, D3: 1})
    assert source_generations(table.refresh()) == {D1: 1, D2: 2, D3: 1}


class _LockedOnce(SqlCatalog):
    """A SQL catalog whose next commit, once armed, meets SQLite's write lock held past the busy timeout."""

    locked = False

    def commit_table(self, table, requirements, updates):
        if self.locked:
            self.locked = False
            raise OperationalError("UPDATE iceberg_tables ...", {}, sqlite3.OperationalError("database is locked"))
        return super().commit_table(table, requirements, updates)


def test_a_commit_that_meets_a_locked_sqlite_catalog_is_retried(tmp_path):
    local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")  # creates both
    catalog = _LockedOnce("packetx", uri=f"sqlite:///{tmp_path / 'catalog.db'}",
                          warehouse=(tmp_path / "warehouse").as_uri())
    table = ensure_table(catalog, EVENTS)
    catalog.locked = True
    replace_partitions(table, events([(D1, "a", 1)]), values=[D1], generations={D1: 1})
    assert not catalog.locked
    assert sorted_rows(table.refresh().scan().to_arrow()) == sorted_rows(events([(D1, "a", 1)]))
    assert "timeout=30" in sqlite_catalog_url(tmp_path / "catalog.db")


#: Events by day (the partition column stays), then the same at another grain: ``n`` summed per day,
#: ``user`` gone, ``users`` new between the two.
BY_DAY = TableDef("test_ns", "by_day", EVENTS.schema, partition_by=("log_date",))
DAILY = TableDef(
    "test_ns",
    "by_day",
    pa.schema([pa.field("log_date", pa.date32(), False), pa.field("users", pa.int64(), False),
               pa.field("n", pa.int64(), False)]),
    partition_by=("log_date",),
)


def test_a_table_migrates_to_a_new_schema_in_one_commit_and_a_stale_migrator_changes_nothing(tmp_path):
    catalog = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")
    table = ensure_table(catalog, BY_DAY)
    replace_partitions(table, events([(D1, "a", 1), (D1, "b", 2), (D2, "a", 4)]), values=[D1, D2], generations={D1: 3, D2: 5})
    stale = catalog.load_table(BY_DAY.identifier)
    daily = pa.table({"log_date": [D1, D2], "users": [2, 1], "n": [3, 4]})

    migrate_table(catalog.load_table(BY_DAY.identifier), DAILY, daily)
    migrated = catalog.load_table(BY_DAY.identifier)
    assert migrated.schema().column_names == ["log_date", "users", "n"]
    assert by_day(migrated.scan().to_arrow()) == daily.to_pylist()
    assert source_generations(migrated) == {D1: 3, D2: 5}  # the same table: its record of sources stays

    with pytest.raises(CommitFailedException):  # loaded before the migration: it may not redo it
        migrate_table(stale, DAILY, pa.table({"log_date": [D1], "users": [9], "n": [9]}))
    assert by_day(catalog.load_table(BY_DAY.identifier).scan().to_arrow()) == daily.to_pylist()


def by_day(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["log_date"])
