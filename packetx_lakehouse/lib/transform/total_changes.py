"""The history of each day's gold totals: when they changed, by which run, from which file, by how much.

One row per change of a user-day's ``daily_user_bandwidth`` total (a day's total is the sum of its
users'), recorded after the fact by comparing the table now with what was recorded last. A day
refreshed every minute commits 1,440 times a day, so the history is condensed as it is written:
consecutive growth of a user-day merges into one row (its first and last change, how many
updates), and a user-day keeps at most ``MAX_CHANGES`` rows (beyond, the oldest after the first
are merged). What stays is a handful of rows per user-day — how it was built, and each later change
(a late file, a retraction, a rebuild) — whatever the refresh rate, and for as long as the day's
gold exists, where Iceberg keeps its own earlier states for 24 hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from packetx_lakehouse.lib.ingest.archive import DayManifest
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.schemas import DAILY_TOTAL_CHANGES

#: What changed a user-day's total (``daily_total_changes.kind``), weightiest first.
RETRACTED = "file retracted"
RESTORED = "retraction undone"
NEW_FILE = "new file"
FILE_GREW = "file grew"
FIRST_RECORDED = "first recorded"
REBUILT = "rebuilt from the same file"
SEVERAL = "several changes"
SOURCES_UNKNOWN = "file changed (details no longer kept)"
#: Rows kept per user-day; more are merged, oldest first (the first row, how it began, stays).
MAX_CHANGES = 24
_GROWTH = (NEW_FILE, FILE_GREW)
_WEIGHT = {kind: n for n, kind in enumerate((RETRACTED, RESTORED, NEW_FILE, FILE_GREW, FIRST_RECORDED))}


@dataclass(frozen=True)
class SourceChange:
    """What happened to one source file, for people."""

    kind: str
    text: str


@dataclass(frozen=True)
class Commit:
    """The newest commit that wrote a day: when, its snapshot, and the run that made it."""

    at: dt.datetime
    snapshot_id: int
    run_id: str | None


#: ``(day, generation before (None: never recorded), generation after)`` -> each changed source file's
#: change, or None when a source list of those generations is no longer kept.
Describe = Callable[[dt.date, int | None, int], Mapping[str, SourceChange] | None]


def _lines(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"


def first_files(after: DayManifest) -> dict[str, SourceChange]:
    """A day seen for the first time: the files its totals were built from."""
    return {name: SourceChange(FIRST_RECORDED, f"{name} ({_lines(entry.lines)} lines)")
            for name, entry in after.files.items()}


def file_changes(before: DayManifest, after: DayManifest) -> dict[str, SourceChange]:
    """How each source file of a day changed between two of its source sets (the archive's manifests)."""
    changes = {name: SourceChange(RETRACTED, f"{name} {after.retracted[name].describe()}")
               for name in set(after.retracted) - set(before.retracted)}
    changes |= {name: SourceChange(RESTORED, f"{name} retraction undone")
                for name in set(before.retracted) - set(after.retracted)}
    changes |= {name: SourceChange(NEW_FILE, f"{name} new ({_lines(entry.lines)} lines)")
                for name, entry in after.files.items() if name not in before.files and name not in changes}
    changes |= {name: SourceChange(FILE_GREW, f"{name} grew {_lines(before.files[name].lines)} -> "
                                              f"{_lines(entry.lines)} lines")
                for name, entry in after.files.items()
                if name in before.files and entry.sha256 != before.files[name].sha256}
    return changes


def _user_of(source: str) -> str | None:
    parsed = parse_log_file_name(source)
    return parsed.user if parsed else None


def record_changes(
    history: pa.Table,
    after: pa.Table,
    *,
    touched: Iterable[dt.date],
    commits: Mapping[dt.date, Commit],
    generations: Mapping[dt.date, int],
    describe: Describe,
    first: bool,
    max_rows: int = MAX_CHANGES,
) -> pa.Table:
    """The whole history of the ``touched`` days, with what changed since it was last recorded.

    Args:
        history: ``daily_total_changes`` rows of (at least) the touched days, as recorded so far.
        after: ``daily_user_bandwidth`` rows of the touched days now.
        touched: Days written since the last record (a user-day gone from ``after`` lost its rows).
        commits: The newest commit of each touched day.
        generations: Each touched day's source generation now.
        describe: How the day's files changed between two generations.
        first: Nothing was ever recorded: every user-day is "first recorded", not new.
        max_rows: Rows kept per user-day.
    """
    empty = pl.from_arrow(DAILY_TOTAL_CHANGES.schema.empty_table())
    recorded = pl.from_arrow(history) if history.num_rows else empty
    now = {(day, user): (kb, rows) for day, user, kb, rows
           in pl.from_arrow(after.select(["log_date", "user", "total_kb", "rows"])).iter_rows()}
    kept: list[dict] = []
    for day in sorted(set(touched)):
        day_rows = recorded.filter(pl.col("log_date") == day).sort("changed_at").to_dicts()
        by_user: dict[str, list[dict]] = {}
        for row in day_rows:
            by_user.setdefault(row["user"], []).append(row)
        generation = generations.get(day, 0)
        # The day's last recorded source version: every user-day was recorded as of it.
        gen_before = max((row["source_generation"] for row in day_rows), default=None if first else 0)
        changes = describe(day, gen_before, generation)
        per_user: dict[str, list[SourceChange]] = {}
        for source, change in (changes or {}).items():
            per_user.setdefault(_user_of(source) or source, []).append(change)
        for user in sorted(set(by_user) | {u for d, u in now if d == day}):
            rows = by_user.get(user, [])
            last = rows[-1] if rows else None
            kb_after, rows_after = now.get((day, user), (0.0, 0))
            if last is None and first:
                kb_before, rows_before = None, None
            else:
                kb_before, rows_before = (last["kb_after"], last["rows_after"]) if last else (0.0, 0)
                if rows_before == rows_after and _same_kb(kb_before, kb_after):
                    kept += rows
                    continue  # written again, same total: not a change
            mine = per_user.get(user, [])
            if kb_before is None:
                kind = FIRST_RECORDED
            elif changes is None:
                kind = SOURCES_UNKNOWN
            else:
                kind = min((c.kind for c in mine), key=_WEIGHT.__getitem__, default=REBUILT)
            commit = commits[day]
            row = {
                "log_date": day, "user": user, "first_changed_at": commit.at, "changed_at": commit.at,
                "updates": 1, "run_id": commit.run_id, "snapshot_id": commit.snapshot_id, "kind": kind,
                "files": "; ".join(sorted(c.text for c in mine)),
                "source_generation_before": None if kb_before is None else gen_before,
                "source_generation": generation, "kb_before": kb_before, "kb_after": kb_after,
                "delta_kb": kb_after - (kb_before or 0.0), "rows_before": rows_before, "rows_after": rows_after,
            }
            if last is not None and last["kind"] in _GROWTH and kind == FILE_GREW:
                rows[-1] = _merged(last, row, describe)  # growth goes on: one row for all of it
            else:
                rows.append(row)
            while len(rows) > max_rows:
                rows[1:3] = [_merged(rows[1], rows[2], describe)]
            kept += rows
    frame = pl.DataFrame(kept, schema=recorded.schema) if kept else empty
    return frame.sort("log_date", "user", "changed_at").to_arrow().cast(DAILY_TOTAL_CHANGES.schema)


def _same_kb(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))


def _merged(older: dict, newer: dict, describe: Describe) -> dict:
    """Two consecutive rows of a user-day as one: from the older one's state to the newer one's."""
    day, user = newer["log_date"], newer["user"]
    changes = describe(day, older["source_generation_before"], newer["source_generation"])
    texts = sorted(c.text for source, c in (changes or {}).items() if (_user_of(source) or source) == user)
    growth = {older["kind"], newer["kind"]} <= set(_GROWTH)
    return {
        **newer, "first_changed_at": older["first_changed_at"], "updates": older["updates"] + newer["updates"],
        "kind": older["kind"] if growth or older["kind"] == newer["kind"] else SEVERAL,
        "files": "; ".join(texts) if changes is not None else newer["files"],
        "source_generation_before": older["source_generation_before"],
        "kb_before": older["kb_before"], "rows_before": older["rows_before"],
        "delta_kb": newer["kb_after"] - (older["kb_before"] or 0.0),
    }
