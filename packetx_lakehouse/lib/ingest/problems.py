"""Landing problems: files that are not ingested as they are, recorded first-class with the reason.

Bronze records every problem of the run's days in ``packetx_raw.landing_problems`` (and those
without a day, such as badly named files, with a null ``log_date``); the landing sensor reports
each undated one once. A problem either WARNs (something a person should look at) or FAILS (data
that was ingested is contradicted: a file shrank or vanished, or a file's rows are mostly not on
its date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from packetx_lakehouse.lib.ingest.filenames import LogFileName, check_log_file_name
from packetx_lakehouse.lib.schemas import LANDING_PROBLEMS
from packetx_lakehouse.lib.storage.objectstore import FlatListing, ObjectInfo

# What kind of problem: a short word a dashboard can group by (``reason`` says exactly what).
SKIPPED = "skipped"  # never read: a link, a sub-folder, a hidden or special entry
BAD_NAME = "bad name"  # breaks the <user>-<YYYY-MM-DD>.csv[.gz] contract
REFUSED = "refused"  # read, and refused as a whole (bounds, corrupt gzip, line ends)
EMPTY = "empty"  # empty, or a header only
CUT_SHORT = "cut short"  # a gzip stream that ends early: what arrived is ingested
SHORTER_COPY = "shorter copy"  # a second copy of an ingested file (plain vs .gz) with fewer lines
SHRUNK = "shrunk"  # the landing copy has fewer lines than the ingested version: the longer stays
GONE = "gone"  # an ingested file left the landing area: it is served from the archive
RETRACTED = "retracted"  # withdrawn with ``packetx-lakehouse retract``: its rows left every layer
OFF_DATE = "off date"  # most rows are not on the file's date: renamed file or wrong device clock

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class LandingProblem:
    """One landing object (or archived source) that is not ingested as it is, and why."""

    log_date: dt.date | None
    object_key: str
    kind: str
    reason: str
    severity: str = WARNING
    size: int | None = None
    rows_at_stake: int | None = None
    kb_at_stake: float | None = None

    @property
    def fails(self) -> bool:
        return self.severity == ERROR

    def describe(self) -> str:
        """One line for a log or a check: the object, the reason and what is at stake."""
        stake = ""
        if self.rows_at_stake is not None:
            kb = "" if self.kb_at_stake is None else f", {self.kb_at_stake:,.1f} KB"
            stake = f" ({self.rows_at_stake:,} rows{kb} at stake)"
        day = f"{self.log_date}: " if self.log_date else ""
        return f"{day}{self.object_key}: {self.reason}{stake}"


def split_listing(listing: FlatListing) -> tuple[dict[dt.date, list[ObjectInfo]], list[LandingProblem]]:
    """A flat listing as traffic logs by the day in their name, and undated problems for the rest."""
    by_day: dict[dt.date, list[ObjectInfo]] = {}
    problems = [LandingProblem(None, entry.key, SKIPPED, entry.reason) for entry in listing.skipped]
    for info in listing.objects:
        parsed = check_log_file_name(info.name)
        if isinstance(parsed, LogFileName):
            by_day.setdefault(parsed.date, []).append(info)
        else:
            problems.append(LandingProblem(None, info.key, BAD_NAME, parsed, size=info.size))
    return by_day, sorted(problems, key=lambda p: p.object_key)


def problems_table(problems: Sequence[LandingProblem], first_seen: dict[tuple, dt.datetime], now: dt.datetime) -> pa.Table:
    """Problems in ``LANDING_PROBLEMS``'s schema; ``first_seen`` keeps when a problem was first recorded.

    Args:
        problems: This run's problems.
        first_seen: ``(log_date, object_key, reason) -> first_seen`` of earlier records.
        now: This run's time, the first sighting of anything new.
    """
    rows = [
        {"log_date": p.log_date, "object_key": p.object_key, "kind": p.kind, "reason": p.reason,
         "severity": p.severity, "size": p.size, "rows_at_stake": p.rows_at_stake, "kb_at_stake": p.kb_at_stake,
         "first_seen": first_seen.get((p.log_date, p.object_key, p.reason), now), "last_seen": now}
        for p in sorted(problems, key=lambda p: (p.log_date or dt.date.min, p.object_key, p.reason))
    ]
    return pa.Table.from_pylist(rows, schema=LANDING_PROBLEMS.schema)


def already_recorded(problems: Sequence[LandingProblem], previous: pa.Table) -> list[LandingProblem]:
    """The problems of no day (bad names, skipped entries) that ``previous`` records already, for the
    same object version (its size): each is told once, not in every later run (it stays recorded)."""
    columns = ("log_date", "object_key", "reason", "size")
    known = {(k, r, s) for d, k, r, s in zip(*(previous.column(c).to_pylist() for c in columns)) if d is None}
    return [p for p in problems if p.log_date is None and (p.object_key, p.reason, p.size) in known]


def first_sightings(previous: pa.Table) -> dict[tuple, dt.datetime]:
    """``(log_date, object_key, reason) -> first_seen`` of recorded problems."""
    columns = ("log_date", "object_key", "reason", "first_seen")
    return {(d, k, r): f for d, k, r, f in zip(*(previous.column(c).to_pylist() for c in columns))}

