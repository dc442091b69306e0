"""Validators behind the asset checks: each returns human-readable problems, ``[]`` when all is well.

Pure functions over Arrow tables, shared by every layer's checks; they never fix data, only say
what is wrong with it, in words a person can act on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_PACKETS_FACT,
    GOLD_USER_HOURLY,
    TableDef,
)
from packetx_lakehouse.lib.transform.frames import run_heads
from packetx_lakehouse.lib.transform.gold import user_versions


def duplicate_keys(table: pa.Table, key_cols: Sequence[str]) -> list[str]:
    """Key values that occur on more than one row."""
    if _unique_by_runs(pl.from_arrow(table.select(list(key_cols))), key_cols):
        return []  # the usual case (each file's lines in order): no group-by over every row
    dupes = pl.from_arrow(table.select(list(key_cols))).group_by(key_cols).len().filter(pl.col("len") > 1)
    if dupes.is_empty():
        return []
    example = dupes.sort(key_cols).row(0, named=True)
    return [f"{dupes.height} value(s) of key {tuple(key_cols)} repeat, e.g. {example}"]


def _unique_by_runs(frame: pl.DataFrame, key_cols: Sequence[str]) -> bool:
    """A one-pass proof that no key repeats, for rows grouped the way layers write them.

    True when each run of equal leading key values has a strictly increasing last column and
    no run's leading values occur twice (each file's lines in order, files in any order).
    False means "not proven", never "duplicates".
    """
    heads = run_heads(frame, key_cols)
    return heads is not None and (heads.height < 2 or heads.height == heads.unique().height)


def negative_or_nan(table: pa.Table, cols: Sequence[str]) -> list[str]:
    """Columns holding negative, NaN or null numbers (none is a valid KB)."""
    frame = pl.from_arrow(table.select(list(cols)))
    problems = []
    for col in cols:
        c = pl.col(col)
        counts = frame.select(negative=(c < 0).sum(), nan=c.is_nan().sum(), null=c.is_null().sum())
        negative, nan, null = counts.row(0)
        if negative or nan or null:
            problems.append(f"{col}: {negative} negative, {nan} NaN, {null} null")
    return problems


def scd2_problems(users_dim: pa.Table) -> list[str]:
    """Breaches of SCD type 2: one current row per user, contiguous non-overlapping versions."""
    dim = pl.from_arrow(users_dim).sort("user", "valid_from")
    problems = duplicate_keys(users_dim, ("user_key",))
    for user, n in dim.group_by("user").agg(pl.col("is_current").sum()).sort("user").iter_rows():
        if n != 1:
            problems.append(f"user {user!r}: {n} current rows (expected 1)")
    checked = dim.with_columns(
        next_from=pl.col("valid_from").shift(-1).over("user"),
        expected_version=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("user"),
    )
    rules = {
        "is_current disagrees with valid_to": pl.col("is_current") != pl.col("valid_to").is_null(),
        "valid_to is not after valid_from": pl.col("valid_to") <= pl.col("valid_from"),
        "overlaps the next version": pl.col("next_from").is_not_null()
        & (pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("next_from"))),
        "leaves a gap before the next version": pl.col("valid_to") < pl.col("next_from"),
        "version numbers are not 1..n by valid_from": pl.col("version") != pl.col("expected_version"),
    }
    for rule, broken in rules.items():
        offenders = checked.filter(broken.fill_null(False)).select("user", "version")
        problems.extend(f"user {user!r} version {version}: {rule}" for user, version in offenders.iter_rows())
    return problems


def orphan_facts(
    fact: pa.Table, users_dim: pa.Table, ip_dim: pa.Table, date_dim: pa.Table, direction_dim: pa.Table
) -> list[str]:
    """Facts whose keys find no dimension row (users by point in time)."""
    facts = pl.from_arrow(fact.select(["local_ip_key", "remote_ip_key", "date_key", "direction_key"]))

    def missing(col: str, dim: pa.Table, dim_col: str) -> int:
        keys = pl.from_arrow(dim).get_column(dim_col).implode()
        return facts.filter(pl.col(col).is_not_null() & ~pl.col(col).is_in(keys)).height

    counts = {
        "user version (user_id, hour_utc)": user_versions(fact.select(["user_id", "hour_utc"]), users_dim)[
            "user_key"
        ].null_count(),
        "local_ip_key": missing("local_ip_key", ip_dim, "ip_key"),
        "remote_ip_key": missing("remote_ip_key", ip_dim, "ip_key"),
        "date_key": missing("date_key", date_dim, "date_key"),
        "direction_key": missing("direction_key", direction_dim, "direction_key"),
    }
    return [f"{n} fact(s) with no matching {what}" for what, n in counts.items() if n]


def kb_mismatches(reference: str, reference_kb: float, totals: Mapping[str, float], *,
                  relative: float = 1e-6) -> list[str]:
    """Totals that differ from ``reference_kb`` by more than ``relative`` of it.

    Float sums in another order differ in the last bits; a lost row differs by far more.
    """
    tolerance = relative * max(1.0, abs(reference_kb))
    return [f"{name}: {kb:,.3f} KB vs {reference} {reference_kb:,.3f} KB" for name, kb in totals.items()
            if abs(kb - reference_kb) > tolerance]


#: Where each gold table that must add up to silver's KB keeps it.
KB_COLUMNS: dict[TableDef, str] = {
    GOLD_DAILY_USER_BANDWIDTH: "total_kb", GOLD_HOURLY_BANDWIDTH: "kb", GOLD_PACKETS_FACT: "kb", GOLD_USER_HOURLY: "kb",
}


#: Where each gold table that must count every one of silver's live rows keeps the count.
ROW_COLUMNS: dict[TableDef, str] = {
    GOLD_DAILY_USER_BANDWIDTH: "rows", GOLD_PACKETS_FACT: "rows", GOLD_USER_HOURLY: "rows",
}


def _live(silver: pa.Table) -> pa.ChunkedArray:
    return pc.invert(silver.column("is_restart_replay"))


def live_kb(silver: pa.Table) -> float:
    """Silver's KB without restart replays: what every gold table must add up to."""
    return pc.sum(pc.filter(silver.column("kb"), _live(silver))).as_py() or 0.0


def live_rows(silver: pa.Table) -> int:
    """Silver's rows without restart replays: what every gold ``rows`` measure must add up to."""
    return pc.sum(pc.cast(_live(silver), pa.int64())).as_py() or 0


def kb_conservation(silver_live_kb: float, gold_tables: Mapping[TableDef, pa.Table]) -> tuple[dict[str, float], list[str]]:
    """Silver's live KB (``live_kb``) beside each gold table's KB, and the tables that do not add up."""
    reference = silver_live_kb
    totals = {table_def.name: pc.sum(gold_tables[table_def].column(column)).as_py() or 0.0
              for table_def, column in KB_COLUMNS.items()}
    return {"silver (excluding replays)": reference, **totals}, kb_mismatches("silver", reference, totals)


def rows_conservation(silver_live_rows: int, gold_tables: Mapping[TableDef, pa.Table]) -> tuple[dict[str, int], list[str]]:
    """Silver's live rows (``live_rows``) beside each gold table's ``rows`` total, and those that differ.

    Counts are exact: a cell that lost or gained one row shows.
    """
    totals = {table_def.name: pc.sum(gold_tables[table_def].column(column)).as_py() or 0
              for table_def, column in ROW_COLUMNS.items()}
    problems = [f"{name}: {rows:,} rows vs silver {silver_live_rows:,}" for name, rows in totals.items()
                if rows != silver_live_rows]
    return {"silver (excluding replays)": silver_live_rows, **totals}, problems


def hours_under_two_days(
    hourly: pa.Table, device_timezones: Mapping[str, str], default_timezone: str = "UTC"
) -> list[str]:
    """User-hours that appear under more than one ``log_date``: counted twice wherever days are summed.

    Rows off their file's date never reach bronze, so this holds by construction; the check proves
    it. One case is legitimate and left out: in a zone whose offset is not whole hours (India,
    Nepal, Newfoundland...) the UTC hour that spans the device's local midnight holds the end of
    one local day and the start of the next.

    Args:
        hourly: ``log_date``, ``user``, ``hour_utc`` rows of every day that shares an hour with the
            days checked (``hourly_bandwidth`` read by hour, not by day).
        device_timezones: IANA zone per user.
        default_timezone: Zone of users missing from ``device_timezones``.
    """
    frame = pl.from_arrow(hourly.select(["log_date", "user", "hour_utc"])).unique()
    shared = (frame.group_by("user", "hour_utc").agg(pl.col("log_date").sort())
              .filter(pl.col("log_date").list.len() > 1).sort("user", "hour_utc"))
    problems = []
    for user, hour, days in shared.iter_rows():
        zone = ZoneInfo(device_timezones.get(user, default_timezone))
        first, last = hour.astimezone(zone).date(), (hour + dt.timedelta(minutes=59)).astimezone(zone).date()
        if days == [first, last] and first != last:
            continue  # the hour spans the device's local midnight
        problems.append(f"user {user} hour {hour:%Y-%m-%d %H:00} UTC under {len(days)} log_dates: "
                        + ", ".join(str(d) for d in days))
    return problems
