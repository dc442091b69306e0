"""Serving on AWS: ``daily_user_bandwidth`` in the DynamoDB table apps read per user and day.

Only part of the definitions when ``PACKETX_ENV=aws``: there is no local DynamoDB to serve from.
"""


import dagster as dg
import pyarrow.compute as pc

from packetx_lakehouse.defs.conventions import (
    NETWORK_RETRY,
    asset_key,
    daily_step,
    serving_spec,
)
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import DynamoDBResource, IcebergCatalogResource
from packetx_lakehouse.defs.tables import add_day_metadata
from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH
from packetx_lakehouse.lib.serving import dynamodb_table
from packetx_lakehouse.lib.storage.iceberg import ensure_table, read_partitions

DYNAMODB_KEY = dg.AssetKey(["serving", "dynamodb_daily_aggregate"])


def dynamodb_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    spec = serving_spec(
        DYNAMODB_KEY,
        deps=[asset_key(GOLD_DAILY_USER_BANDWIDTH)],
        kinds={"dynamodb"},
        description="DynamoDB table (PACKETX_DYNAMODB_TABLE, default daily_aggregate): one item per user "
        "(partition key) and date (sort key) with the day's bandwidth; a day's items are replaced exactly.",
    )

    @dg.multi_asset(name="dynamodb_daily_aggregate", specs=[spec], **daily_step(partitions, pool="dynamodb_writes", retry_policy=NETWORK_RETRY))
    def dynamodb_daily_aggregate(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, dynamodb: DynamoDBResource
    ) -> dg.MaterializeResult:
        days = partition_dates(context)
        rows = read_partitions(ensure_table(iceberg.load(), GOLD_DAILY_USER_BANDWIDTH), values=days)
        client = dynamodb.client()
        if dynamodb_table.ensure_table(client, dynamodb.table):
            context.log.info(f"created DynamoDB table {dynamodb.table}")
        writes = [
            dynamodb_table.write_day(client, dynamodb.table, day, rows.filter(pc.equal(rows.column("log_date"), day)))
            for day in days
        ]
        add_day_metadata(context, DYNAMODB_KEY, {w.day: {
            "dagster/row_count": w.written, "deleted_stale_items": w.deleted, "throttling_retries": w.retries,
        } for w in writes})
        return dg.MaterializeResult(metadata={"table": dynamodb.table})

    return dynamodb_daily_aggregate
