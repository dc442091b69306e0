"""The star schema's dimensions: unpartitioned, rebuilt in full from small per-day inputs.

Their content never depends on the order in which days were loaded. One subsettable step
holds all four; each still commits its own table, and only when its content (or the source
version of some day it was built from) changed. A rebuild from data older than the one
committed, for any day, is refused and redone (``redo_when_stale``).
"""


import datetime as dt
import functools
from collections.abc import Callable, Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from packetx_lakehouse.defs.checks import check_spec, problems_check, selected_checks
from packetx_lakehouse.defs.conventions import (
    ICEBERG_POOL,
    NOT_WITH_PARENTS,
    asset_key,
    refreshes_new_lines,
    table_spec,
)
from packetx_lakehouse.defs.metadata import iceberg_metadata, table_metadata
from packetx_lakehouse.defs.resources import IcebergCatalogResource
from packetx_lakehouse.defs.tables import log_lost_commits, redo_when_stale
from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_IPS,
    GOLD_DATE_DIM,
    GOLD_DIRECTION_DIM,
    GOLD_IP_DIM,
    GOLD_PACKETS_FACT,
    GOLD_USER_IP_HOURLY,
    GOLD_USERS_DIM,
    STAR_DIMENSIONS,
    TableDef,
)
from packetx_lakehouse.lib.storage.iceberg import (
    Generations,
    WriteResult,
    ensure_table,
    replace_table,
    source_generations,
)
from packetx_lakehouse.lib.transform import checks, gold

SCD2_VALID = "users_dim_scd2_valid"
IP_DIM_UNIQUE = "ip_dim_unique"
#: An unpartitioned dimension over daily parents: every day since the start date without data
#: counts as a "missing dep", which would block plain eager() forever. Any day's update of an input
#: triggers it, once that day's run is done (it runs in a run of its own).
DIMENSION_AUTOMATION = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()) & NOT_WITH_PARENTS
).with_label("any input day, after its run")
#: What each dimension is rebuilt from (``date_dim``, ``direction_dim``: not data, but they must
#: follow new facts, or automation would never build them where no pipeline run did).
_INPUTS = {
    GOLD_USERS_DIM: GOLD_USER_IP_HOURLY,
    GOLD_IP_DIM: GOLD_DAILY_IPS,
    GOLD_DATE_DIM: GOLD_PACKETS_FACT,
    GOLD_DIRECTION_DIM: GOLD_PACKETS_FACT,
}


#: A dimension's rows and the source generation of every day they were built from (None: not data).
Built = tuple[pa.Table, Generations | None]
#: The step's Iceberg tables, each loaded once.
Load = Callable[[TableDef], Table]


def dimension_assets(
    partitions: dg.DailyPartitionsDefinition, *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """The four dimensions; ``date_dim`` spans ``partitions`` (from the day before the first to tomorrow)."""
    specs = [table_spec(t, group="gold", automation_condition=DIMENSION_AUTOMATION,
                        deps=[asset_key(_INPUTS[t])] if t in _INPUTS else []) for t in STAR_DIMENSIONS]

    def calendar(load: Load) -> Built:
        first = partitions.start.date() - dt.timedelta(days=1)
        last = dt.date.fromisoformat(partitions.get_last_partition_key()) + dt.timedelta(days=1)
        return gold.date_dim(first, last), None

    def ip_dim(load: Load) -> Built:
        daily_ips = load(GOLD_DAILY_IPS)
        ips = daily_ips.scan(selected_fields=("ip",)).to_arrow().column("ip")
        return gold.ip_dim(pc.unique(ips)), source_generations(daily_ips)

    def users_dim(load: Load) -> Built:
        user_ip_hourly = load(GOLD_USER_IP_HOURLY)
        return gold.users_dim(user_ip_hourly.scan().to_arrow()), source_generations(user_ip_hourly)

    builders: dict[TableDef, Callable[[Load], Built]] = {
        GOLD_DATE_DIM: calendar,
        GOLD_IP_DIM: ip_dim,
        GOLD_USERS_DIM: users_dim,
        GOLD_DIRECTION_DIM: lambda load: (gold.direction_dim(), None),
    }

    @dg.multi_asset(
        name="star_dimensions",
        specs=specs,
        check_specs=[
            # Blocking: serving would resolve facts against ambiguous versions or addresses.
            check_spec(asset_key(GOLD_USERS_DIM), SCD2_VALID, "SCD2 validity: one current row per user, no "
                       "overlapping or gapped versions, versions numbered in order", blocking=True),
            check_spec(asset_key(GOLD_IP_DIM), IP_DIM_UNIQUE, "one row per ip_key and per ip", blocking=True),
        ],
        can_subset=True,
        pool=ICEBERG_POOL,
        retry_policy=retry_policy,
    )
    @redo_when_stale
    def star_dimensions(context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource) -> Iterator:
        catalog = iceberg.load()
        load: Load = functools.cache(lambda table_def: ensure_table(catalog, table_def))
        # What each dimension holds now: rebuilt (or found unchanged) here, else read for its check.
        held: dict[TableDef, pa.Table] = {}
        for table_def in STAR_DIMENSIONS:
            if asset_key(table_def) not in context.selected_asset_keys:
                continue
            if refreshes_new_lines(context) and _built_from_current(load, table_def):
                # A refresh whose inputs are at the generations the dimension was built from: unchanged.
                yield dg.MaterializeResult(asset_key=asset_key(table_def), metadata={"unchanged": True})
                continue
            result, held[table_def] = _replace_dimension(context, load(table_def), table_def,
                                                         *builders[table_def](load))
            yield result

        def holds(table_def: TableDef) -> pa.Table:
            return held[table_def] if table_def in held else load(table_def).scan().to_arrow()

        # Checks validate what the table holds now, whether or not this step rebuilt it.
        if SCD2_VALID in selected_checks(context, asset_key(GOLD_USERS_DIM)):
            dim = holds(GOLD_USERS_DIM)
            yield problems_check(SCD2_VALID, checks.scd2_problems(dim), asset_key(GOLD_USERS_DIM))
        if IP_DIM_UNIQUE in selected_checks(context, asset_key(GOLD_IP_DIM)):
            dim = holds(GOLD_IP_DIM)
            yield problems_check(IP_DIM_UNIQUE, checks.duplicate_keys(dim, ["ip_key"]) + checks.duplicate_keys(dim, ["ip"]),
                                 asset_key(GOLD_IP_DIM))

    return star_dimensions


def _built_from_current(load: Load, table_def: TableDef) -> bool:
    """Whether a dimension built from daily data was built from every day's current generation of it."""
    if load(table_def).current_snapshot() is None:
        return False
    source = _INPUTS.get(table_def)
    if source is None or source is GOLD_PACKETS_FACT:  # the calendar and the directions are not built from data
        return table_def is GOLD_DIRECTION_DIM
    return source_generations(load(table_def)) == source_generations(load(source))


def _replace_dimension(
    context: dg.AssetExecutionContext, table: Table, table_def: TableDef, data: pa.Table,
    generations: Generations | None,
) -> tuple[dg.MaterializeResult, pa.Table]:
    """Commit ``data`` unless the table already holds it; returns the result and what the table holds."""
    current = table.scan().to_arrow()
    order = [(column, "ascending") for column in table_def.key]
    key = asset_key(table_def)
    recorded = source_generations(table)
    newer_sources = any(g > recorded.get(day, 0) for day, g in (generations or {}).items())
    # A scan returns large strings where the builders make strings: compare values, not types.
    if (not newer_sources and current.num_rows == data.num_rows
            and current.cast(data.schema).sort_by(order).equals(data.sort_by(order))):
        # Unchanged: no new snapshot, so re-runs leave the table (and its history) as it was.
        snapshot = table.current_snapshot()
        unchanged = WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location())
        return dg.MaterializeResult(asset_key=key, metadata={**iceberg_metadata(table_def.identifier, unchanged),
                                                             **table_metadata(data), "unchanged": True}), current
    written = replace_table(table, data, generations=generations, on_retry=log_lost_commits(context, table_def))
    return dg.MaterializeResult(asset_key=key, metadata={**iceberg_metadata(table_def.identifier, written),
                                                         **table_metadata(data)}), data
