"""The incremental write primitives: appends and hour replacements that continue a day's
generation, the totals they keep, and the changes a later reader recovers from their snapshots."""

import datetime as dt

import pyarrow as pa
import pytest
from pyiceberg.expressions import And, EqualTo, In

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    CHANGES_SUMMARY,
    MovedSourceError,
    RECENT_SNAPSHOTS,
    StaleSourceError,
    append_rows,
    changes_since,
    ensure_table,
    local_catalog,
    recorded_totals,
    replace_partitions,
    replace_rows,
    source_generations,
)

HOURLY = TableDef("ns", "hourly", pa.schema([
    pa.field("log_date", pa.date32(), False), pa.field("hour", pa.int64(), False),
    pa.field("kb", pa.float64(), False), pa.field("rows", pa.int64(), False)]), key=("log_date", "hour"))
D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


@pytest.fixture
def table(tmp_path):
    return ensure_table(local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse"), HOURLY)


def rows(day: dt.date, hours: list[int], kb: float = 1.5) -> pa.Table:
    return pa.table({"log_date": pa.array([day] * len(hours), pa.date32()), "hour": pa.array(hours, pa.int64()),
                     "kb": pa.array([kb] * len(hours)), "rows": pa.array([2] * len(hours), pa.int64())},
                    schema=HOURLY.schema)


def content(table) -> list[tuple]:
    data = table.refresh().scan().to_arrow()
    return sorted(zip(*(data.column(n).to_pylist() for n in data.column_names)))


def test_appends_continue_a_day_generation_by_generation_and_keep_its_totals(table):
    replace_partitions(table, rows(D1, [0, 1]), values=[D1], generations={D1: 1}, sums=("kb", "rows"))
    manifests_before = {m.manifest_path for m in table.refresh().current_snapshot().manifests(table.io)}
    append_rows(table, rows(D1, [2]), continues={D1: 1}, generations={D1: 2}, sums=("kb", "rows"))
    table = table.refresh()
    # A fast append: the manifests of the day so far are kept as they are, one is added.
    manifests_after = {m.manifest_path for m in table.current_snapshot().manifests(table.io)}
    assert manifests_before < manifests_after and len(manifests_after - manifests_before) == 1
    assert source_generations(table, [D1]) == {D1: 2}
    assert recorded_totals(table, D1) == {"records": 3, "kb": 4_500_000, "rows": 6}
    assert table.current_snapshot().summary.get(CHANGES_SUMMARY) == '{"2026-03-01": [1, 2]}'


def test_a_commit_whose_predecessor_moved_is_refused_and_changes_nothing(table):
    append_rows(table, rows(D1, [0]), continues={D1: 0}, generations={D1: 1})
    with pytest.raises(MovedSourceError, match="continues from generation 0, the table holds 1"):
        append_rows(table, rows(D1, [0]), continues={D1: 0}, generations={D1: 1})
    with pytest.raises(StaleSourceError):  # the step's redo catches both the same way
        replace_rows(table, rows(D1, [0]), where=EqualTo("hour", 0), replaced=rows(D1, []),
                     continues={D1: 2}, generations={D1: 3})
    assert content(table) == [(D1, 0, 1.5, 2)]


def test_replacing_an_hour_drops_its_files_rewrites_shared_ones_and_moves_the_totals(table):
    replace_partitions(table, rows(D1, [0, 1, 2]), values=[D1], generations={D1: 1}, sums=("kb",))
    replace_partitions(table, rows(D2, [5]), values=[D2], generations={D2: 1}, sums=("kb",))
    # Hour 2 of D1 is in the whole-day file: that file is rewritten without it.
    replace_rows(table, rows(D1, [2], kb=4.0), where=And(EqualTo("log_date", D1.isoformat()), In("hour", [2])),
                 replaced=rows(D1, [2]), continues={D1: 1}, generations={D1: 2}, sums=("kb",))
    assert recorded_totals(table.refresh(), D1) == {"records": 3, "kb": 7_000_000}
    # Hour 2 again: now its rows are a file of their own, dropped whole.
    replace_rows(table, rows(D1, [2, 3], kb=5.0), where=And(EqualTo("log_date", D1.isoformat()), In("hour", [2, 3])),
                 replaced=rows(D1, [2], kb=4.0), continues={D1: 2}, generations={D1: 3}, sums=("kb",))
    assert content(table) == [(D1, 0, 1.5, 2), (D1, 1, 1.5, 2), (D1, 2, 5.0, 2), (D1, 3, 5.0, 2), (D2, 5, 1.5, 2)]
    assert recorded_totals(table.refresh(), D1) == {"records": 4, "kb": 13_000_000}
    assert recorded_totals(table.refresh(), D2) == {"records": 1, "kb": 1_500_000}


def test_a_reader_recovers_exactly_what_the_commits_since_its_generation_added_and_removed(table):
    append_rows(table, rows(D1, [0]), continues={D1: 0}, generations={D1: 1})
    append_rows(table, rows(D2, [9]), continues={D2: 0}, generations={D2: 1})  # another day between
    append_rows(table, rows(D1, [1]), continues={D1: 1}, generations={D1: 2})
    replace_rows(table, rows(D1, [1, 2], kb=2.0), where=And(EqualTo("log_date", D1.isoformat()), In("hour", [1])),
                 replaced=rows(D1, [1]), continues={D1: 2}, generations={D1: 3})
    since_start = changes_since(table.refresh(), D1, 0)
    assert since_start.generation == 3 and since_start.removed.num_rows == 0  # an added-then-removed file counts for neither
    assert sorted(since_start.added.column("hour").to_pylist()) == [0, 1, 2]
    since_two = changes_since(table.refresh(), D1, 2)
    assert sorted(since_two.added.column("hour").to_pylist()) == [1, 2]
    assert since_two.removed.column("hour").to_pylist() == [1]
    assert changes_since(table.refresh(), D1, 3).added.num_rows == 0


def test_changes_cannot_be_told_across_a_replacement_or_an_expired_snapshot(table):
    append_rows(table, rows(D1, [0]), continues={D1: 0}, generations={D1: 1})
    replace_partitions(table, rows(D1, [0, 1]), values=[D1], generations={D1: 2})
    append_rows(table, rows(D1, [3]), continues={D1: 2}, generations={D1: 3})
    assert changes_since(table.refresh(), D1, 1) is None  # the day was replaced on the way
    assert changes_since(table.refresh(), D1, 2).added.column("hour").to_pylist() == [3]
    for generation in range(3, 3 + RECENT_SNAPSHOTS + 1):
        append_rows(table, rows(D2, [generation]), continues={D2: generation - 3}, generations={D2: generation - 2})
    assert changes_since(table.refresh(), D1, 2) is None  # that commit's snapshot has expired


def test_counts_that_are_no_sum_of_rows_are_set_by_a_replacement_and_added_by_appends(table):
    replace_partitions(table, rows(D1, [0]), values=[D1, D2], generations={D1: 1, D2: 1}, sums=("rows",),
                       counted={D1: {"headers": 2, "blank_lines": 1}, D2: {"headers": 0, "blank_lines": 0}})
    append_rows(table, rows(D1, [1]), continues={D1: 1}, generations={D1: 2}, sums=("rows",),
                counted={D1: {"headers": 1, "blank_lines": 0}})
    table = table.refresh()
    assert recorded_totals(table, D1) == {"records": 2, "rows": 4, "headers": 3, "blank_lines": 1}
    assert recorded_totals(table, D2) == {"records": 0, "rows": 0, "headers": 0, "blank_lines": 0}
    # A day whose totals were kept without a count (an earlier version) does not start counting
    # half-way: the count stays unrecorded until the day is replaced whole.
    replace_partitions(table, rows(D2, [0]), values=[D2], generations={D2: 2}, sums=("rows",))
    append_rows(table, rows(D2, [1]), continues={D2: 2}, generations={D2: 3}, sums=("rows",),
                counted={D2: {"headers": 1}})
    assert recorded_totals(table.refresh(), D2) == {"records": 2, "rows": 4}
    replace_partitions(table, rows(D2, [0]), values=[D2], generations={D2: 4}, sums=("rows",),
                       counted={D2: {"headers": 5}})
    assert recorded_totals(table.refresh(), D2) == {"records": 1, "rows": 2, "headers": 5}
