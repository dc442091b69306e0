"""What every layer's assets share: keys named after their tables, and the daily options."""

from typing import Any

import dagster as dg

from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS
from packetx_lakehouse.lib.schemas import TableDef

OWNERS = ["team:packetx-data"]
#: A backfill runs up to a month per run: each asset handles a range of days in one pass.
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)


def asset_key(table_def: TableDef) -> dg.AssetKey:
    """An Iceberg table's asset key: ``<namespace>/<table>``, as shown in the UI."""
    return dg.AssetKey([table_def.namespace, table_def.name])


def daily_asset_options(pool: str = "iceberg_writes") -> dict[str, Any]:
    """Daily partitions, range backfills, following upstream by itself, one writer per pool."""
    return {
        "partitions_def": DAILY_PARTITIONS,
        "backfill_policy": BACKFILL_POLICY,
        "automation_condition": dg.AutomationCondition.eager(),
        "pool": pool,
        "owners": OWNERS,
    }
