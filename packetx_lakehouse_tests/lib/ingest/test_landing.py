import datetime as dt

from packetx_lakehouse.lib.ingest.landing import (
    DayRequest,
    day_run_key,
    diff_landing,
    dump_cursor,
    load_cursor,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo

NOV_20 = dt.date(2026, 11, 20)
ALICE = ObjectInfo("alice-2026-11-20.csv", 100, "1")
BOB = ObjectInfo("bob-2026-11-20.csv.gz", 50, "etag-b")


def in_range(day: dt.date, what: str) -> str | None:
    return None if day >= dt.date(2025, 1, 1) else f"{what} is dated {day}, before the first partition"


def test_cursor_round_trips_as_compact_json():
    cursor = {"b.csv": (2, "9"), "a.csv": (1, "etag")}
    assert dump_cursor(cursor) == '{"a.csv":[1,"etag"],"b.csv":[2,"9"]}'
    assert load_cursor(dump_cursor(cursor)) == cursor
    assert load_cursor(None) == {}


def test_run_key_names_the_whole_day_state_not_the_listing_order():
    assert day_run_key(NOV_20, [ALICE, BOB]) == day_run_key(NOV_20, [BOB, ALICE])
    assert day_run_key(NOV_20, [ALICE, BOB]).startswith("2026-11-20:")
    grown = ObjectInfo(ALICE.key, 120, "2")
    assert day_run_key(NOV_20, [grown, BOB]) != day_run_key(NOV_20, [ALICE, BOB])


def test_new_then_unchanged_then_grown():
    first = diff_landing({}, {NOV_20: [ALICE]}, [], in_range, 5)
    assert first.requests == [DayRequest("2026-11-20", day_run_key(NOV_20, [ALICE]))]
    assert first.cursor == {ALICE.key: (100, "1")} and first.messages == []

    again = diff_landing(first.cursor, {NOV_20: [ALICE]}, [], in_range, 5)
    assert again.requests == [] and again.cursor == first.cursor

    grown = ObjectInfo(ALICE.key, 130, "2")
    third = diff_landing(again.cursor, {NOV_20: [grown, BOB]}, [], in_range, 5)
    assert third.requests == [DayRequest("2026-11-20", day_run_key(NOV_20, [grown, BOB]))]
    assert third.cursor == {ALICE.key: (130, "2"), BOB.key: (50, "etag-b")}


def test_a_rewrite_of_the_same_size_counts_as_a_change_and_deleted_files_leave_the_cursor():
    rewritten = ObjectInfo(ALICE.key, 100, "7")
    diff = diff_landing({ALICE.key: (100, "1"), "gone-2026-11-19.csv": (5, "3")}, {NOV_20: [rewritten]}, [], in_range, 5)
    assert [r.partition_key for r in diff.requests] == ["2026-11-20"]
    assert diff.cursor == {ALICE.key: (100, "7")}


def test_junk_and_out_of_range_are_reported_and_out_of_range_stays_unseen():
    old = ObjectInfo("alice-2024-12-31.csv", 10, "1")
    diff = diff_landing({}, {dt.date(2024, 12, 31): [old]}, ["notes.txt"], in_range, 5)
    assert diff.requests == []
    assert diff.cursor == {}
    assert diff.messages == [
        "Ignored notes.txt: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not requested: alice-2024-12-31.csv is dated 2024-12-31, before the first partition",
    ]


def test_catch_up_requests_oldest_first_and_leaves_the_cut_off_days_unseen():
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=n) for n in range(10)]
    by_day = {day: [ObjectInfo(f"alice-{day}.csv", 10 + n, str(n))] for n, day in enumerate(days)}

    first = diff_landing({}, by_day, [], in_range, 4)
    assert [r.partition_key for r in first.requests] == [str(day) for day in days[:4]]
    assert first.cursor == {f"alice-{day}.csv": (10 + n, str(n)) for n, day in enumerate(days[:4])}
    assert first.messages == ["6 more changed day(s) (2026-11-05..2026-11-10) wait for the next ticks (at most 4 per tick)"]

    second = diff_landing(first.cursor, by_day, [], in_range, 4)
    assert [r.partition_key for r in second.requests] == [str(day) for day in days[4:8]]
    third = diff_landing(second.cursor, by_day, [], in_range, 4)
    assert [r.partition_key for r in third.requests] == [str(day) for day in days[8:]]
    assert third.messages == []
    assert diff_landing(third.cursor, by_day, [], in_range, 4).requests == []
