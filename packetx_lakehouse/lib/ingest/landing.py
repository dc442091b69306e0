"""What changed in the landing area since the last look: the pure core of the landing sensor.

The cursor remembers, per object key, the ``[size, version]`` last requested (``version`` is the
mtime in ns locally, the ETag on S3), and which landing problems were already reported. A day is
requested when one of its files is new or changed, so a file still being written is requested
again each time it grows, unless the raw archive already holds exactly that object (the cursor
was lost, or the sensor is switched on over an area that was ingested by other runs). A day cut
off by the per-tick bound stays unseen in the cursor, which is what makes the next ticks catch up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from packetx_lakehouse.lib.ingest.archive import LandingState
from packetx_lakehouse.lib.ingest.problems import LandingProblem, split_listing
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

#: Why a day cannot be ingested (``what`` names the file in the message), or None when it can.
PartitionCheck = Callable[[dt.date, str], str | None]
#: The landing objects of a day the raw archive already took in (``DayManifest.seen``).
ArchiveSeen = Callable[[dt.date], Collection[LandingState]]


@dataclass(frozen=True)
class Cursor:
    """What the sensor remembers between ticks."""

    #: Object key -> ``(size, version)`` last requested (or found ingested already).
    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Object key -> digest of the problem already reported for it: each is told once.
    reported: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DayRequest:
    """One day to (re)ingest; ``run_key`` names the day's landing state, so a re-tick of the same
    state is deduplicated by Dagster while a grown file gets a new run."""

    partition_key: str
    run_key: str


@dataclass(frozen=True)
class LandingDiff:
    """The outcome of one tick: what to run, what to remember, what to tell the operator."""

    requests: list[DayRequest]
    cursor: Cursor
    messages: list[str]


def group_landing_by_day(landing: ObjectStore) -> tuple[dict[dt.date, list[ObjectInfo]], list[LandingProblem]]:
    """One flat listing of the landing area: traffic logs by day, and what is not one (with reasons)."""
    return split_listing(landing.list_flat())


def load_cursor(raw: str | None) -> Cursor:
    """The stored cursor; the format before problems were remembered (a bare file map) still loads."""
    stored = json.loads(raw or "{}")
    if not isinstance(stored.get("files"), dict):
        stored = {"files": stored}
    return Cursor(
        {key: (int(size), str(version)) for key, (size, version) in stored["files"].items()},
        dict(stored.get("reported", {})),
    )


def dump_cursor(cursor: Cursor) -> str:
    stored: dict[str, object] = {"files": {key: list(state) for key, state in sorted(cursor.files.items())}}
    if cursor.reported:
        stored["reported"] = dict(sorted(cursor.reported.items()))
    return json.dumps(stored, separators=(",", ":"))


def day_run_key(day: dt.date, files: list[ObjectInfo]) -> str:
    state = json.dumps(sorted((info.key, info.size, info.version) for info in files))
    return f"{day.isoformat()}:{hashlib.sha256(state.encode()).hexdigest()[:12]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def diff_landing(
    cursor: Cursor,
    by_day: Mapping[dt.date, list[ObjectInfo]],
    problems: list[LandingProblem],
    check: PartitionCheck,
    max_requests: int,
    archived: ArchiveSeen | None = None,
    busy: Collection[dt.date] = (),
) -> LandingDiff:
    """Compare a landing listing (from ``group_landing_by_day``) with the cursor.

    Args:
        cursor: What earlier ticks requested and reported.
        by_day: The contract-conforming objects, by the day in their name.
        problems: What is not a traffic log (bad names, links, sub-folders...); each reported once.
        check: Whether a day is inside the partition range.
        max_requests: Bound on the days requested per tick; the oldest changed days go first.
        archived: The landing objects the raw archive already took in, per day: a changed object
            found there is recorded as seen without a run.
        busy: Days with a run queued or in progress: what changed waits for it to end (its cursor
            entries stay as they were), so one run takes in everything a day gained meanwhile.

    Returns:
        The days to request, the cursor to store, and messages for the tick log, each said once.
        A changed file of a day outside the partition range keeps its old cursor entry: it is
        requested once the range reaches it (a device clock or time zone ahead of ours).
    """
    messages: list[str] = []
    reported: dict[str, str] = {}

    def tell(key: str, message: str) -> None:
        reported[key] = _digest(message)
        if cursor.reported.get(key) != reported[key]:
            messages.append(message)

    for problem in problems:
        tell(problem.object_key, f"Not ingested: {problem.object_key}: {problem.reason}")
    changed_days: list[dt.date] = []
    held: set[dt.date] = set()  # changed, but not requested on this tick
    known: dict[str, tuple[int, str]] = {}  # found in the archive: seen without a run
    for day in sorted(by_day):
        changed = [info for info in by_day[day] if cursor.files.get(info.key) != (info.size, info.version)]
        if changed and day in busy:
            held.add(day)
            continue
        if changed and archived is not None:
            seen = archived(day)
            known.update({i.key: (i.size, i.version) for i in changed if (i.key, i.size, i.version) in seen})
            changed = [info for info in changed if info.key not in known]
        if not changed:
            continue
        reason = check(day, ", ".join(info.key for info in changed))
        if reason:
            tell(f"held/{day}", f"Not requested: {reason}")  # '/' never occurs in a flat key
            held.add(day)
        else:
            changed_days.append(day)
    requested, deferred = changed_days[:max_requests], changed_days[max_requests:]
    if deferred:
        messages.append(
            f"{len(deferred)} more changed day(s) ({deferred[0]}..{deferred[-1]}) wait for the next ticks "
            f"(at most {max_requests} per tick)"
        )
    held.update(deferred)

    # Held days keep their old cursor entries so that a later tick sees the change again.
    files: dict[str, tuple[int, str]] = {}
    for day, day_files in by_day.items():
        for info in day_files:
            if day not in held or info.key in known:
                files[info.key] = (info.size, info.version)
            elif info.key in cursor.files:
                files[info.key] = cursor.files[info.key]
    requests = [DayRequest(day.isoformat(), day_run_key(day, by_day[day])) for day in requested]
    return LandingDiff(requests, Cursor(files, reported), messages)
