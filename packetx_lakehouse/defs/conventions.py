"""What every asset shares: keys named after their tables, one way to declare a spec, and the
execution options of every daily step (partitions, range backfills, pools)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.settings import DEFAULT_BACKFILL_DAYS_PER_RUN

OWNERS = ["team:packetx-data"]
#: A backfill runs up to a month per run: each step handles a range of days in one pass
#: (``PACKETX_BACKFILL_DAYS_PER_RUN`` changes it per deployment, see ``definitions.py``).
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=DEFAULT_BACKFILL_DAYS_PER_RUN)
#: Every Iceberg write holds a slot of this pool (see ``dagster.yaml``).
ICEBERG_POOL = "iceberg_writes"
#: Daily tables follow their parents by themselves.
DAILY_AUTOMATION = dg.AutomationCondition.eager()


def asset_key(table_def: TableDef) -> dg.AssetKey:
    """An Iceberg table's asset key: ``<namespace>/<table>``, as shown in the UI."""
    return dg.AssetKey([table_def.namespace, table_def.name])


def table_spec(
    table_def: TableDef,
    *,
    group: str,
    deps: Iterable[dg.AssetKey | dg.AssetDep] = (),
    automation_condition: dg.AutomationCondition | None = DAILY_AUTOMATION,
    kinds: Iterable[str] = ("iceberg", "polars"),
) -> dg.AssetSpec:
    """The spec of the asset that is one lakehouse table; its description lives with its schema."""
    return dg.AssetSpec(
        asset_key(table_def),
        description=table_def.description,
        deps=list(deps),
        group_name=group,
        kinds=set(kinds),
        owners=OWNERS,
        automation_condition=automation_condition,
        metadata={"dagster/table_name": table_def.identifier},
    )


def serving_spec(key: dg.AssetKey, *, deps: Iterable[dg.AssetKey], kinds: Iterable[str], description: str) -> dg.AssetSpec:
    """A copy of gold somewhere people or apps read it: it follows gold by itself."""
    return dg.AssetSpec(key, deps=list(deps), group_name="serving", kinds=set(kinds), owners=OWNERS,
                        automation_condition=DAILY_AUTOMATION, description=description)


def daily_step(partitions: dg.PartitionsDefinition, *, pool: str = ICEBERG_POOL) -> dict[str, Any]:
    """``@dg.multi_asset`` options of every daily step: partitions, a month per backfill run, a pool."""
    return {"partitions_def": partitions, "backfill_policy": BACKFILL_POLICY, "pool": pool}
