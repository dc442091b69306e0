"""Gold's per-day tables: the aggregates people read and the inputs of the star schema.

Built from one read of the day's silver rows in the same step as silver (``defs/transform.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from packetx_lakehouse.defs.checks import KB_VALID, ROWS_CONSERVED, UNIQUE_KEY, check_spec, problems_check
from packetx_lakehouse.defs.conventions import asset_key, table_spec
from packetx_lakehouse.defs.silver.assets import SILVER_PACKETS_KEY
from packetx_lakehouse.lib.retry import retrying
from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_TABLES,
    SILVER_CONVERSATIONS,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_PACKETS_FACT,
    TableDef,
)
from packetx_lakehouse.lib.storage.iceberg import read_between
from packetx_lakehouse.lib.transform.checks import (
    duplicate_keys,
    hours_under_two_days,
    kb_conservation,
    negative_or_nan,
    rows_conservation,
)

DAILY_KEY = asset_key(GOLD_DAILY_USER_BANDWIDTH)
KB_CONSERVED = "kb_conserved"
HOURLY_KEY = asset_key(GOLD_HOURLY_BANDWIDTH)
HOURS_ON_ONE_DAY = "hours_on_one_day"
FACT_KEY = asset_key(GOLD_PACKETS_FACT)
KB_COLUMNS = ["total_kb", "inbound_kb", "outbound_kb", "internal_kb", "unknown_kb"]


def gold_daily_specs() -> list[dg.AssetSpec]:
    """Hourly tables from silver's rows; the others from its conversations (and peak minutes from rows)."""
    conversations = asset_key(SILVER_CONVERSATIONS)
    return [table_spec(t, group="gold", deps=[SILVER_PACKETS_KEY] if t in GOLD_HOURLY_TABLES
                       else [conversations, SILVER_PACKETS_KEY] if t == GOLD_DAILY_USER_BANDWIDTH else [conversations])
            for t in GOLD_DAILY_TABLES]


def gold_daily_check_specs() -> list[dg.AssetCheckSpec]:
    # Blocking: serving, anomalies and the dimensions must not copy KB that does not add up or rows
    # counted twice.
    return [
        check_spec(DAILY_KEY, KB_CONSERVED, "daily, hourly and fact KB all equal silver KB excluding restart replays",
                   blocking=True),
        check_spec(FACT_KEY, ROWS_CONSERVED, "fact and daily rows both add up to silver's rows excluding restart "
                   "replays: the hourly fact counts every row once", blocking=True),
        *(check_spec(asset_key(t), UNIQUE_KEY, f"one row per {', '.join(t.key)}", blocking=True)
          for t in GOLD_DAILY_TABLES),
        check_spec(DAILY_KEY, KB_VALID, "no negative, NaN or null KB", blocking=True),
        check_spec(HOURLY_KEY, HOURS_ON_ONE_DAY, "no user-hour appears under two log_dates (it would be counted "
                   "twice); only an hour spanning local midnight in a zone with a half-hour offset may",
                   blocking=True),
    ]


def unique_key(table_def: TableDef, data: pa.Table) -> dg.AssetCheckResult:
    return problems_check(UNIQUE_KEY, duplicate_keys(data, table_def.key), asset_key(table_def))


def kb_valid(daily: pa.Table) -> dg.AssetCheckResult:
    return problems_check(KB_VALID, negative_or_nan(daily, KB_COLUMNS), DAILY_KEY)


def kb_conserved(silver_live_kb: float, gold_kb: Mapping[str, float]) -> dg.AssetCheckResult:
    """No KB appears or vanishes between silver and the gold tables that sum it (``gold_kb``: their totals)."""
    totals, mismatched = kb_conservation(silver_live_kb, gold_kb)
    return problems_check(KB_CONSERVED, mismatched, DAILY_KEY,
                          {"kb_totals": dg.MetadataValue.json({k: round(v, 3) for k, v in totals.items()})})


def rows_conserved(silver_live_rows: int, gold_rows: Mapping[str, int]) -> dg.AssetCheckResult:
    """No silver row is dropped or counted twice when summed to the fact's hourly cells (``gold_rows``: their totals)."""
    totals, mismatched = rows_conservation(silver_live_rows, gold_rows)
    return problems_check(ROWS_CONSERVED, mismatched, FACT_KEY, {"row_totals": dg.MetadataValue.json(totals)})


def hours_on_one_day(
    hourly: Table, run_hourly: Mapping[dt.date, pa.Table], device_timezones: dict[str, str], default_timezone: str
) -> dict[dt.date, dg.AssetCheckResult]:
    """Per run day: does any user-hour of that day appear under another log_date too?

    Reads ``hourly_bandwidth`` by hour across every day, over the hours the run's days hold.
    """
    columns = ("log_date", "user", "hour_utc")
    results = {}
    for day, rows in run_hourly.items():
        shared: pa.Table = rows.select(list(columns))
        if rows.num_rows:
            hours = rows.column("hour_utc")
            shared = read_between(hourly, "hour_utc", pc.min(hours).as_py(),
                                  pc.max(hours).as_py(), columns)
            # Only the user-hours this day holds: another pair of days sharing an hour is their own problem.
            mine = rows.select(["user", "hour_utc"]).group_by(["user", "hour_utc"]).aggregate([])
            shared = shared.join(mine, ["user", "hour_utc"], join_type="inner").select(list(columns))
        results[day] = problems_check(HOURS_ON_ONE_DAY, hours_under_two_days(shared, device_timezones, default_timezone),
                                      HOURLY_KEY)
    return results
