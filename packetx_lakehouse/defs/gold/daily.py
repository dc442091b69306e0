"""Gold's per-day tables: the aggregates people read and the inputs of the star schema.

Built from one read of the day's silver rows in the same step as silver (``defs/transform.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.defs.checks import check_spec, problems_check
from packetx_lakehouse.defs.conventions import asset_key, table_spec
from packetx_lakehouse.defs.silver.assets import SILVER_PACKETS_KEY
from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_TABLES,
    GOLD_DAILY_USER_BANDWIDTH,
    TableDef,
)
from packetx_lakehouse.lib.transform.checks import (
    duplicate_keys,
    kb_conservation,
    negative_or_nan,
)

DAILY_KEY = asset_key(GOLD_DAILY_USER_BANDWIDTH)
KB_CONSERVED = "kb_conserved"
KB_COLUMNS = ["total_kb", "inbound_kb", "outbound_kb", "internal_kb", "unknown_kb"]


def gold_daily_specs() -> list[dg.AssetSpec]:
    return [table_spec(t, group="gold", deps=[SILVER_PACKETS_KEY]) for t in GOLD_DAILY_TABLES]


def gold_daily_check_specs() -> list[dg.AssetCheckSpec]:
    # Blocking: serving, anomalies and the dimensions must not copy KB that does not add up or rows
    # counted twice.
    return [
        check_spec(DAILY_KEY, KB_CONSERVED, "daily, hourly and fact KB all equal silver KB excluding restart replays",
                   blocking=True),
        *(check_spec(asset_key(t), "unique_key", f"one row per {', '.join(t.key)}", blocking=True)
          for t in GOLD_DAILY_TABLES),
        check_spec(DAILY_KEY, "kb_valid", "no negative, NaN or null KB", blocking=True),
    ]


def unique_key(table_def: TableDef, data: pa.Table) -> dg.AssetCheckResult:
    return problems_check("unique_key", duplicate_keys(data, table_def.key), asset_key(table_def))


def kb_valid(daily: pa.Table) -> dg.AssetCheckResult:
    return problems_check("kb_valid", negative_or_nan(daily, KB_COLUMNS), DAILY_KEY)


def kb_conserved(silver_live_kb: float, gold_tables: Mapping[TableDef, pa.Table]) -> dg.AssetCheckResult:
    """No KB appears or vanishes between silver and the gold tables that sum it."""
    totals, mismatched = kb_conservation(silver_live_kb, gold_tables)
    return problems_check(KB_CONSERVED, mismatched, DAILY_KEY,
                          {"kb_totals": dg.MetadataValue.json({k: round(v, 3) for k, v in totals.items()})})
