"""Silver -> gold: aggregates for people and the star schema for the warehouse.

Every aggregate and the fact table leave restart replays out (silver keeps them only for audit).
Surrogate keys are stable hashes computed on *unique* values, so they are identical on every run,
machine and load order; Python's ``hash()`` is salted per process and never used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from packetx_lakehouse.lib.schemas import (
    DIRECTIONS,
    GOLD_DAILY_IPS,
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_DATE_DIM,
    GOLD_DIRECTION_DIM,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_IP_DIM,
    GOLD_PACKETS_FACT,
    GOLD_TOP_EXTERNAL_HOSTS,
    GOLD_TRAFFIC_ANOMALIES,
    GOLD_USER_HOURLY,
    GOLD_USER_IP_HOURLY,
    GOLD_USERS_DIM,
    TableDef,
)
from packetx_lakehouse.lib.transform.ipscope import dominant_private_ip, scope_lookup

_DAY_USER = ("log_date", "user")
_MASK_63 = (1 << 63) - 1
#: Scales the mean absolute deviation to the normal sigma when the MAD is 0 (Iglewicz-Hoaglin).
_MEAN_AD_SCALE = 1.253314

_DIRECTION_DESCRIPTIONS = {
    "inbound": "A public host and a private address other than the device",
    "outbound": "The device and a public host",
    "internal": "Both ends private (LAN, loopback, link-local)",
    "unknown": "Neither end private: the device's side cannot be told",
}
_DIRECTION_KEYS = {name: key for key, name in enumerate(DIRECTIONS, start=1)}


def stable_key(texts: Iterable[str]) -> list[int]:
    """A deterministic non-negative 63-bit key per text (BLAKE2b, first 8 bytes)."""
    return [
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big") & _MASK_63
        for t in texts
    ]


def _keyed(column: pl.Series) -> pl.Series:
    """``stable_key`` of every value of ``column``, hashing each distinct value once.

    Rows are mapped through categorical codes and a lookup array: one string hash per row in
    Polars instead of a string hash join (4x cheaper on a week of facts).
    """
    codes = column.cast(pl.Categorical).to_physical()
    first = pl.DataFrame({"code": codes, "value": column}).filter(
        pl.col("code").is_not_null() & pl.col("code").is_first_distinct()
    )
    lookup = np.zeros(int(first["code"].max() or 0) + 1, np.int64)
    lookup[first["code"].to_numpy()] = stable_key(first["value"].to_list())
    return pl.Series(column.name, lookup).gather(codes)


def _date_keys(ts: pl.Series) -> pl.Series:
    """yyyymmddhh of each timestamp; calendar fields are costly, so once per distinct hour."""
    hours = ts.dt.truncate("1h")
    distinct = hours.unique().drop_nulls().sort()
    keys = (
        distinct.dt.year().cast(pl.Int64) * 1_000_000
        + distinct.dt.month().cast(pl.Int64) * 10_000
        + distinct.dt.day().cast(pl.Int64) * 100
        + distinct.dt.hour().cast(pl.Int64)
    )
    if distinct.is_empty():
        return pl.Series(ts.name, [None] * len(ts), pl.Int64)
    # Hours since the first one index a lookup array: integer gathers instead of a hash join.
    hour_us = 3_600_000_000
    first = distinct.dt.epoch("us")[0]
    lookup = np.zeros((distinct.dt.epoch("us")[-1] - first) // hour_us + 1, np.int64)
    lookup[((distinct.dt.epoch("us") - first) // hour_us).to_numpy()] = keys.to_numpy()
    return pl.Series(ts.name, lookup).gather((hours.dt.epoch("us") - first) // hour_us)


#: PacketX prints 6 significant digits, so KB summed as whole micro-KB is exact (below 2**53
#: micro-KB, ~9 TB per group): the same total whatever order rows arrive in (one day or a whole
#: range), which plain float addition does not give. Kept as float so a NaN still shows.
MICRO_KB = 1_000_000


def kb_sum(where: pl.Expr | None = None) -> pl.Expr:
    """Order-independent sum of ``kb`` (optionally of the rows matching ``where``)."""
    micro = (pl.col("kb") * MICRO_KB).round()
    return (micro if where is None else micro.filter(where)).sum() / MICRO_KB


#: The silver columns the aggregate builders read: converting only these to Polars leaves out
#: the lineage and audit text (source_file, device_ip), a third of the bytes of a day.
BUILDER_COLUMNS = (
    "log_date", "user", "ts_utc", "source_ip", "destination_ip", "local_ip", "remote_ip",
    "local_is_private", "remote_is_private", "direction", "kb", "is_restart_replay",
)  # fmt: skip


#: Silver rows as Arrow, or as the Polars frame several builders share.
Silver = pa.Table | pl.DataFrame


def _live(silver: Silver) -> pl.LazyFrame:
    """Silver rows that count (not restart replays), with their UTC hour.

    Lazy, so each aggregate only filters the few columns it reads. Builders accept the Polars
    frame too, so that several of them over the same rows convert from Arrow only once.
    """
    return (
        (silver if isinstance(silver, pl.DataFrame) else pl.from_arrow(silver))
        .lazy()
        .filter(~pl.col("is_restart_replay"))
        .with_columns(hour_utc=pl.col("ts_utc").dt.truncate("1h"))
    )


def _table(
    frame: pl.DataFrame | pl.LazyFrame, table_def: TableDef, order: Sequence[str] | None = None
) -> pa.Table:
    """Exactly ``table_def``'s schema, sorted (by ``order``, else the key) so rebuilds are identical."""
    frame = frame.sort(order or table_def.key)
    return frame.lazy().select(table_def.schema.names).collect().to_arrow().cast(table_def.schema)


#: The fact's grain; the two flags depend on the addresses, so grouping by them adds no groups.
_CELL = ("log_date", "user", "hour_utc", "local_ip", "remote_ip", "direction", "local_is_private", "remote_is_private")
_HOUR_USER = (*_DAY_USER, "hour_utc")


@dataclass(frozen=True)
class HourlyCells:
    """Counted silver rows summed at the fact's grain, once, for every builder that needs no finer.

    ``minute_mask`` has bit ``m`` set when minute ``m`` of the hour has a row: OR-ing masks gives
    the distinct minutes of any coarser cell exactly, which a count of minutes could not.
    """

    frame: pl.DataFrame


def hourly_cells(silver: Silver) -> HourlyCells:
    """``kb`` (exact micro-KB sum), ``minute_mask`` and ``rows`` per fact cell of the live rows."""
    minute_bit = pl.lit(2, pl.Int64).pow(pl.col("ts_utc").dt.minute().cast(pl.UInt32))
    return HourlyCells(
        _live(silver)
        .group_by(_CELL)
        .agg(kb=kb_sum(), minute_mask=minute_bit.bitwise_or(), rows=pl.len().cast(pl.Int64))
        .collect()
    )


def _cells(source: Silver | HourlyCells) -> pl.LazyFrame:
    return (source if isinstance(source, HourlyCells) else hourly_cells(source)).frame.lazy()


def _minutes(mask: pl.Expr) -> pl.Expr:
    return mask.bitwise_count_ones().cast(pl.Int64)


def hourly_bandwidth(source: Silver | HourlyCells) -> pa.Table:
    """KB and active minutes per user, UTC hour, remote host and direction."""
    frame = _cells(source).group_by(GOLD_HOURLY_BANDWIDTH.key).agg(
        kb=kb_sum(), minutes=_minutes(pl.col("minute_mask").bitwise_or())
    )
    return _table(frame, GOLD_HOURLY_BANDWIDTH)


def daily_user_bandwidth(silver: Silver) -> pa.Table:
    """One row per user-day: KB by direction, distinct remotes and the busiest UTC minute.

    The peak minute is the minute with the largest summed pair KB (earliest on ties); PacketX's
    own ``total_kb`` is not used because it can include traffic outside the listed pairs.
    """
    live = _live(silver)
    totals = live.group_by(_DAY_USER).agg(
        total_kb=kb_sum(),
        **{f"{d}_kb": kb_sum(pl.col("direction") == d) for d in DIRECTIONS},
        distinct_remote_hosts=pl.col("remote_ip").n_unique().cast(pl.Int64),
        rows=pl.len().cast(pl.Int64),
    )
    peaks = (
        live.group_by(*_DAY_USER, "ts_utc")
        .agg(peak_minute_kb=kb_sum())
        .sort("peak_minute_kb", "ts_utc", descending=[True, False])
        .group_by(_DAY_USER, maintain_order=True)
        .first()
        .rename({"ts_utc": "peak_minute_utc"})
    )
    return _table(totals.join(peaks, on=_DAY_USER), GOLD_DAILY_USER_BANDWIDTH)


def top_external_hosts(source: Silver | HourlyCells, n: int = 10) -> pa.Table:
    """The ``n`` public remotes with the most KB per user-day, ranked 1..n (ties: smaller IP).

    "Public" is scope ``public``: multicast, broadcast and reserved addresses are not hosts
    anyone would look up. ``share`` is of the user-day's KB with all public remotes.
    """
    live = _cells(source).filter(~pl.col("remote_is_private"))
    remotes = live.select(pl.col("remote_ip").unique()).collect().to_series().to_list()
    public = scope_lookup(remotes).filter(pl.col("scope") == "public")
    frame = (
        live.filter(pl.col("remote_ip").is_in(public["ip"].implode()))
        .group_by(*_DAY_USER, "remote_ip")
        .agg(kb=kb_sum())
        .sort("kb", "remote_ip", descending=[True, False])
        .with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(_DAY_USER),
            public_kb=kb_sum().over(_DAY_USER),
        )
        .filter(pl.col("rank") <= n)
        .with_columns(
            share=pl.when(pl.col("public_kb") > 0)
            .then(pl.col("kb") / pl.col("public_kb"))
            .otherwise(0.0)
        )
    )
    return _table(frame, GOLD_TOP_EXTERNAL_HOSTS)


#: A day's anomalies are scored against the 7 days before it.
BASELINE_DAYS = 7


def anomaly_window(days: Sequence[dt.date]) -> list[dt.date]:
    """The ``hourly_bandwidth`` days that scoring ``days`` can touch: each day's baseline before it,
    and the days after the last one, whose baselines include it (a late day re-scores them)."""
    baseline = dt.timedelta(days=BASELINE_DAYS)
    first, last = days[0] - baseline, days[-1] + baseline
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def days_to_score(days: Sequence[dt.date], present: Iterable[dt.date]) -> list[dt.date]:
    """``days`` plus the later days of their window that have data: those whose baseline changed."""
    later = sorted(d for d in set(present) if days[-1] < d <= days[-1] + dt.timedelta(days=BASELINE_DAYS))
    return [*days, *later]


def traffic_anomalies(
    hourly_window: pa.Table,
    day: dt.date,
    min_baseline_hours: int = 24,
    threshold: float = 3.5,
) -> pa.Table:
    """Hours of ``day`` whose per-user KB spikes above the user's trailing 7 days.

    Hours are (log_date, user, hour_utc) totals over all remotes and directions. Baseline = the
    user's active hours (hours with traffic) of the 7 days before ``day``;
    ``robust_z = 0.6745 * (x - median) / MAD``. When the MAD is 0 (over half the baseline hours
    identical) the mean absolute deviation, scaled by 1.2533, takes its place; when that is 0 too
    the baseline is constant and no z is defined, so nothing is emitted. Users with fewer than
    ``min_baseline_hours`` baseline hours are skipped: a z on a handful of hours is noise.

    Args:
        hourly_window: ``hourly_bandwidth`` rows of ``day`` and the 7 days before it.
        day: The day whose hours are judged (its ``log_date``).
        min_baseline_hours: Baseline size needed before judging a user.
        threshold: Emit hours with ``robust_z`` above this.
    """
    hours = (
        pl.from_arrow(hourly_window)
        .group_by(*_DAY_USER, "hour_utc")
        .agg(kb=kb_sum())
    )
    deviation = (pl.col("kb") - pl.col("kb").median()).abs()
    week_before = (day - dt.timedelta(days=BASELINE_DAYS), day - dt.timedelta(days=1))
    baseline = (
        hours.filter(pl.col("log_date").is_between(*week_before))
        .group_by("user")
        .agg(
            baseline_median_kb=pl.col("kb").median(),
            baseline_mad_kb=deviation.median(),
            mean_ad=deviation.mean(),
            baseline_hours=pl.len().cast(pl.Int64),
        )
        .filter(pl.col("baseline_hours") >= min_baseline_hours)
    )
    excess = pl.col("kb") - pl.col("baseline_median_kb")
    frame = (
        hours.filter(pl.col("log_date") == day)
        .join(baseline, on="user")
        .with_columns(
            robust_z=pl.when(pl.col("baseline_mad_kb") > 0)
            .then(0.6745 * excess / pl.col("baseline_mad_kb"))
            .when(pl.col("mean_ad") > 0)
            .then(excess / (_MEAN_AD_SCALE * pl.col("mean_ad")))
        )
        .filter(pl.col("robust_z") > threshold)
    )
    return _table(frame, GOLD_TRAFFIC_ANOMALIES)


def user_ip_hourly(source: Silver | HourlyCells) -> pa.Table:
    """The device IP of each user-hour: the private address in the most rows (ties: smaller).

    ``rows`` is how many rows of the hour that address is an end of: the evidence for it.
    """
    ends = (("local_ip", "local_is_private"), ("remote_ip", "remote_is_private"))
    frame = dominant_private_ip(_cells(source), _HOUR_USER, ends, weight="rows").rename({"ip": "local_ip"})
    return _table(frame, GOLD_USER_IP_HOURLY)


def user_hourly(source: Silver | HourlyCells) -> pa.Table:
    """KB, rows and which minutes per user-hour: the cells of one hour are all it needs.

    The minute mask is the OR of the hour's cell masks, so the first and last minute seen are its
    lowest and highest bit.
    """
    mask = pl.col("minute_mask")
    frame = (
        _cells(source)
        .group_by(_HOUR_USER)
        .agg(kb=kb_sum(), rows=pl.col("rows").sum(), minute_mask=mask.bitwise_or(),
             remote_hosts=pl.col("remote_ip").n_unique().cast(pl.Int64))
        .with_columns(
            minutes=_minutes(mask),
            first_minute_utc=pl.col("hour_utc") + pl.duration(minutes=mask.bitwise_trailing_zeros()),
            last_minute_utc=pl.col("hour_utc") + pl.duration(minutes=63 - mask.bitwise_leading_zeros()),
        )
    )
    return _table(frame, GOLD_USER_HOURLY)


def daily_ips(silver: Silver) -> pa.Table:
    """Every address at either end of a day's counted rows: a superset of the fact's IP keys."""
    pairs = _live(silver).select("log_date", "source_ip", "destination_ip").unique()
    ends = pairs.select("log_date", ip=pl.concat_list("source_ip", "destination_ip")).explode("ip")
    return _table(ends.unique(), GOLD_DAILY_IPS)


def users_dim(user_ip_hourly_all: pa.Table) -> pa.Table:
    """SCD type 2 of each user's device IP, rebuilt in full from every ``user_ip_hourly`` row.

    A UTC hour present under two log dates (zones with half-hour offsets, DST) is merged first,
    so the result depends only on the set of rows, never on the order days were loaded in.
    Consecutive hours with the same IP form one version; a version lasts until the next one
    starts (hours without traffic belong to the version before them), and the last is current.
    """
    hours = (
        pl.from_arrow(user_ip_hourly_all)
        .group_by("user", "hour_utc", "local_ip")
        .agg(pl.col("rows").sum())
        .sort("rows", "local_ip", descending=[True, False])
        .group_by("user", "hour_utc", maintain_order=True)
        .first()
        .sort("user", "hour_utc")
    )
    changed = pl.col("local_ip") != pl.col("local_ip").shift(1).over("user")
    versions = (
        hours.with_columns(version=changed.fill_null(True).cum_sum().over("user").cast(pl.Int64))
        .group_by("user", "version", maintain_order=True)
        .agg(pl.col("local_ip").first(), valid_from=pl.col("hour_utc").first())
        .with_columns(valid_to=pl.col("valid_from").shift(-1).over("user"))
        .with_columns(is_current=pl.col("valid_to").is_null())
    )
    identity = pl.concat_str(
        "user", "local_ip", pl.col("valid_from").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"), separator="\x1f"
    )
    versions = versions.with_columns(
        user_id=_keyed(versions["user"]), user_key=_keyed(versions.select(identity).to_series())
    )
    return _table(versions, GOLD_USERS_DIM, order=("user", "version"))


def ip_dim(
    ips: pa.Array | pa.ChunkedArray | Sequence[str | None], existing: pa.Table | None = None
) -> pa.Table:
    """Merge ``ips`` into the IP dimension; only addresses not yet present are classified.

    Sorted by ``ip`` so the content is the same whatever order the addresses arrived in.
    """
    known = pl.from_arrow(existing if existing is not None else GOLD_IP_DIM.schema.empty_table())
    incoming = pl.Series("ip", ips, dtype=pl.String).drop_nulls().unique()
    added = scope_lookup(incoming.filter(~incoming.is_in(known["ip"].implode())).to_list())
    added = added.with_columns(ip_key=_keyed(added["ip"]))
    merged = pl.concat([known, added.select(known.columns)], how="vertical_relaxed")
    return _table(merged, GOLD_IP_DIM, order=("ip",))


def direction_dim() -> pa.Table:
    """The four directions with fixed keys (their position in ``DIRECTIONS``)."""
    return pa.table(
        {
            "direction_key": list(_DIRECTION_KEYS.values()),
            "direction": list(_DIRECTION_KEYS),
            "description": [_DIRECTION_DESCRIPTIONS[d] for d in _DIRECTION_KEYS],
        },
        schema=GOLD_DIRECTION_DIM.schema,
    )


def date_dim(start: dt.date, end: dt.date) -> pa.Table:
    """Every UTC hour from ``start`` 00:00 to ``end`` 23:00, keyed yyyymmddhh."""
    hours = pl.datetime_range(
        dt.datetime.combine(start, dt.time()),
        dt.datetime.combine(end, dt.time(23)),
        "1h",
        time_unit="us",
        time_zone="UTC",
        eager=True,
    ).alias("hour_start_utc")
    hour = pl.col("hour_start_utc")
    frame = pl.DataFrame([hours, _date_keys(hours).alias("date_key")]).with_columns(
        date=hour.dt.date(),
        hour=hour.dt.hour().cast(pl.Int64),
        day_of_week=hour.dt.weekday().cast(pl.Int64),
        day_name=hour.dt.strftime("%A"),
        month=hour.dt.month().cast(pl.Int64),
        year=hour.dt.year().cast(pl.Int64),
        is_weekend=hour.dt.weekday() >= 6,
    )
    return _table(frame, GOLD_DATE_DIM)


def packets_fact(source: Silver | HourlyCells) -> pa.Table:
    """The hourly fact: one row per fact cell, carrying durable and stable keys only.

    ``user_id`` plus ``hour_utc`` finds the users_dim version (see ``resolve_user_versions``).
    Keys are hashed on the cells, not the rows: a few thousand values a day instead of every row.
    """
    cells = _cells(source).collect()
    frame = cells.select(
        "log_date", "hour_utc", "kb", "rows",
        date_key=_date_keys(cells["hour_utc"]),
        user_id=_keyed(cells["user"]),
        local_ip_key=_keyed(cells["local_ip"]),
        remote_ip_key=_keyed(cells["remote_ip"]),
        direction_key=pl.col("direction").replace_strict(_DIRECTION_KEYS, return_dtype=pl.Int64),
        minutes=_minutes(pl.col("minute_mask")),
    )
    return _table(frame, GOLD_PACKETS_FACT)


def resolve_user_versions(fact: pa.Table, users_dim: pa.Table) -> pa.Table:
    """Point-in-time lookup: each fact's ``user_key`` is the version valid at its ``hour_utc``.

    Returns:
        The fact's key columns plus ``user_key`` (null where no version covers the fact: an
        orphan), sorted by the key.
    """
    key = list(GOLD_PACKETS_FACT.key)
    return user_versions(fact.select(key), users_dim).sort(key).select(*key, "user_key").to_arrow()


def user_versions(fact: pa.Table, users_dim: pa.Table) -> pl.DataFrame:
    """``fact``'s columns (at least ``user_id, hour_utc``) plus the ``user_key`` valid at ``hour_utc``.

    Versions start on whole UTC hours, so the one valid at the hour's start covers all of it.
    """
    versions = pl.from_arrow(users_dim).select("user_id", "valid_from", "valid_to", "user_key")
    return (
        pl.from_arrow(fact)
        .sort("hour_utc")
        .join_asof(
            versions.sort("valid_from"),
            left_on="hour_utc",
            right_on="valid_from",
            by="user_id",
            check_sortedness=False,  # sorted by hour_utc overall, hence within each user
        )
        .with_columns(
            user_key=pl.when(pl.col("valid_to").is_null() | (pl.col("hour_utc") < pl.col("valid_to")))
            .then(pl.col("user_key"))
        )
    )


def hourly_fact_from_row_grain(fact: pa.Table) -> pa.Table:
    """A fact written at the former row grain (one row per silver row), summed to the hourly grain.

    What upgrading an existing lakehouse needs without re-reading silver: the row-grain fact
    already held exactly the counted rows, with their keys and minute.
    """
    frame = (
        pl.from_arrow(fact)
        .lazy()
        .with_columns(hour_utc=pl.col("ts_utc").dt.truncate("1h"))
        .group_by(GOLD_PACKETS_FACT.key)
        .agg(
            pl.col("date_key").first(),
            kb=kb_sum(),
            minutes=pl.col("ts_utc").n_unique().cast(pl.Int64),
            rows=pl.len().cast(pl.Int64),
        )
    )
    return _table(frame, GOLD_PACKETS_FACT)


def build_daily_tables(silver: pa.Table) -> dict[TableDef, pa.Table]:
    """Every per-day gold table (``GOLD_DAILY_TABLES``) from one read of a run's silver rows.

    Rows are grouped to the fact's hourly cells once; the fact, ``hourly_bandwidth``,
    ``top_external_hosts``, ``user_ip_hourly`` and ``user_hourly`` are built from those cells.
    """
    frame = pl.from_arrow(silver.select(list(BUILDER_COLUMNS)))  # once, not once per builder
    cells = hourly_cells(frame)
    built = {
        GOLD_HOURLY_BANDWIDTH: hourly_bandwidth(cells),
        GOLD_DAILY_USER_BANDWIDTH: daily_user_bandwidth(frame),
        GOLD_TOP_EXTERNAL_HOSTS: top_external_hosts(cells),
        GOLD_USER_IP_HOURLY: user_ip_hourly(cells),
        GOLD_DAILY_IPS: daily_ips(frame),
        GOLD_PACKETS_FACT: packets_fact(cells),
        GOLD_USER_HOURLY: user_hourly(cells),
    }
    return {table_def: built[table_def] for table_def in GOLD_DAILY_TABLES}
