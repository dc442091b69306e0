"""Device silence: which devices that should be sending are not, learnt from each one's own history.

A capture that stops (machine off, program crashed, disk full) looks exactly like a quiet network,
so "no rows" alone proves nothing: a laptop sleeps at night, a sparse device leaves long gaps. Each
device's expectation is learnt from its own ``user_hourly`` rows (which minutes of each hour it sent
in), in its own local time:

- **active hours**: the local hours of day it sent in on at least half (``active_share``) of the
  days between its first and last day seen in the history window. Days after the last one do not
  count: a dead device keeps the expectation it had, so its alarm does not fade by itself;
- **usual gap**: the 99th percentile of its gaps between minutes, counting only minutes of its
  active hours (a night asleep is no gap);
- **allowance**: ``max(threshold, 2 x usual gap)`` minutes of its active hours without data.

A device is *silent* when more of its active-hour minutes than its allowance have passed since the
last minute seen. Times are minutes; a device's local time is its configured zone (as in silver),
reckoned on the wall clock (a DST change shifts one hour, twice a year).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pyarrow as pa

from packetx_lakehouse.lib.schemas import DEVICE_SILENCE, DEVICE_STATUS, TableDef

#: Reasons a silence is recorded with (``device_silence.reason``).
NO_FILE_TODAY = "no file today"
STOPPED_GROWING = "file stopped growing"
GAP_IN_DAY = "gap inside the day"
GAP_ACROSS_DAYS = "gap across days"
#: Device states (``device_status.status``), in the order the dashboard lists them.
SILENT, SENDING, ASLEEP, LEARNING, IRREGULAR = "silent", "sending", "asleep", "learning", "irregular"
STATUS_ORDER = (SILENT, SENDING, ASLEEP, IRREGULAR, LEARNING)

_DAY = 1440


@dataclass(frozen=True)
class SilencePolicy:
    """How silence is judged (``PACKETX_SILENCE_MINUTES`` sets ``threshold_minutes``).

    Attributes:
        threshold_minutes: Active-hour minutes without data always allowed, however regular the device.
        history_days: Days before today the expectation is learnt from (and a device silent longer
            than this is forgotten: retired).
        min_history_days: Days of history needed before a device is judged.
        active_share: An hour of day is active when the device sent in it on at least this share of its days.
        gap_factor: The allowance is this many times the device's usual gap (when above the threshold).
        report_days: Silences that ended within this many days (today included) are listed.
    """

    threshold_minutes: int = 30
    history_days: int = 14
    min_history_days: int = 3
    active_share: float = 0.5
    gap_factor: float = 2.0
    report_days: int = 2

    def __post_init__(self) -> None:
        if self.threshold_minutes < 1 or self.history_days < self.min_history_days or self.min_history_days < 1:
            raise ValueError("threshold_minutes and min_history_days must be >= 1, history_days >= min_history_days")
        if not 0 < self.active_share <= 1 or self.gap_factor < 1 or self.report_days < 1:
            raise ValueError("active_share must be in (0, 1], gap_factor >= 1, report_days >= 1")

    def days_to_read(self, today: dt.date) -> list[dt.date]:
        """The ``user_hourly`` days an evaluation on ``today`` reads (a day either side for zones)."""
        first = today - dt.timedelta(days=self.history_days + 1)
        return [first + dt.timedelta(days=n) for n in range(self.history_days + 3)]


@dataclass(frozen=True)
class SilentDevice:
    """A device silent past its allowance now: what the check names."""

    user: str
    since: dt.datetime
    missed_minutes: int
    allowed_minutes: int

    def describe(self) -> str:
        return (f"{self.user}: silent since {self.since:%Y-%m-%d %H:%M} UTC ({self.missed_minutes:,} minutes of its "
                f"active hours without data; {self.allowed_minutes:,} allowed)")


@dataclass(frozen=True)
class SilenceReport:
    """One evaluation: every device's status, the silences of the report window, the devices silent now."""

    status: pa.Table
    silences: pa.Table
    silent: list[SilentDevice]

    def problems(self) -> list[str]:
        """What the check lists: each silent device, and first a hint when every judged device is."""
        judged = [s for s in self.status.column("status").to_pylist() if s in (SILENT, SENDING, ASLEEP)]
        hint = []
        if len(self.silent) > 1 and len(self.silent) == len(judged):
            since = min(device.since for device in self.silent)
            hint = [f"every device is silent, since {since:%Y-%m-%d %H:%M} UTC at the earliest: is data still "
                    "arriving (landing area, landing_sensor, pipeline runs)?"]
        return hint + [device.describe() for device in self.silent]


@dataclass(frozen=True)
class _Device:
    """One device's minutes, as local wall-clock minutes since 1970-01-01 00:00 (sorted, unique)."""

    user: str
    zone: str
    local: np.ndarray
    utc: np.ndarray


@dataclass(frozen=True)
class _Expectation:
    hours: np.ndarray  # bool[24]: active local hours
    days: int  # days it was learnt from (first to last day seen)
    usual_gap: int
    allowed: int
    density: float  # minutes sent per active-hour minute
    #: Active minutes of the day before each minute of the day (1441 values).
    prefix: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", np.concatenate([[0], np.cumsum(np.repeat(self.hours, 60))]))

    def active_before(self, minute: np.ndarray | int) -> np.ndarray:
        """Active minutes from the epoch up to (not including) local ``minute``."""
        minute = np.asarray(minute)
        return (minute // _DAY) * self.prefix[-1] + self.prefix[minute % _DAY]

    def active_between(self, first: np.ndarray | int, end: np.ndarray | int) -> np.ndarray:
        """Active minutes in ``[first, end)``."""
        return self.active_before(end) - self.active_before(first)


def evaluate_silence(
    user_hourly: pa.Table,
    now: dt.datetime,
    zones: Mapping[str, str] | None = None,
    default_zone: str = "UTC",
    policy: SilencePolicy = SilencePolicy(),
) -> SilenceReport:
    """Judge every device of ``user_hourly`` at ``now``.

    Args:
        user_hourly: ``user``, ``hour_utc`` and ``minute_mask`` rows covering at least
            ``policy.days_to_read(today)`` (more is ignored); rows after ``now`` are ignored.
        now: The moment judged (aware).
        zones, default_zone: Each device's local time zone, as configured for silver.
        policy: Thresholds and windows.
    """
    zones = zones or {}
    devices = _devices(user_hourly, now, zones, default_zone)
    status_rows, silence_rows, silent = [], [], []
    for device in devices:
        now_local = _epoch_minutes(now.astimezone(ZoneInfo(device.zone)).replace(tzinfo=dt.UTC))
        today = now_local // _DAY
        if device.local[-1] < (today - policy.history_days) * _DAY:
            continue  # silent for longer than the history: retired, forgotten
        expectation = _learn(device, today, policy)
        last_local, last_utc = int(device.local[-1]), int(device.utc[-1])
        seen_today = int(np.count_nonzero(device.local >= today * _DAY))
        row = {"user": device.user, "timezone": device.zone, "last_seen_utc": _instant(last_utc),
               "seen_minutes_today": seen_today, "evaluated_at": now, "silent_since": None,
               "missed_minutes": None, "allowed_minutes": None, "usual_gap_minutes": None,
               "expected_minutes_today": None, "active_hours": None,
               "history_days": expectation.days if expectation else _history_days(device, today, policy)}
        if expectation is None or not expectation.hours.any():
            status_rows.append({**row, "status": LEARNING if expectation is None else IRREGULAR,
                                "active_hours": None if expectation is None else "none regular"})
            continue
        missed = max(0, int(expectation.active_between(last_local + 1, now_local)))
        row |= {"missed_minutes": missed, "allowed_minutes": expectation.allowed,
                "usual_gap_minutes": expectation.usual_gap, "active_hours": describe_hours(expectation.hours),
                "expected_minutes_today": round(expectation.density
                                                * expectation.active_between(today * _DAY, now_local))}
        if missed > expectation.allowed:
            since = _instant(last_utc + 1)
            silent.append(SilentDevice(device.user, since, missed, expectation.allowed))
            status_rows.append({**row, "status": SILENT, "silent_since": since})
        elif not expectation.hours[(now_local % _DAY) // 60] and now_local - last_local > expectation.usual_gap:
            status_rows.append({**row, "status": ASLEEP})
        else:
            status_rows.append({**row, "status": SENDING})
        silence_rows += _silences(device, expectation, now, now_local, today, policy)
    rank = pl.col("status").replace_strict({name: n for n, name in enumerate(STATUS_ORDER)}, return_dtype=pl.Int64)
    return SilenceReport(_table(status_rows, DEVICE_STATUS, rank, "last_seen_utc", "user"),
                         _table(silence_rows, DEVICE_SILENCE, "user", "silent_from"),
                         sorted(silent, key=lambda d: (d.since, d.user)))


def _table(rows: list[dict], table_def: TableDef, *order: str | pl.Expr) -> pa.Table:
    schema = pl.from_arrow(table_def.schema.empty_table()).schema
    return pl.DataFrame(rows, schema=schema).sort(*order).to_arrow().cast(table_def.schema)


def describe_hours(hours: Sequence[bool] | np.ndarray) -> str:
    """Active hours as local ranges, e.g. ``07:00-23:00`` or ``22:00-06:00`` (wrapping midnight)."""
    hours = [bool(h) for h in hours]
    if all(hours):
        return "all day"
    starts = [h for h in range(24) if hours[h] and not hours[h - 1]]
    ranges = []
    for start in starts:
        end = start
        while hours[end % 24]:
            end += 1
        ranges.append(f"{start:02d}:00-{end % 24:02d}:00")
    return ", ".join(ranges)


def _epoch_minutes(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // 60


def _instant(minute: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC)


def _devices(
    user_hourly: pa.Table, now: dt.datetime, zones: Mapping[str, str], default_zone: str
) -> Iterator[_Device]:
    """Every device's minutes seen up to ``now``, in UTC and in its local wall time, one device at a time."""
    frame = (pl.from_arrow(user_hourly.select(["user", "hour_utc", "minute_mask"]))
             .filter(pl.col("minute_mask") != 0)
             .with_columns(zone=pl.col("user").replace_strict(dict(zones), default=default_zone,
                                                              return_dtype=pl.String)))
    parts = []
    for (zone,), part in frame.partition_by("zone", as_dict=True).items():
        local = pl.col("hour_utc").dt.convert_time_zone(zone).dt.replace_time_zone(None).dt.epoch("s") // 60
        parts.append(part.with_columns(base_utc=pl.col("hour_utc").dt.epoch("s") // 60, base_local=local))
    if not parts:
        return
    rows = pl.concat(parts).sort("user", "base_utc")
    masks = rows["minute_mask"].to_numpy().astype("<u8")
    base_utc, base_local = rows["base_utc"].to_numpy(), rows["base_local"].to_numpy()
    users, zones_of = rows["user"], rows["zone"]
    bounds = np.flatnonzero(np.r_[True, (users.slice(1) != users.slice(0, len(users) - 1)).to_numpy(), True])
    minute, last = np.arange(64), _epoch_minutes(now)
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        bits = np.unpackbits(masks[start:end].view(np.uint8).reshape(-1, 8), axis=1, bitorder="little").astype(bool)
        utc = (base_utc[start:end, None] + minute)[bits]  # row by row, minute by minute
        local = (base_local[start:end, None] + minute)[bits]
        utc, local = utc[utc <= last], local[utc <= last]
        if np.any(np.diff(local) <= 0):
            # A DST fall-back repeats an hour of wall time: order by it and keep each wall minute once.
            order = np.lexsort((utc, local))
            local, first = np.unique(local[order], return_index=True)
            utc = utc[order][first]
        if len(local):
            yield _Device(users[start], zones_of[start], local, utc)


def _history_days(device: _Device, today: int, policy: SilencePolicy) -> int:
    days = np.unique(device.local // _DAY)
    days = days[(days >= today - policy.history_days) & (days < today)]
    return int(days[-1] - days[0] + 1) if len(days) else 0


def _learn(device: _Device, today: int, policy: SilencePolicy) -> _Expectation | None:
    """Its active hours, usual gap and allowance, from its days before today (None: too few yet)."""
    seen = device.local[(device.local >= (today - policy.history_days) * _DAY) & (device.local < today * _DAY)]
    if not len(seen):
        return None
    first_day, last_day = seen[0] // _DAY, seen[-1] // _DAY
    days = int(last_day - first_day + 1)
    if days < policy.min_history_days:
        return None
    hour = seen // 60
    day_hours = hour[np.r_[True, hour[1:] != hour[:-1]]]  # distinct (day, hour) pairs: seen is sorted
    hours = np.bincount(day_hours % 24, minlength=24) / days >= policy.active_share
    probe = _Expectation(hours, days, 1, policy.threshold_minutes, 1.0)
    if not hours.any():
        return probe
    # A gap's length counts only active-hour minutes: a night asleep is no gap.
    gaps = np.ones(len(seen) - 1, np.int64)
    apart = np.flatnonzero(np.diff(seen) > 1)
    gaps[apart] += probe.active_between(seen[apart] + 1, seen[apart + 1])
    usual_gap = int(np.quantile(gaps, 0.99, method="higher")) if len(gaps) else 1
    allowed = max(policy.threshold_minutes, math.ceil(policy.gap_factor * usual_gap))
    active_seen = np.count_nonzero(hours[(seen % _DAY) // 60])
    density = min(1.0, active_seen / (days * probe.active_before(_DAY)))
    return _Expectation(hours, days, usual_gap, allowed, density)


def _silences(
    device: _Device, expectation: _Expectation, now: dt.datetime, now_local: int, today: int, policy: SilencePolicy,
) -> list[dict]:
    """Gaps longer than the allowance that ended in the report window, and the one going on now."""
    window = (today - policy.report_days + 1) * _DAY
    local = device.local
    starts = np.r_[local[:-1] + 1, local[-1] + 1]  # the minute after each one seen
    ends = np.r_[local[1:], now_local]  # the next one seen; for the last, now (the minute under way not counted)
    candidates = np.flatnonzero((ends - starts > expectation.allowed) & (ends >= window))
    missed = dict(zip(candidates.tolist(), expectation.active_between(starts[candidates], ends[candidates]).tolist()))
    rows = []
    for i in (i for i, n in missed.items() if n > expectation.allowed):
        ongoing = i == len(local) - 1
        start, end = int(starts[i]), int(ends[i])
        midnight = start // _DAY * _DAY
        if ongoing:
            reason = STOPPED_GROWING if local[-1] >= today * _DAY else NO_FILE_TODAY
        else:
            reason = GAP_IN_DAY if start // _DAY == end // _DAY else GAP_ACROSS_DAYS
        rows.append({
            "log_date": dt.date(1970, 1, 1) + dt.timedelta(days=start // _DAY),
            "user": device.user,
            "silent_from": _instant(int(device.utc[i]) + 1),
            "silent_to": None if ongoing else _instant(int(device.utc[i + 1])),
            "ongoing": ongoing,
            "reason": reason,
            "missed_minutes": missed[i],
            "allowed_minutes": expectation.allowed,
            "expected_minutes": round(expectation.density * expectation.active_between(midnight, end)),
            "seen_minutes": int(np.count_nonzero((local >= midnight) & (local < end))),
            "evaluated_at": now,
        })
    return rows
