"""Compaction merges the small files of refreshed days and changes nothing else."""

import datetime as dt

import pyarrow as pa
import pytest
from pyiceberg.expressions import And, EqualTo, In

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.compaction import MAX_FILES_CLOSED, compact_table
from packetx_lakehouse.lib.storage.iceberg import (
    append_rows,
    changes_since,
    ensure_table,
    local_catalog,
    recorded_totals,
    replace_rows,
    source_generations,
)

HOURLY = TableDef("ns", "hourly", pa.schema([
    pa.field("log_date", pa.date32(), False), pa.field("hour_utc", pa.timestamp("us", tz="UTC"), False),
    pa.field("kb", pa.float64(), False)]), key=("log_date", "hour_utc"), totals=("kb",))
OLD, TODAY = dt.date(2026, 3, 1), dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 10, 15, 20, tzinfo=dt.UTC)


@pytest.fixture
def table(tmp_path):
    return ensure_table(local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse"), HOURLY)


def hours(day: dt.date, *hours_of_day: int, kb: float = 1.0) -> pa.Table:
    stamps = [dt.datetime.combine(day, dt.time(h), dt.UTC) for h in hours_of_day]
    return pa.table({"log_date": pa.array([day] * len(stamps), pa.date32()), "hour_utc": stamps,
                     "kb": [kb] * len(stamps)}, schema=HOURLY.schema)


def files_of(table, day: dt.date) -> list:
    return [t.file for t in table.refresh().scan(row_filter=EqualTo("log_date", day.isoformat())).plan_files()]


def rows(table) -> list[tuple]:
    data = table.refresh().scan().to_arrow()
    return sorted(zip(*(data.column(n).to_pylist() for n in data.column_names)))


def test_a_closed_day_becomes_few_files_and_the_open_days_current_hour_stays_apart(table):
    for generation, hour in enumerate(range(0, 20), start=1):  # a day refreshed hour after hour: a file each
        append_rows(table, hours(OLD, hour), continues={OLD: generation - 1}, generations={OLD: generation}, sums=("kb",))
    for generation, hour in enumerate((12, 13, 14, 15, 15), start=1):  # today: hour 15 is still written
        append_rows(table, hours(TODAY, hour), continues={TODAY: generation - 1}, generations={TODAY: generation},
                    sums=("kb",))
    before = rows(table)
    generations, totals = source_generations(table.refresh()), recorded_totals(table.refresh(), OLD)
    done = compact_table(table, now=NOW, closed_before=TODAY - dt.timedelta(days=1), hour_column="hour_utc",
                         sort_by=("hour_utc",))
    assert len(files_of(table, OLD)) <= MAX_FILES_CLOSED
    today = files_of(table, TODAY)
    assert len(today) == 3  # hours 12-14 merged into one; both files of hour 15 left for the next refresh
    assert rows(table) == before and done.rows == 20 + 3
    assert source_generations(table.refresh()) == generations and recorded_totals(table.refresh(), OLD) == totals
    # A refresh of the current hour replaces only small files: the merged one is not touched.
    replace_rows(table, hours(TODAY, 15, kb=2.0), where=And(EqualTo("log_date", TODAY.isoformat()),
                 In("hour_utc", [dt.datetime.combine(TODAY, dt.time(15), dt.UTC).isoformat()])),
                 replaced=hours(TODAY, 15, 15), continues={TODAY: 5}, generations={TODAY: 6}, sums=("kb",))
    merged = [f for f in today if f.record_count == 3]
    assert merged and merged[0].file_path in {f.file_path for f in files_of(table, TODAY)}


def test_changes_read_across_a_compaction_are_the_rows_the_commits_added(table):
    append_rows(table, hours(TODAY, 1), continues={TODAY: 0}, generations={TODAY: 1})
    append_rows(table, hours(TODAY, 2), continues={TODAY: 1}, generations={TODAY: 2})
    compact_table(table, now=NOW, closed_before=TODAY, hour_column="hour_utc")
    append_rows(table, hours(TODAY, 3), continues={TODAY: 2}, generations={TODAY: 3})
    changes = changes_since(table.refresh(), TODAY, 1)
    assert sorted(h.hour for h in changes.added.column("hour_utc").to_pylist()) == [2, 3]
    assert changes.removed.num_rows == 0


def test_a_closed_day_bigger_than_four_target_files_still_ends_in_four(table):
    """The table's target file size is what PyIceberg bins rows by (their size in memory): a closed
    day of 100 busy devices came out of compaction as 6 files. Here a tiny target stands for it."""
    with table.transaction() as txn:
        txn.set_properties({"write.target-file-size-bytes": "64"})
    for generation, hour in enumerate(range(0, 20), start=1):
        append_rows(table.refresh(), hours(OLD, hour), continues={OLD: generation - 1},
                    generations={OLD: generation}, sums=("kb",))
    before = rows(table)
    compact_table(table.refresh(), now=NOW, closed_before=TODAY, hour_column="hour_utc", sort_by=("hour_utc",))
    assert 1 <= len(files_of(table, OLD)) <= MAX_FILES_CLOSED
    assert rows(table) == before
