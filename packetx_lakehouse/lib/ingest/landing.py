"""What changed in the landing area since the last look: the pure core of the landing sensor.

The cursor remembers, per object key, the ``[size, version]`` last requested (``version`` is the
mtime in ns locally, the ETag on S3). A day is requested when one of its files is new or changed,
so a file still being written is requested again each time it grows. A day cut off by the
per-tick bound stays unseen in the cursor, which is what makes the next ticks catch up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

#: Object key -> ``(size, version)``.
Cursor = dict[str, tuple[int, str]]
#: Why a day cannot be ingested (``what`` names the file in the message), or None when it can.
PartitionCheck = Callable[[dt.date, str], str | None]


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


def group_landing_by_day(landing: ObjectStore, prefix: str = "") -> tuple[dict[dt.date, list[ObjectInfo]], list[str]]:
    """One listing of the landing area: the contract-conforming objects by day, and the rest."""
    by_day: dict[dt.date, list[ObjectInfo]] = {}
    ignored: list[str] = []
    for info in landing.list(prefix):
        parsed = parse_log_file_name(info.name)
        if parsed is None:
            ignored.append(info.key)
        else:
            by_day.setdefault(parsed.date, []).append(info)
    return by_day, ignored


def load_cursor(raw: str | None) -> Cursor:
    return {key: (int(size), str(version)) for key, (size, version) in json.loads(raw or "{}").items()}


def dump_cursor(cursor: Cursor) -> str:
    return json.dumps({key: list(state) for key, state in sorted(cursor.items())}, separators=(",", ":"))


def day_run_key(day: dt.date, files: list[ObjectInfo]) -> str:
    state = json.dumps(sorted((info.key, info.size, info.version) for info in files))
    return f"{day.isoformat()}:{hashlib.sha256(state.encode()).hexdigest()[:12]}"


def diff_landing(
    cursor: Mapping[str, tuple[int, str]],
    by_day: Mapping[dt.date, list[ObjectInfo]],
    ignored: list[str],
    check: PartitionCheck,
    max_requests: int,
) -> LandingDiff:
    """Compare a landing listing (from ``group_landing_by_day``) with the cursor.

    Args:
        cursor: What earlier ticks requested.
        by_day: The contract-conforming objects, by the day in their name.
        ignored: Keys whose names break the contract; reported, never requested.
        check: Whether a day is inside the partition range.
        max_requests: Bound on the days requested per tick; the oldest changed days go first.

    Returns:
        The days to request, the cursor to store, and messages for the tick log. A changed file of
        a day outside the partition range keeps its old cursor entry: it is reported on every
        tick and requested once the range reaches it (a device clock or time zone ahead of ours).
    """
    messages = [f"Ignored {key}: not named <user>-<YYYY-MM-DD>.csv[.gz]" for key in ignored]
    changed_days: list[dt.date] = []
    held: set[dt.date] = set()  # changed, but not requested on this tick
    for day in sorted(by_day):
        changed = [info.key for info in by_day[day] if cursor.get(info.key) != (info.size, info.version)]
        if not changed:
            continue
        reason = check(day, ", ".join(changed))
        if reason:
            messages.append(f"Not requested: {reason}")
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
    new_cursor: Cursor = {}
    for day, files in by_day.items():
        for info in files:
            if day not in held:
                new_cursor[info.key] = (info.size, info.version)
            elif info.key in cursor:
                new_cursor[info.key] = cursor[info.key]
    requests = [DayRequest(day.isoformat(), day_run_key(day, by_day[day])) for day in requested]
    return LandingDiff(requests, new_cursor, messages)
