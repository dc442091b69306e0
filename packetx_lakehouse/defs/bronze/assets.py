"""Bronze: archive each day's landing files and land every line in Iceberg, good or bad.

One multi-asset reads each file once and produces the raw archive, ``packetx_raw.packets`` and
``packetx_raw.quarantine`` together, so the three can never disagree about what was ingested.
"""


import collections
import datetime as dt

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.defs.conventions import OWNERS, asset_key, daily_step, table_spec
from packetx_lakehouse.defs.metadata import markdown_table
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource, ObjectStoreResource
from packetx_lakehouse.defs.tables import RunTables, add_day_metadata
from packetx_lakehouse.lib.ingest.bronze import ingest_days
from packetx_lakehouse.lib.ingest.landing import group_landing_by_day
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    BRONZE_QUARANTINE,
    RAW_NAMESPACE,
)

RAW_ARCHIVE_KEY = dg.AssetKey([RAW_NAMESPACE, "raw_archive"])
BRONZE_PACKETS_KEY = asset_key(BRONZE_PACKETS)
BRONZE_QUARANTINE_KEY = asset_key(BRONZE_QUARANTINE)


def bronze_assets(
    partitions: dg.DailyPartitionsDefinition, *, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    """The bronze multi-asset over ``partitions``; the landing sensor and schedules drive it."""
    archive_spec = dg.AssetSpec(
        RAW_ARCHIVE_KEY,
        description="Immutable gzip copy of every ingested traffic-log version, content-addressed by "
        "SHA-256, with a per-day manifest: the audit trail bronze is rebuilt from.",
        kinds={"s3", "gzip"},
        group_name="bronze",
        owners=OWNERS,
    )
    table_specs = [table_spec(t, group="bronze", deps=[RAW_ARCHIVE_KEY], automation_condition=None,
                              kinds=("iceberg", "pyarrow")) for t in (BRONZE_PACKETS, BRONZE_QUARANTINE)]

    @dg.multi_asset(name="bronze", specs=[archive_spec, *table_specs], **daily_step(partitions, retry_policy=retry_policy))
    def bronze(
        context: dg.AssetExecutionContext,
        iceberg: IcebergCatalogResource,
        landing: ObjectStoreResource,
        raw_archive: ObjectStoreResource,
    ):
        """Ingest every day of the run's partition range; each table gets one atomic commit."""
        days = partition_dates(context)
        landing_store, archive_store = landing.store(), raw_archive.store()
        by_day, _ = group_landing_by_day(landing_store)
        batch = ingest_days(landing_store, archive_store, days, by_day, now=dt.datetime.now(dt.UTC))
        for day in batch.days_without_files:
            context.log.warning(f"No traffic-log files for {day} in {landing_store.describe('')} or the archive")
        for file in batch.files:
            context.log.info(f"{file.source_file}: {file.rows:,} rows, {file.quarantined:,} quarantined")

        tables = RunTables(iceberg.load(), days)
        files_by_day = {day: [f for f in batch.files if f.log_date == day] for day in days}

        def file_list(day: dt.date) -> dg.MetadataValue:
            return markdown_table(
                ["file", "lines", "rows", "quarantined", "sha256", "archive"],
                [(f.source_file, f"{f.lines:,}", f"{f.rows:,}", f"{f.quarantined:,}", f.sha256, f.archive_state)
                 for f in files_by_day[day]],
            )

        def packets_of_day(day: dt.date, _rows: object) -> dict[str, object]:
            files = files_by_day[day]
            return {"lines_read": sum(f.lines for f in files), "quarantined": sum(f.quarantined for f in files),
                    "headers": sum(f.headers for f in files), "blank_lines": sum(f.blank for f in files),
                    "files": file_list(day)}

        def quarantine_of_day(_day: dt.date, rows: pa.Table) -> dict[str, object]:
            reasons = collections.Counter(rows.column("reason").to_pylist()).most_common(10)
            return {"top_reasons": markdown_table(["reason", "lines"], reasons)}

        packets = tables.commit(context, BRONZE_PACKETS, batch.packets, per_day=packets_of_day)
        quarantine = tables.commit(context, BRONZE_QUARANTINE, batch.quarantine, per_day=quarantine_of_day)
        add_day_metadata(context, RAW_ARCHIVE_KEY, {day: {
            "files": len(files_by_day[day]),
            "newly_archived": sum(f.archive_state == "new version" for f in files_by_day[day]),
            "file_list": file_list(day),
        } for day in days})
        yield dg.MaterializeResult(asset_key=RAW_ARCHIVE_KEY,
                                   metadata={"archive": dg.MetadataValue.path(archive_store.describe(""))})
        yield packets
        yield quarantine

    return bronze
