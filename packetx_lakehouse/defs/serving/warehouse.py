"""Warehouse export: the gold star schema in PostgreSQL or Redshift.

Only part of the definitions when ``PACKETX_WAREHOUSE_URL`` is set. The project runs its own DDL
migrations before every load, so a new warehouse needs nothing but an empty database.
"""


import dagster as dg

from packetx_lakehouse.defs.conventions import (
    NETWORK_RETRY,
    asset_key,
    daily_step,
    serving_spec,
)
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource, WarehouseResource
from packetx_lakehouse.defs.tables import add_day_metadata, split_days
from packetx_lakehouse.lib.schemas import STAR_DIMENSIONS, STAR_FACT
from packetx_lakehouse.lib.storage.iceberg import ensure_table, read_partitions
from packetx_lakehouse.lib.transform.upgrades import upgrade_row_grain_fact

WAREHOUSE_KEY = dg.AssetKey(["serving", "warehouse"])


def warehouse_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    spec = serving_spec(
        WAREHOUSE_KEY,
        deps=[asset_key(t) for t in (STAR_FACT, *STAR_DIMENSIONS)],
        kinds={"postgres", "redshift"},
        description="The star schema (date_dim, ip_dim, users_dim SCD2, direction_dim, packets_fact) in the "
        "warehouse at PACKETX_WAREHOUSE_URL: dimensions replaced in full, facts replaced per day, one transaction.",
    )

    @dg.multi_asset(name="warehouse_star_schema", specs=[spec], **daily_step(partitions, pool="warehouse_loads", retry_policy=NETWORK_RETRY))
    def warehouse_star_schema(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        days = partition_dates(context)
        catalog = iceberg.load()
        target = warehouse.warehouse()
        applied = target.migrate()
        if applied:
            context.log.info(f"applied warehouse migrations {', '.join(applied)} to {target.location}")
        upgrade_row_grain_fact(catalog)
        fact = read_partitions(ensure_table(catalog, STAR_FACT), values=days)
        dimensions = {t: ensure_table(catalog, t).scan().to_arrow() for t in STAR_DIMENSIONS}
        result = target.load(days, fact, dimensions)
        add_day_metadata(context, WAREHOUSE_KEY, {
            day: {"dagster/row_count": rows.num_rows} for day, rows in split_days(fact, days).items()})
        return dg.MaterializeResult(
            metadata={
                "warehouse": target.location,
                "dialect": target.dialect,
                "migrations_applied": ", ".join(applied) or "none pending",
                **{f"rows/{name}": count for name, count in result.rows.items() if name != STAR_FACT.name},
            }
        )

    return warehouse_star_schema
