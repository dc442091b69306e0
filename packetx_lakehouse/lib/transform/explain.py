"""Why a user-hour stands out: its hosts, directions and minutes against the same hour of the week before.

``traffic_anomalies`` scores an hour's KB against the user's active hours of the 7 days before. To
say *what* changed, the hour is compared host by host and direction by direction with the same UTC
hour on each of those 7 days ("typical" = their mean, 0 on a day without traffic then), and the
rise over typical is attributed: to a host never seen in the 7 days (a new host), to one host's
volume, to a direction that is usually a small part, or to many hosts at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from packetx_lakehouse.lib.transform.gold import BASELINE_DAYS
from packetx_lakehouse.lib.units import format_kb

NEW_HOST = "a new host"
ONE_HOST = "one host's volume"
DIRECTION = "a direction"
MANY_HOSTS = "many hosts at once"
NOT_HIGHER = "nothing: the hour is not above its usual level"
#: A new host explains the hour when it carries at least this share of the rise; one known host must
#: carry at least ``ONE_HOST_SHARE``; a direction must have gained this many points of the hour's share.
NEW_HOST_SHARE, ONE_HOST_SHARE, DIRECTION_POINTS = 0.25, 0.5, 0.3


def window(hour: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The hours an explanation reads: from the same hour 7 days before to ``hour`` itself."""
    return hour - dt.timedelta(days=BASELINE_DAYS), hour


@dataclass(frozen=True)
class Explanation:
    """One user-hour against the same hour of the 7 days before, and what changed most."""

    user: str
    hour: dt.datetime
    kb: float
    typical_kb: float
    minutes: int | None
    typical_minutes: float | None
    #: remote_ip, direction, kb, minutes, typical_kb, change_kb, days_seen (of the 7, any hour), new.
    hosts: pl.DataFrame
    #: direction, kb, typical_kb, change_kb, share, typical_share.
    directions: pl.DataFrame
    what_changed_most: str
    findings: list[str]

    @property
    def change_kb(self) -> float:
        return self.kb - self.typical_kb


def explain_hour(
    hourly: pl.DataFrame, user: str, hour: dt.datetime, minutes: pl.DataFrame | None = None
) -> Explanation:
    """Explain ``user``'s ``hour`` from ``hourly_bandwidth`` rows of its ``window``.

    Args:
        hourly: ``user, hour_utc, remote_ip, direction, kb, minutes`` rows (others are ignored).
        user, hour: The user-hour (UTC, on the hour).
        minutes: ``user_hourly``'s ``user, hour_utc, minutes`` rows, for the hour's active minutes.
    """
    first, _ = window(hour)
    utc = pl.col("hour_utc").dt.convert_time_zone("UTC")  # hours of day are UTC hours, whatever the reader's zone
    rows = hourly.with_columns(utc).filter((pl.col("user") == user) & pl.col("hour_utc").is_between(first, hour))
    same_hour = pl.col("hour_utc").dt.hour() == hour.hour
    now = rows.filter(pl.col("hour_utc") == hour)
    before = rows.filter(pl.col("hour_utc") < hour)
    typical = before.filter(same_hour)
    key = ["remote_ip", "direction"]
    # Which of the 7 days before (24-hour periods back from the hour) a row is on: 0..6.
    days_before = (pl.lit(hour) - pl.col("hour_utc")).dt.total_hours().sub(1) // 24
    hosts = (
        now.group_by(key).agg(pl.col("kb").sum(), pl.col("minutes").max())
        .join(typical.group_by(key).agg(typical_kb=pl.col("kb").sum() / BASELINE_DAYS), on=key, how="full",
              coalesce=True)
        .join(before.group_by("remote_ip").agg(days_seen=days_before.n_unique().cast(pl.Int64)), on="remote_ip",
              how="left")
        .with_columns(pl.col("kb", "typical_kb").fill_null(0.0), pl.col("minutes", "days_seen").fill_null(0))
        .with_columns(change_kb=pl.col("kb") - pl.col("typical_kb"), new=pl.col("days_seen") == 0)
        .sort("change_kb", "kb", "remote_ip", descending=[True, True, False])
        .select("remote_ip", "direction", "kb", "minutes", "typical_kb", "change_kb", "days_seen", "new")
    )
    kb, typical_kb = float(hosts["kb"].sum()), float(hosts["typical_kb"].sum())
    directions = (
        hosts.group_by("direction").agg(pl.col("kb", "typical_kb").sum())
        .with_columns(change_kb=pl.col("kb") - pl.col("typical_kb"),
                      share=pl.col("kb") / max(kb, 1e-12), typical_share=pl.col("typical_kb") / max(typical_kb, 1e-12))
        .sort("change_kb", "direction", descending=[True, False])
    )
    hour_minutes, typical_minutes = _minutes(minutes, user, hour)
    most, findings = _findings(hosts, directions, kb, typical_kb, hour_minutes, typical_minutes)
    return Explanation(user, hour, kb, typical_kb, hour_minutes, typical_minutes, hosts, directions, most, findings)


def _minutes(minutes: pl.DataFrame | None, user: str, hour: dt.datetime) -> tuple[int | None, float | None]:
    if minutes is None:
        return None, None
    mine = minutes.with_columns(pl.col("hour_utc").dt.convert_time_zone("UTC")).filter(pl.col("user") == user)
    now = mine.filter(pl.col("hour_utc") == hour)["minutes"].sum()
    first, _ = window(hour)
    typical = mine.filter(pl.col("hour_utc").is_between(first, hour, closed="left")
                          & (pl.col("hour_utc").dt.hour() == hour.hour))["minutes"].sum() / BASELINE_DAYS
    return int(now), float(typical)


def _findings(
    hosts: pl.DataFrame, directions: pl.DataFrame, kb: float, typical_kb: float, minutes: int | None,
    typical_minutes: float | None,
) -> tuple[str, list[str]]:
    """What changed most, and every notable change, largest first."""
    rise = kb - typical_kb
    if rise <= 0 or hosts.is_empty():
        return NOT_HIGHER, [f"{format_kb(kb)} against a typical {format_kb(typical_kb)} in this hour"]
    found: list[tuple[str, str]] = []
    new = hosts.filter(pl.col("new") & (pl.col("change_kb") > 0))
    if new.height and new["change_kb"][0] >= NEW_HOST_SHARE * rise:
        top = new.row(0, named=True)
        also = f" (+{new.height - 1} more new)" if new.height > 1 else ""
        found.append((NEW_HOST, f"new host {top['remote_ip']} ({top['direction']}): {format_kb(top['kb'])}, "
                                f"{top['change_kb'] / rise:.0%} of the rise; never seen in the 7 days before{also}"))
    known = hosts.filter(~pl.col("new"))
    if known.height and known["change_kb"][0] >= ONE_HOST_SHARE * rise:
        top = known.row(0, named=True)
        found.append((ONE_HOST, f"host {top['remote_ip']} ({top['direction']}): {format_kb(top['kb'])} against a typical "
                                f"{format_kb(top['typical_kb'])} in this hour, {top['change_kb'] / rise:.0%} of the rise"))
    shift = directions.with_columns(points=pl.col("share") - pl.col("typical_share")).sort("points", descending=True)
    if shift.height and shift["points"][0] >= DIRECTION_POINTS:
        top = shift.row(0, named=True)
        found.append((DIRECTION, f"{top['direction']} traffic: {top['share']:.0%} of the hour ({format_kb(top['kb'])}), "
                                 f"usually {top['typical_share']:.0%} ({format_kb(top['typical_kb'])})"))
    if not found:
        top = hosts.row(0, named=True)
        found.append((MANY_HOSTS, f"the rise is spread over {hosts.filter(pl.col('change_kb') > 0).height} hosts; "
                                  f"the largest, {top['remote_ip']}, is {top['change_kb'] / rise:.0%} of it"))
    if minutes is not None and typical_minutes is not None and minutes > 2 * typical_minutes + 5:
        found.append(("minutes", f"active {minutes} minutes of the hour, typically {typical_minutes:.0f}"))
    return found[0][0], [text for _, text in found]
