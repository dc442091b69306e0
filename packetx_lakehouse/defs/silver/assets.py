"""Silver: typed, deduplicated rows in UTC with traffic direction and restart replays flagged.

Silver is built in the same step as gold's per-day tables (``defs/transform.py``); this module
says what the asset is, how it is checked, and what its materialisation reports.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.defs.bronze.assets import BRONZE_PACKETS_KEY
from packetx_lakehouse.defs.checks import KB_VALID, ROWS_CONSERVED, UNIQUE_KEY, check_spec, problems_check
from packetx_lakehouse.defs.conventions import asset_key, table_spec
from packetx_lakehouse.lib.schemas import SILVER_CONVERSATIONS, SILVER_PACKETS
from packetx_lakehouse.lib.transform.checks import (
    duplicate_keys,
    live_kb,
    negative_or_nan,
)

SILVER_PACKETS_KEY = asset_key(SILVER_PACKETS)


def silver_specs() -> list[dg.AssetSpec]:
    """Silver's rows, and its conversations summed from them."""
    return [table_spec(SILVER_PACKETS, group="silver", deps=[BRONZE_PACKETS_KEY]),
            table_spec(SILVER_CONVERSATIONS, group="silver", deps=[SILVER_PACKETS_KEY])]


def silver_check_specs() -> list[dg.AssetCheckSpec]:
    # Blocking: gold built from silver that lost rows, double-counts or holds bad KB would be wrong.
    return [
        check_spec(SILVER_PACKETS_KEY, ROWS_CONSERVED, "bronze rows = silver rows + exact duplicates removed",
                   blocking=True),
        check_spec(SILVER_PACKETS_KEY, KB_VALID, "no negative, NaN or null KB", blocking=True),
        check_spec(SILVER_PACKETS_KEY, UNIQUE_KEY, "one row per source file line", blocking=True),
    ]


def silver_day_metadata(bronze_rows: int, duplicates: int, silver: pa.Table) -> dict[str, object]:
    """What a person wants to see next to a day's silver row count: where its bronze rows went.

    ``silver`` is what the run wrote of the day: all of it, or a refresh's new rows.
    """
    return {
        "bronze_rows": bronze_rows,
        "exact_duplicates_removed": duplicates,
        "restart_replay_rows_flagged": pc.sum(silver.column("is_restart_replay")).as_py() or 0,
        "kb_excluding_replays": round(live_kb(silver), 3),
    }


def rows_conserved(bronze_rows: int, silver_rows: int, duplicates: int) -> dg.AssetCheckResult:
    """Every bronze row of the day is in silver or counted as an exact duplicate."""
    return dg.AssetCheckResult(
        asset_key=SILVER_PACKETS_KEY,
        check_name=ROWS_CONSERVED,
        passed=bronze_rows == silver_rows + duplicates,
        metadata={"bronze_rows": bronze_rows, "silver_rows": silver_rows, "exact_duplicates": duplicates,
                  "problems": dg.MetadataValue.md(
                      "none" if bronze_rows == silver_rows + duplicates else
                      f"- {bronze_rows:,} bronze rows but {silver_rows:,} in silver + {duplicates:,} exact duplicates")},
    )


def kb_valid(silver: pa.Table) -> dg.AssetCheckResult:
    return problems_check(KB_VALID, negative_or_nan(silver, ["kb", "total_kb"]), SILVER_PACKETS_KEY)


def unique_key(silver: pa.Table) -> dg.AssetCheckResult:
    return problems_check(UNIQUE_KEY, duplicate_keys(silver, SILVER_PACKETS.key), SILVER_PACKETS_KEY)
