"""Silver extended refresh by refresh equals silver read whole, row for row.

Bronze rows come from real generated captures read by the real reader, cut into the pieces a
live refresh would see (whole minutes, minutes split in two, a device IP that moves, a DST
fall-back hour, duplicate lines, restart replays, bad lines), and fed to ``extend_silver`` the
way the transform step does: each piece with the conversations so far, the stored rows of a
user-day handed back when it must be read again.
"""

import datetime as dt

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.ingest.reader import read_traffic_log_bytes
from packetx_lakehouse.lib.schemas import SILVER_CONVERSATIONS, SILVER_PACKETS
from packetx_lakehouse.lib.transform.silver import SilverChange, extend_silver, to_silver

DAY = dt.date(2026, 3, 10)
FALL_BACK = dt.date(2026, 10, 25)  # Europe/Berlin repeats 02:00-02:59
ZONES = {"carol": "Europe/Berlin"}
AT = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)


def capture(user: str, day: dt.date, *, seed: int = 3, pairs: int = 12, minutes: int = 90, restarts: int = 1,
            bad_lines: int = 0, local_ip: str | None = None) -> bytes:
    return generate_day(user, day, seed=seed, local_ip=local_ip,
                        options=GeneratorOptions(minutes_per_day=minutes, pairs_per_minute=pairs, restarts=restarts,
                                                 bad_lines=bad_lines))


def bronze(user: str, day: dt.date, data: bytes) -> pa.Table:
    return read_traffic_log_bytes(data, source_file=f"{user}-{day}.csv", log_date=day, ingested_at=AT).rows


def with_duplicates(data: bytes, every: int = 37) -> bytes:
    """Every ``every``-th data line written twice in a row (a device that wrote a line twice)."""
    lines = data.splitlines(keepends=True)
    out = [lines[0]]
    for number, line in enumerate(lines[1:], start=1):
        out += [line, line] if number % every == 0 else [line]
    return b"".join(out)


def moving_device(user: str, day: dt.date) -> bytes:
    """A capture whose device IP changes after its first quarter: later rows outvote the first IP."""
    first = capture(user, day, local_ip="192.168.1.50").splitlines(keepends=True)
    second = capture(user, day, seed=4, local_ip="192.168.1.77").splitlines(keepends=True)
    stamp = lambda line: line.split(b",")[1]  # noqa: E731
    cut = stamp(first[len(first) // 4])
    return b"".join([first[0], *[l for l in first[1:] if stamp(l) < cut], *[l for l in second[1:] if stamp(l) >= cut]])


def fall_back_day(user: str) -> bytes:
    """A Berlin device capturing through the repeated hour: 02:xx twice, in file order."""
    lines = capture(user, FALL_BACK, minutes=200, restarts=0).splitlines(keepends=True)
    repeated = [l.replace(b" 03:", b" 02:") for l in lines[1:] if b" 03:" in l]
    after = [l for l in lines[1:] if b" 03:" not in l and l.split(b",")[1] >= f"{FALL_BACK} 03".encode()]
    before = [l for l in lines[1:] if l.split(b",")[1] < f"{FALL_BACK} 03".encode()]
    return b"".join([lines[0], *before, *repeated, *after])


def pieces(table: pa.Table, cuts: list[int]) -> list[pa.Table]:
    """``table`` cut at line numbers (``line_number <= cut`` goes before the cut), per file."""
    bounds = [0, *sorted(set(cuts)), 1 << 62]
    lines = table.column("line_number")
    return [table.filter(pc.and_(pc.greater(lines, low), pc.less_equal(lines, high)))
            for low, high in zip(bounds, bounds[1:])]


def minute_cuts(table: pa.Table, every: int, split_minutes: bool) -> list[int]:
    """Cuts after every ``every``-th minute block (or in its middle, to split a block in two)."""
    frame = pl.from_arrow(table.select(["time_stamp", "line_number"])).sort("line_number")
    ends = frame.group_by("time_stamp", maintain_order=True).agg(first=pl.col("line_number").min(),
                                                                   last=pl.col("line_number").max())
    picked = ends[::every]
    return (((picked["first"] + picked["last"]) // 2) if split_minutes else picked["last"]).to_list()


class Refreshes:
    """What the transform step keeps between refreshes: stored silver rows and conversations."""

    def __init__(self) -> None:
        self.silver = SILVER_PACKETS.schema.empty_table()
        self.conversations = SILVER_CONVERSATIONS.schema.empty_table()
        self.input_rows = self.duplicates = 0
        self.replaced = 0

    def of(self, table: pa.Table, user_days) -> pa.Table:
        keys = pl.DataFrame({"log_date": [d for d, _ in user_days], "user": [u for _, u in user_days]},
                            schema={"log_date": pl.Date, "user": pl.String})
        return pl.from_arrow(table).join(keys, on=["log_date", "user"], how="semi").to_arrow().cast(table.schema)

    def without(self, table: pa.Table, user_days) -> pa.Table:
        keys = pl.DataFrame({"log_date": [d for d, _ in user_days], "user": [u for _, u in user_days]},
                            schema={"log_date": pl.Date, "user": pl.String})
        return pl.from_arrow(table).join(keys, on=["log_date", "user"], how="anti").to_arrow().cast(table.schema)

    def refresh(self, new: pa.Table) -> tuple[SilverChange, pa.Table] | None:
        """Apply ``new`` rows; returns the change and the stored rows it replaced."""
        if not new.num_rows:
            return None
        user_days = set(pl.from_arrow(new.select(["log_date", "user"])).unique().iter_rows())
        change = extend_silver(new, self.of(self.conversations, user_days), lambda days: self.of(self.silver, days),
                               ZONES)
        self.replaced += len(change.replaced)
        removed = self.of(self.silver, change.replaced)
        self.silver = pa.concat_tables([self.without(self.silver, change.replaced), change.added])
        touched = set(pl.from_arrow(change.conversations.select(["log_date", "user"])).unique().iter_rows())
        self.conversations = pa.concat_tables([self.without(self.conversations, touched), change.conversations])
        self.input_rows += sum(change.input_rows_by_day.values())
        self.duplicates += sum(change.exact_duplicates_by_day.values())
        return change, removed


def in_order(table: pa.Table, key: tuple[str, ...]) -> list[dict]:
    return table.sort_by([(k, "ascending") for k in key]).to_pylist()


def assert_same_as_whole(all_rows: pa.Table, refreshed: Refreshes) -> None:
    whole = to_silver(all_rows, ZONES)
    assert in_order(refreshed.silver, SILVER_PACKETS.key) == in_order(whole.table, SILVER_PACKETS.key)
    assert in_order(refreshed.conversations, SILVER_CONVERSATIONS.key) == in_order(whole.conversations,
                                                                                   SILVER_CONVERSATIONS.key)
    assert (refreshed.input_rows, refreshed.duplicates) == (whole.input_rows, whole.exact_duplicates)


def run(files: dict[tuple[str, dt.date], bytes], cut) -> Refreshes:
    tables = {key: bronze(*key, data) for key, data in files.items()}
    chunks = {key: pieces(table, cut(table)) for key, table in tables.items()}
    refreshed = Refreshes()
    for step in range(max(len(c) for c in chunks.values())):
        refreshed.refresh(pa.concat_tables([c[step] for c in chunks.values() if step < len(c)]))
    assert_same_as_whole(pa.concat_tables(tables.values()), refreshed)
    return refreshed


@pytest.mark.parametrize("every", [1, 7])
def test_minute_by_minute_refreshes_extend_silver_without_reading_a_user_day_again(every):
    files = {("alice", DAY): with_duplicates(capture("alice", DAY, bad_lines=3)),
             ("bob-smith", DAY): capture("bob-smith", DAY, restarts=2)}
    refreshed = run(files, lambda table: minute_cuts(table, every, split_minutes=False))
    assert refreshed.replaced == 0
    assert pc.sum(refreshed.silver.column("is_restart_replay")).as_py() > 0


def test_a_minute_split_between_two_refreshes_reads_its_user_day_again():
    files = {("alice", DAY): capture("alice", DAY, restarts=2)}
    refreshed = run(files, lambda table: minute_cuts(table, 10, split_minutes=True))
    assert refreshed.replaced > 0


def test_a_device_ip_that_moves_turns_its_user_day_around():
    files = {("dave", DAY): moving_device("dave", DAY), ("alice", DAY): capture("alice", DAY)}
    refreshed = run(files, lambda table: minute_cuts(table, 5, split_minutes=False))
    assert refreshed.replaced > 0
    assert set(refreshed.conversations.column("device_ip").to_pylist()) >= {"192.168.1.77"}


def test_a_repeated_dst_hour_is_read_with_its_whole_user_day():
    files = {("carol", FALL_BACK): fall_back_day("carol")}
    run(files, lambda table: minute_cuts(table, 3, split_minutes=False))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(1, 50), cuts=st.lists(st.integers(1, 400), max_size=8), restarts=st.integers(0, 3))
def test_any_cut_of_any_day_gives_what_the_whole_day_gives(seed, cuts, restarts):
    files = {("erin-li", DAY): with_duplicates(capture("erin-li", DAY, seed=seed, pairs=6, minutes=60,
                                                        restarts=restarts), every=11),
             ("frank", DAY): capture("frank", DAY, seed=seed + 1, pairs=4, minutes=40, restarts=0)}
    run(files, lambda table: cuts)
