"""Gold refreshed hour by hour equals gold built from the whole day, row for row.

The same pieces as ``test_silver_extend`` (whole minutes, split minutes, a device IP that moves,
restart replays, duplicates) go through ``extend_silver`` and then ``refresh_daily_tables``, the
way the transform step chains them: each refresh replaces the hours and days it touches in the
stored tables, read back from what earlier refreshes stored.
"""

import datetime as dt

import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_CELLS,
    GOLD_HOURLY_TABLES,
)
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse_tests.lib.transform.test_silver import bronze_table
from packetx_lakehouse_tests.lib.transform.test_silver_extend import (
    DAY,
    Refreshes,
    bronze,
    capture,
    in_order,
    minute_cuts,
    moving_device,
    pieces,
    with_duplicates,
)

NEXT_DAY = DAY + dt.timedelta(days=1)


class GoldRefreshes(Refreshes):
    """Silver refreshes, each followed by the gold refresh of what it changed."""

    def __init__(self) -> None:
        super().__init__()
        self.gold = {t: t.schema.empty_table() for t in GOLD_DAILY_TABLES}
        self.hours_touched = 0

    def refresh(self, new: pa.Table) -> None:
        applied = super().refresh(new)
        if applied is None:
            return
        change, removed = applied
        hours = gold.touched_hours(removed, change.added)
        days = sorted(set(hours["log_date"].to_list()))
        result = gold.refresh_daily_tables(
            removed, change.added, _of_hours(self.gold[GOLD_HOURLY_CELLS], hours), _of_days(self.conversations, days),
            _of_days(self.gold[GOLD_DAILY_USER_BANDWIDTH], days), change.replaced)
        assert result.hours.equals(hours)
        for table_def, rows in result.tables.items():
            kept = (_not_of_hours(self.gold[table_def], hours) if table_def in GOLD_HOURLY_TABLES
                    else _not_of_days(self.gold[table_def], days))
            self.gold[table_def] = pa.concat_tables([kept, rows])
        self.hours_touched += hours.height


def _of_hours(table: pa.Table, hours: pl.DataFrame) -> pa.Table:
    return pl.from_arrow(table).join(hours, on=["log_date", "hour_utc"], how="semi").to_arrow().cast(table.schema)


def _not_of_hours(table: pa.Table, hours: pl.DataFrame) -> pa.Table:
    return pl.from_arrow(table).join(hours, on=["log_date", "hour_utc"], how="anti").to_arrow().cast(table.schema)


def _of_days(table: pa.Table, days: list) -> pa.Table:
    return pl.from_arrow(table).filter(pl.col("log_date").is_in(days)).to_arrow().cast(table.schema)


def _not_of_days(table: pa.Table, days: list) -> pa.Table:
    return pl.from_arrow(table).filter(~pl.col("log_date").is_in(days)).to_arrow().cast(table.schema)


def run(files, cut) -> GoldRefreshes:
    tables = {key: bronze(*key, data) for key, data in files.items()}
    chunks = {key: pieces(table, cut(table)) for key, table in tables.items()}
    refreshed = GoldRefreshes()
    for step in range(max(len(c) for c in chunks.values())):
        refreshed.refresh(pa.concat_tables([c[step] for c in chunks.values() if step < len(c)]))
    whole = gold.build_daily_tables(refreshed.silver, refreshed.conversations)
    for table_def in GOLD_DAILY_TABLES:
        key = table_def.key
        assert in_order(refreshed.gold[table_def], key) == in_order(whole[table_def], key), table_def.name
    return refreshed


def test_gold_refreshed_minute_by_minute_equals_gold_built_whole():
    files = {("alice", DAY): with_duplicates(capture("alice", DAY, restarts=2)),
             ("bob-smith", DAY): capture("bob-smith", DAY, restarts=1, bad_lines=2),
             ("alice", NEXT_DAY): capture("alice", NEXT_DAY)}
    refreshed = run(files, lambda table: minute_cuts(table, 1, split_minutes=False))
    assert refreshed.replaced == 0 and refreshed.hours_touched > 0


def test_gold_follows_user_days_read_again_whole():
    files = {("alice", DAY): capture("alice", DAY, restarts=2), ("dave", DAY): moving_device("dave", DAY)}
    refreshed = run(files, lambda table: minute_cuts(table, 6, split_minutes=True))
    assert refreshed.replaced > 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(1, 40), cuts=st.lists(st.integers(1, 300), max_size=6))
def test_any_cut_gives_the_gold_of_the_whole_day(seed, cuts):
    files = {("erin-li", DAY): with_duplicates(capture("erin-li", DAY, seed=seed, pairs=6, minutes=50), every=9),
             ("frank", DAY): capture("frank", DAY, seed=seed, pairs=5, minutes=30, restarts=0)}
    run(files, lambda table: cuts)


def restart_block_cut(table: pa.Table) -> list[int]:
    """A cut in the middle of the restart replay block (the minute with the most rows): read in two
    refreshes, its first half is not a replay (too few of the pairs seen before), the whole is."""
    frame = pl.from_arrow(table.select(["time_stamp", "line_number"]))
    block = frame.group_by("time_stamp").agg(rows=pl.len(), first=pl.col("line_number").min()).sort("rows").row(-1,
                                                                                                        named=True)
    return [block["first"] + block["rows"] // 3]


def test_a_replay_block_split_between_two_refreshes_leaves_gold_as_if_read_whole():
    files = {("alice", DAY): capture("alice", DAY, pairs=20, minutes=200, restarts=1)}
    refreshed = run(files, restart_block_cut)
    assert refreshed.replaced == 1


def test_a_peak_set_by_half_a_replay_block_moves_when_the_block_turns_out_to_be_a_replay():
    """Four pairs, one a minute, then a restart re-emits all four. Its first half alone is traffic
    (two of four pairs: not a replay) and the day's busiest minute; whole, it is a replay."""
    pairs = [("8.8.8.8", "192.168.1.2"), ("192.168.1.2", "1.1.1.1"), ("9.9.9.9", "192.168.1.2"),
             ("192.168.1.2", "2.2.2.2")]
    rows = [("alice", f"2026-03-10 10:0{i}", *pair, 100.0, 100.0) for i, pair in enumerate(pairs)]
    rows += [("alice", "2026-03-10 10:04", *pair, 100.0, 400.0) for pair in pairs]
    table = bronze_table(rows)
    refreshed = GoldRefreshes()
    first, second = pieces(table, [5 + 2])  # lines 2..5 are the four minutes, 6..9 the replay
    refreshed.refresh(first)
    peak = refreshed.gold[GOLD_DAILY_USER_BANDWIDTH].to_pylist()[0]
    assert (peak["peak_minute_utc"].minute, peak["peak_minute_kb"]) == (4, 200.0)
    refreshed.refresh(second)
    daily = refreshed.gold[GOLD_DAILY_USER_BANDWIDTH].to_pylist()[0]
    assert (daily["peak_minute_utc"].minute, daily["peak_minute_kb"], daily["total_kb"]) == (0, 100.0, 400.0)
    whole = gold.build_daily_tables(refreshed.silver, refreshed.conversations)
    for table_def in GOLD_DAILY_TABLES:
        assert in_order(refreshed.gold[table_def], table_def.key) == in_order(whole[table_def], table_def.key)
