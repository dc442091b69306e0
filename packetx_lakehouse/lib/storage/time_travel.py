"""Answers as of an earlier time: which state of each Iceberg table was current then, or why that is unknown.

Iceberg keeps a table's earlier states as snapshots, but not all of them (``iceberg.py``,
``maintenance.py``): every write keeps the last ``RECENT_SNAPSHOTS`` writes and the newest state of
each of ``HOURLY_SNAPSHOTS`` earlier clock hours, and maintenance drops states replaced more than
``PACKETX_SNAPSHOT_RETENTION_HOURS`` (24) ago. A state is only ever removed for a newer one of the
same clock hour, or for being old, so a table's state at a moment ``T`` is known exactly when:

- ``T`` is at or after its newest snapshot; or
- the kept snapshot ``s`` before ``T`` and the kept one ``n`` after it are consecutive writes
  (sequence numbers ``k`` and ``k + 1``); or
- ``T`` is before the clock hour of ``n``: the writes removed between ``s`` and ``n`` were all in ``n``'s
  hour, so ``s`` was current until then; or
- ``T`` is before the table's first write (sequence number 1): it had no rows.

Anywhere else the answer would be a guess, so :class:`AsOfOutOfReach` says what is kept instead.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from packetx_lakehouse.lib.storage.iceberg import RECENT_SNAPSHOTS, snapshots_oldest_first

_HOUR_MS = 3_600_000
_RELATIVE = re.compile(r"^\s*-?\s*(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?)\s*(ago)?\s*$", re.I)
#: What ``parse_as_of`` accepts, for error messages and help texts.
AS_OF_FORMS = ("an ISO time such as 2026-11-24T14:00 (UTC unless it names a zone)", "a relative time such as 90m "
               "or 2h ago", "a snapshot id of any table (from iceberg_snapshots or daily_total_changes)")


class AsOfOutOfReach(ValueError):
    """A table's state at the moment asked for is not kept (or not known exactly); the message says what is."""


@dataclass(frozen=True)
class AsOf:
    """What "as of" names: a moment, or one table's snapshot (which fixes the moment for every table)."""

    at: dt.datetime | None = None
    snapshot_id: int | None = None


def parse_as_of(text: str, now: dt.datetime) -> AsOf:
    """``2026-11-24T14:00[+01:00]`` (UTC unless a zone is given), ``90m`` / ``2h ago`` / ``1d``, or a snapshot id.

    Raises:
        ValueError: for anything else, naming the forms accepted.
    """
    text = text.strip()
    if text.isdigit() and len(text) > 8:  # 20261124 is a date; snapshot ids are 64-bit
        return AsOf(snapshot_id=int(text))
    relative = _RELATIVE.match(text)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)[0].lower()]
        return AsOf(at=now - dt.timedelta(**{unit: float(relative.group(1))}))
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--as-of {text!r}: expected {'; '.join(AS_OF_FORMS)}") from None
    return AsOf(at=moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC))


@dataclass(frozen=True)
class TableState:
    """One table as it was: its snapshot then (None: it had no rows yet)."""

    identifier: str
    snapshot_id: int | None
    committed_at: dt.datetime | None


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _when(snapshot: Snapshot) -> str:
    return f"{_utc(snapshot.timestamp_ms):%Y-%m-%d %H:%M:%S} UTC (snapshot {snapshot.snapshot_id})"


def state_at(table: Table, identifier: str, at: dt.datetime) -> TableState:
    """``table``'s state at ``at``, when it is kept and known exactly (see the module's rules).

    Raises:
        AsOfOutOfReach: naming the nearest states kept.
    """
    snapshots = snapshots_oldest_first(table.snapshots())
    at_ms = int(at.timestamp() * 1000)
    before = [s for s in snapshots if s.timestamp_ms <= at_ms]
    if not before:
        if not snapshots or snapshots[0].sequence_number == 1:
            return TableState(identifier, None, None)  # before its first write: no rows
        raise AsOfOutOfReach(f"{identifier}: its oldest state kept is from {_when(snapshots[0])}")
    state = before[-1]
    following = snapshots[len(before)] if len(before) < len(snapshots) else None
    if (following is None or following.sequence_number == (state.sequence_number or 0) + 1
            or at_ms < following.timestamp_ms // _HOUR_MS * _HOUR_MS):
        return TableState(identifier, state.snapshot_id, _utc(state.timestamp_ms))
    raise AsOfOutOfReach(f"{identifier}: the states between {_when(state)} and {_when(following)} were thinned out "
                         f"(a table keeps its last {RECENT_SNAPSHOTS} writes and the last write of each earlier "
                         "hour); ask for one of those two times")


@dataclass(frozen=True)
class Resolved:
    """Every table's state at one moment, and the tables whose state then is not kept (with why)."""

    at: dt.datetime
    states: dict[str, TableState]
    out_of_reach: dict[str, str]


def resolve(tables: Mapping[str, Table], as_of: AsOf, now: dt.datetime) -> Resolved:
    """The state of each of ``tables`` (identifier -> table) as of a moment or a snapshot.

    A snapshot id names that table's state exactly, and the moment its run had committed every
    table it wrote (tables commit one after another) names every other's.

    Raises:
        AsOfOutOfReach: when no table keeps the snapshot, the moment is in the future, or no table
            keeps its state at that moment.
    """
    at, pinned = as_of.at, None
    if as_of.snapshot_id is not None:
        for identifier, table in tables.items():
            snapshot = table.snapshot_by_id(as_of.snapshot_id)
            if snapshot is not None:
                at, pinned = _utc(_run_end(tables.values(), snapshot)), identifier
                break
        else:
            raise AsOfOutOfReach(f"no table keeps snapshot {as_of.snapshot_id}: it expired (states are kept "
                                 "for PACKETX_SNAPSHOT_RETENTION_HOURS) or belongs to another lakehouse")
    assert at is not None
    if at > now + dt.timedelta(minutes=1):
        raise AsOfOutOfReach(f"{at:%Y-%m-%d %H:%M:%S} UTC is in the future")
    states, missing = {}, {}
    for identifier, table in tables.items():
        if identifier == pinned:
            states[identifier] = TableState(identifier, as_of.snapshot_id, at)
            continue
        try:
            states[identifier] = state_at(table, identifier, at)
        except AsOfOutOfReach as exc:
            missing[identifier] = str(exc)
    if not states:
        raise AsOfOutOfReach(f"no table keeps its state of {at:%Y-%m-%d %H:%M:%S} UTC: " + "; ".join(missing.values())
                             + ". Iceberg keeps a replaced state for PACKETX_SNAPSHOT_RETENTION_HOURS (24 h by "
                             "default); each day's changes of its gold totals stay in packetx_gold.daily_total_changes")
    return Resolved(at, states, missing)


def _run_end(tables, snapshot: Snapshot) -> int:
    """When the run that committed ``snapshot`` had committed all its tables (ms): its last snapshot."""
    run = snapshot.summary.get("dagster.run_id") if snapshot.summary else None
    if run is None:
        return snapshot.timestamp_ms
    return max([snapshot.timestamp_ms] + [s.timestamp_ms for table in tables for s in table.snapshots()
                                          if s.summary and s.summary.get("dagster.run_id") == run])


@dataclass(frozen=True)
class KeptState:
    """One state of a table that Iceberg still keeps: what an "as of" picker offers."""

    snapshot_id: int
    committed_at: dt.datetime
    run_id: str | None


def kept_states(table: Table) -> list[KeptState]:
    """The table's kept states, newest first."""
    return [KeptState(s.snapshot_id, _utc(s.timestamp_ms), s.summary.get("dagster.run_id") if s.summary else None)
            for s in reversed(snapshots_oldest_first(table.snapshots()))]
