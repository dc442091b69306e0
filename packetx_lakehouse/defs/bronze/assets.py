"""Bronze: archive each day's landing files and land every line in Iceberg, good or bad.

One multi-asset reads each file once and produces the raw archive, ``packetx_raw.packets`` and
``packetx_raw.quarantine`` together, so the three can never disagree about what was ingested.
"""


import collections
import datetime as dt

import dagster as dg

from packetx_lakehouse.defs.conventions import OWNERS, asset_key, daily_step, table_spec
from packetx_lakehouse.defs.metadata import markdown_table
from packetx_lakehouse.defs.partitions import partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource, ObjectStoreResource
from packetx_lakehouse.defs.tables import RunTables, redo_when_stale
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


def bronze_assets(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
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

    @dg.multi_asset(name="bronze", specs=[archive_spec, *table_specs], **daily_step(partitions))
    @redo_when_stale
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
        files_md = markdown_table(
            ["file", "lines", "rows", "quarantined", "sha256", "archive"],
            [(f.source_file, f"{f.lines:,}", f"{f.rows:,}", f"{f.quarantined:,}", f.sha256, f.archive_state)
             for f in batch.files],
        )
        counts = batch.counts
        packets = tables.commit(context, BRONZE_PACKETS, batch.packets, generations=batch.generations,
                                lines_read=counts.get("lines", 0),
                                quarantined=counts.get("quarantined", 0), headers=counts.get("headers", 0),
                                blank_lines=counts.get("blank", 0), files=files_md)
        reasons = collections.Counter(batch.quarantine.column("reason").to_pylist()).most_common(10)
        quarantine = tables.commit(context, BRONZE_QUARANTINE, batch.quarantine, generations=batch.generations,
                                   top_reasons=markdown_table(["reason", "lines"], reasons))
        yield dg.MaterializeResult(
            asset_key=RAW_ARCHIVE_KEY,
            metadata={
                "files": len(batch.files),
                "newly_archived": batch.newly_archived,
                "archive": dg.MetadataValue.path(archive_store.describe("")),
                "file_list": files_md,
            },
        )
        yield packets
        yield quarantine

    return bronze
