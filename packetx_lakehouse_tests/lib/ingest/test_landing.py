import datetime as dt

from packetx_lakehouse.lib.ingest.landing import (
    Cursor,
    DayRequest,
    day_run_key,
    diff_landing,
    dump_cursor,
    group_landing_by_day,
    load_cursor,
)
from packetx_lakehouse.lib.ingest.problems import BAD_NAME, SKIPPED, LandingProblem
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore, ObjectInfo

NOV_20 = dt.date(2026, 11, 20)
ALICE = ObjectInfo("alice-2026-11-20.csv", 100, "1")
BOB = ObjectInfo("bob-2026-11-20.csv.gz", 50, "etag-b")
NOTES = LandingProblem(None, "notes.txt", BAD_NAME, "not named <user>-<YYYY-MM-DD>.csv[.gz]")


def in_range(day: dt.date, what: str) -> str | None:
    return None if day >= dt.date(2025, 1, 1) else f"{what} is dated {day}, before the first partition"


def test_cursor_round_trips_as_compact_json_and_the_older_format_still_loads():
    cursor = Cursor({"b.csv": (2, "9"), "a.csv": (1, "etag")}, {"notes.txt": "0badc0de"})
    assert dump_cursor(cursor) == '{"files":{"a.csv":[1,"etag"],"b.csv":[2,"9"]},"reported":{"notes.txt":"0badc0de"}}'
    assert load_cursor(dump_cursor(cursor)) == cursor
    assert dump_cursor(Cursor({"a.csv": (1, "e")})) == '{"files":{"a.csv":[1,"e"]}}'
    assert load_cursor(None) == Cursor()
    # Written by the sensor before it remembered reported problems: a bare file map.
    assert load_cursor('{"a.csv":[1,"etag"]}') == Cursor({"a.csv": (1, "etag")})


def test_run_key_names_the_whole_day_state_not_the_listing_order():
    assert day_run_key(NOV_20, [ALICE, BOB]) == day_run_key(NOV_20, [BOB, ALICE])
    assert day_run_key(NOV_20, [ALICE, BOB]).startswith("2026-11-20:")
    grown = ObjectInfo(ALICE.key, 120, "2")
    assert day_run_key(NOV_20, [grown, BOB]) != day_run_key(NOV_20, [ALICE, BOB])


def test_new_then_unchanged_then_grown():
    first = diff_landing(Cursor(), {NOV_20: [ALICE]}, [], in_range, 5)
    assert first.requests == [DayRequest("2026-11-20", day_run_key(NOV_20, [ALICE]))]
    assert first.cursor == Cursor({ALICE.key: (100, "1")}) and first.messages == []

    again = diff_landing(first.cursor, {NOV_20: [ALICE]}, [], in_range, 5)
    assert again.requests == [] and again.cursor == first.cursor

    grown = ObjectInfo(ALICE.key, 130, "2")
    third = diff_landing(again.cursor, {NOV_20: [grown, BOB]}, [], in_range, 5)
    assert third.requests == [DayRequest("2026-11-20", day_run_key(NOV_20, [grown, BOB]))]
    assert third.cursor.files == {ALICE.key: (130, "2"), BOB.key: (50, "etag-b")}


def test_a_rewrite_of_the_same_size_counts_as_a_change_and_deleted_files_leave_the_cursor():
    rewritten = ObjectInfo(ALICE.key, 100, "7")
    cursor = Cursor({ALICE.key: (100, "1"), "gone-2026-11-19.csv": (5, "3")})
    diff = diff_landing(cursor, {NOV_20: [rewritten]}, [], in_range, 5)
    assert [r.partition_key for r in diff.requests] == ["2026-11-20"]
    assert diff.cursor.files == {ALICE.key: (100, "7")}


def test_each_problem_is_reported_once_until_it_changes_or_goes():
    link = LandingProblem(None, "evil-2026-11-20.csv", SKIPPED, "symbolic link (never followed)")
    first = diff_landing(Cursor(), {}, [NOTES, link], in_range, 5)
    assert first.messages == [
        "Not ingested: notes.txt: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not ingested: evil-2026-11-20.csv: symbolic link (never followed)",
    ]
    assert first.requests == [] and first.cursor.files == {}
    assert diff_landing(first.cursor, {}, [NOTES, link], in_range, 5).messages == []  # the next tick: silence

    as_folder = LandingProblem(None, "evil-2026-11-20.csv", SKIPPED, "sub-folder (the landing area is read flat)")
    changed = diff_landing(first.cursor, {}, [NOTES, as_folder], in_range, 5)
    assert changed.messages == ["Not ingested: evil-2026-11-20.csv: sub-folder (the landing area is read flat)"]
    gone = diff_landing(changed.cursor, {}, [], in_range, 5)
    assert gone.cursor.reported == {}
    assert diff_landing(gone.cursor, {}, [NOTES], in_range, 5).messages == [first.messages[0]]  # back: told again


def test_out_of_range_is_reported_once_and_stays_unseen():
    old = ObjectInfo("alice-2024-12-31.csv", 10, "1")
    diff = diff_landing(Cursor(), {dt.date(2024, 12, 31): [old]}, [NOTES], in_range, 5)
    assert diff.requests == []
    assert diff.cursor.files == {}
    assert diff.messages == [
        "Not ingested: notes.txt: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not requested: alice-2024-12-31.csv is dated 2024-12-31, before the first partition",
    ]
    again = diff_landing(diff.cursor, {dt.date(2024, 12, 31): [old]}, [NOTES], in_range, 5)
    assert again.messages == [] and again.cursor.files == {}


def test_catch_up_requests_oldest_first_and_leaves_the_cut_off_days_unseen():
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=n) for n in range(10)]
    by_day = {day: [ObjectInfo(f"alice-{day}.csv", 10 + n, str(n))] for n, day in enumerate(days)}

    first = diff_landing(Cursor(), by_day, [], in_range, 4)
    assert [r.partition_key for r in first.requests] == [str(day) for day in days[:4]]
    assert first.cursor.files == {f"alice-{day}.csv": (10 + n, str(n)) for n, day in enumerate(days[:4])}
    assert first.messages == ["6 more changed day(s) (2026-11-05..2026-11-10) wait for the next ticks (at most 4 per tick)"]

    second = diff_landing(first.cursor, by_day, [], in_range, 4)
    assert [r.partition_key for r in second.requests] == [str(day) for day in days[4:8]]
    third = diff_landing(second.cursor, by_day, [], in_range, 4)
    assert [r.partition_key for r in third.requests] == [str(day) for day in days[8:]]
    assert third.messages == []
    assert diff_landing(third.cursor, by_day, [], in_range, 4).requests == []


def test_objects_the_archive_already_holds_are_seen_without_a_run_while_new_and_grown_ones_are_requested():
    nov_21 = NOV_20 + dt.timedelta(days=1)
    carol = ObjectInfo("carol-2026-11-21.csv", 70, "5")
    by_day = {NOV_20: [ALICE, BOB], nov_21: [carol]}
    # The archive took in alice and bob as they are now, and carol when she was shorter.
    seen = {NOV_20: {("alice-2026-11-20.csv", 100, "1"), ("bob-2026-11-20.csv.gz", 50, "etag-b")},
            nov_21: {("carol-2026-11-21.csv", 40, "4")}}
    asked: list[dt.date] = []

    def archived(day):
        asked.append(day)
        return seen.get(day, set())

    diff = diff_landing(Cursor(), by_day, [], in_range, 5, archived=archived)  # a lost cursor
    assert [r.partition_key for r in diff.requests] == ["2026-11-21"]
    assert diff.cursor.files == {ALICE.key: (100, "1"), BOB.key: (50, "etag-b"), carol.key: (70, "5")}
    assert asked == [NOV_20, nov_21]
    asked.clear()
    assert diff_landing(diff.cursor, by_day, [], in_range, 5, archived=archived).requests == []
    assert asked == []  # nothing changed: the archive is not even asked


def test_the_flat_listing_splits_into_days_and_problems(tmp_path):
    landing = LocalObjectStore(tmp_path)
    for name in ("alice-2026-11-20.csv", "bob-2026-13-45.csv", "notes.txt", ".hidden-2026-11-20.csv"):
        (tmp_path / name).write_text("x")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "alice-2026-11-20.csv").write_text("y")
    by_day, problems = group_landing_by_day(landing)
    assert {day: [i.key for i in infos] for day, infos in by_day.items()} == {NOV_20: ["alice-2026-11-20.csv"]}
    assert [(p.object_key, p.kind, p.reason) for p in problems] == [
        (".hidden-2026-11-20.csv", SKIPPED, "hidden entry (name starts with '.')"),
        ("bob-2026-13-45.csv", BAD_NAME, "invalid date 2026-13-45"),
        ("notes.txt", BAD_NAME, "not named <user>-<YYYY-MM-DD>.csv[.gz]"),
        ("old/", SKIPPED, "sub-folder (the landing area is read flat)"),
    ]
