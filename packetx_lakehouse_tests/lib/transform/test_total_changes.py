"""The history of gold totals stays short whatever the refresh rate, and says what changed."""

import datetime as dt

import pyarrow as pa

from packetx_lakehouse.lib.ingest.archive import ArchivedFile, DayManifest, Part, Retraction
from packetx_lakehouse.lib.schemas import DAILY_TOTAL_CHANGES, GOLD_DAILY_USER_BANDWIDTH
from packetx_lakehouse.lib.transform.total_changes import (
    FILE_GREW,
    FIRST_RECORDED,
    NEW_FILE,
    REBUILT,
    RETRACTED,
    SEVERAL,
    SOURCES_UNKNOWN,
    Commit,
    file_changes,
    first_files,
    record_changes,
)

DAY = dt.date(2026, 11, 24)
T0 = dt.datetime(2026, 11, 24, 0, 1, tzinfo=dt.UTC)


def archived(name: str, lines: int) -> ArchivedFile:
    digest = f"{name}{lines:064d}"[-64:]
    part = Part(f"date={DAY}/{name}.gz", lines * 40, lines, digest, T0.isoformat())
    return ArchivedFile(name, digest, lines * 40, lines, (part,))


class Sources:
    """A day's manifest history, generation by generation, like the raw archive keeps it."""

    def __init__(self) -> None:
        self.manifests = {0: DayManifest(0, {})}

    def add(self, **lines: int) -> int:
        last = self.manifests[max(self.manifests)]
        files = {**last.files, **{f"{user}-{DAY}.csv": archived(f"{user}-{DAY}.csv", n) for user, n in lines.items()}}
        generation = last.generation + 1
        self.manifests[generation] = DayManifest(generation, files, last.retracted)
        return generation

    def retract(self, user: str) -> int:
        last = self.manifests[max(self.manifests)]
        name = f"{user}-{DAY}.csv"
        files = {k: v for k, v in last.files.items() if k != name}
        retraction = Retraction(name, "2026-11-27T10:03:00+00:00", "ops", "wrong device", last.files[name])
        generation = last.generation + 1
        self.manifests[generation] = DayManifest(generation, files, {**last.retracted, name: retraction})
        return generation

    def describe(self, day, before, after):
        now = self.manifests.get(after)
        if now is None:
            return None
        if before is None:
            return first_files(now)
        then = self.manifests.get(before)
        return None if then is None else file_changes(then, now)


def daily(**kb: float) -> pa.Table:
    rows = [{"log_date": DAY, "user": user, "total_kb": value, "inbound_kb": 0.0, "outbound_kb": value,
             "internal_kb": 0.0, "unknown_kb": 0.0, "distinct_remote_hosts": 1, "peak_minute_utc": T0,
             "peak_minute_kb": 1.0, "rows": int(value)} for user, value in kb.items()]
    return pa.Table.from_pylist(rows, schema=GOLD_DAILY_USER_BANDWIDTH.schema)


def record(history: pa.Table, after: pa.Table, sources: Sources, generation: int, minutes: int, *,
           first: bool = False, run: str = "run", max_rows: int = 24) -> pa.Table:
    commit = Commit(T0 + dt.timedelta(minutes=minutes), 1000 + minutes, f"{run}-{minutes}")
    return record_changes(history, after, touched=[DAY], commits={DAY: commit}, generations={DAY: generation},
                          describe=sources.describe, first=first, max_rows=max_rows)


def test_a_day_refreshed_every_minute_keeps_one_row_per_user_for_all_its_growth():
    sources, history = Sources(), DAILY_TOTAL_CHANGES.schema.empty_table()
    for minute in range(1, 1441):
        generation = sources.add(alice=minute + 1)
        history = record(history, daily(alice=10.0 * minute), sources, generation, minute)
    assert history.schema == DAILY_TOTAL_CHANGES.schema
    [row] = history.to_pylist()
    assert (row["kind"], row["files"], row["updates"]) == (NEW_FILE, f"alice-{DAY}.csv new (1,441 lines)", 1440)
    assert (row["kb_before"], row["kb_after"], row["delta_kb"]) == (0.0, 14400.0, 14400.0)
    assert (row["first_changed_at"], row["changed_at"], row["run_id"]) == (T0 + dt.timedelta(minutes=1),
                                                                          T0 + dt.timedelta(minutes=1440),
                                                                          "run-1440")


def test_a_late_retraction_is_its_own_row_naming_the_file_and_the_amount():
    sources = Sources()
    generation = sources.add(alice=100, bob=50)
    history = record(DAILY_TOTAL_CHANGES.schema.empty_table(), daily(alice=100.0, bob=50.0), sources, generation, 0,
                     first=True)
    assert [(r["user"], r["kind"], r["kb_before"], r["files"]) for r in history.to_pylist()] == [
        ("alice", FIRST_RECORDED, None, f"alice-{DAY}.csv (100 lines)"),
        ("bob", FIRST_RECORDED, None, f"bob-{DAY}.csv (50 lines)")]
    generation = sources.retract("bob")
    history = record(history, daily(alice=100.0), sources, generation, 4000, run="retract")
    change = history.to_pylist()[-1]
    assert (change["user"], change["kind"], change["delta_kb"], change["rows_after"]) == ("bob", RETRACTED, -50.0, 0)
    assert change["files"] == f"bob-{DAY}.csv retracted 2026-11-27T10:03:00+00:00 by ops: wrong device"
    assert (change["run_id"], change["source_generation_before"], change["source_generation"]) == (
        "retract-4000", 1, 2)
    assert history.num_rows == 3


def test_totals_that_change_without_a_file_change_are_a_rebuild_and_equal_totals_no_change():
    sources = Sources()
    generation = sources.add(alice=10)
    history = record(DAILY_TOTAL_CHANGES.schema.empty_table(), daily(alice=10.0), sources, generation, 0, first=True)
    assert record(history, daily(alice=10.0), sources, generation, 5) == history
    rebuilt = record(history, daily(alice=12.0), sources, generation, 10).to_pylist()
    assert [(r["kind"], r["files"], r["delta_kb"]) for r in rebuilt] == [
        (FIRST_RECORDED, f"alice-{DAY}.csv (10 lines)", 10.0), (REBUILT, "", 2.0)]


def test_a_file_change_whose_source_lists_expired_is_still_recorded_with_its_amount():
    sources = Sources()
    history = record(DAILY_TOTAL_CHANGES.schema.empty_table(), daily(alice=10.0), sources, sources.add(alice=10), 0,
                     first=True)
    generation = sources.add(alice=20)
    del sources.manifests[1]  # archive retention deleted that generation's copy
    row = record(history, daily(alice=20.0), sources, generation, 30).to_pylist()[-1]
    assert (row["kind"], row["files"], row["delta_kb"]) == (SOURCES_UNKNOWN, "", 10.0)


def test_a_user_day_keeps_at_most_max_rows_merging_the_oldest_after_the_first():
    sources = Sources()
    history = record(DAILY_TOTAL_CHANGES.schema.empty_table(), daily(alice=1.0), sources, sources.add(alice=1), 0,
                     first=True)
    total = 1.0
    for n in range(1, 10):  # alternate rebuilds and growth: nothing merges by itself
        if n % 2:
            generation = sources.add(alice=1 + n)
        total += 1
        history = record(history, daily(alice=total), sources, generation, 10 * n, max_rows=4)
    rows = history.to_pylist()
    assert len(rows) == 4 and rows[0]["kind"] == FIRST_RECORDED
    assert rows[1]["kind"] == SEVERAL and rows[1]["kb_before"] == 1.0
    assert [r["kb_before"] for r in rows[1:]] == [1.0, rows[1]["kb_after"], rows[2]["kb_after"]]
    assert sum(r["updates"] for r in rows) == 10 and rows[-1]["kb_after"] == total


def test_growth_of_a_file_seen_before_reads_from_first_to_last_line_count():
    sources = Sources()
    history = record(DAILY_TOTAL_CHANGES.schema.empty_table(), daily(alice=5.0), sources, sources.add(alice=5), 0,
                     first=True)
    for n, lines in enumerate((7, 9, 12), start=1):
        history = record(history, daily(alice=float(lines)), sources, sources.add(alice=lines), n)
    rows = history.to_pylist()
    assert [(r["kind"], r["files"], r["updates"]) for r in rows] == [
        (FIRST_RECORDED, f"alice-{DAY}.csv (5 lines)", 1), (FILE_GREW, f"alice-{DAY}.csv grew 5 -> 12 lines", 3)]
