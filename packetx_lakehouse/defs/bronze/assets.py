"""Bronze: archive each day's landing files and land every line in Iceberg, good or bad.

One multi-asset reads each file once and produces the raw archive, ``packetx_raw.packets`` and
``packetx_raw.quarantine`` together, so the three can never disagree about what was ingested.
"""


import collections
import datetime as dt

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.defs.conventions import BACKFILL_POLICY, OWNERS, asset_key
from packetx_lakehouse.defs.metadata import iceberg_metadata, markdown_table
from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS, partition_dates
from packetx_lakehouse.defs.resources import IcebergCatalogResource, ObjectStoreResource
from packetx_lakehouse.lib.archive import DaySources, collect_day, group_landing_by_day
from packetx_lakehouse.lib.iceberg import ensure_table, replace_partitions
from packetx_lakehouse.lib.reader import read_traffic_log_bytes
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, BRONZE_QUARANTINE

RAW_ARCHIVE_KEY = dg.AssetKey([BRONZE_PACKETS.namespace, "raw_archive"])
BRONZE_PACKETS_KEY = asset_key(BRONZE_PACKETS)
BRONZE_QUARANTINE_KEY = asset_key(BRONZE_QUARANTINE)

_COMMON = dict(group_name="bronze", owners=OWNERS)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RAW_ARCHIVE_KEY,
            description="Immutable gzip copy of every ingested traffic-log version, content-addressed by "
            "SHA-256, with a per-day manifest: the audit trail bronze is rebuilt from.",
            kinds={"s3", "gzip"},
            **_COMMON,
        ),
        dg.AssetSpec(
            BRONZE_PACKETS_KEY,
            description="Every parseable PacketX row as the producer wrote it, plus lineage "
            "(source file, line number, ingest time). Partitioned by log_date.",
            kinds={"iceberg", "pyarrow"},
            deps=[RAW_ARCHIVE_KEY],
            **_COMMON,
        ),
        dg.AssetSpec(
            BRONZE_QUARANTINE_KEY,
            description="Every line that could not be parsed, with file, line number, raw text and reason.",
            kinds={"iceberg", "pyarrow"},
            deps=[RAW_ARCHIVE_KEY],
            **_COMMON,
        ),
    ],
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BACKFILL_POLICY,
    pool="iceberg_writes",
)
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
    now = dt.datetime.now(dt.UTC)

    good: list[pa.Table] = []
    bad: list[pa.Table] = []
    file_rows: list[tuple[object, ...]] = []
    newly_archived = 0
    counts: collections.Counter[str] = collections.Counter()
    for day in days:
        sources = collect_day(landing_store, archive_store, day, by_day.get(day, []), now=now)
        newly_archived += len(sources.newly_archived)
        if not sources.files:
            context.log.warning(f"No traffic-log files for {day} in {landing_store.describe('')} or the archive")
        for archived, text in sources.files:
            result = read_traffic_log_bytes(
                text,
                source_file=archived.source_file,
                log_date=day,
                ingested_at=dt.datetime.fromisoformat(archived.archived_at),
            )
            good.append(result.rows)
            bad.append(result.quarantine)
            counts.update(lines=result.lines_read, quarantined=result.quarantined,
                          headers=result.headers, blank=result.blank)
            file_rows.append((archived.source_file, f"{result.lines_read:,}", f"{result.good:,}",
                              f"{result.quarantined:,}", archived.sha256, _archive_state(archived.source_file, sources)))
            context.log.info(f"{archived.source_file}: {result.good:,} rows, {result.quarantined:,} quarantined")

    packets = pa.concat_tables(good) if good else BRONZE_PACKETS.schema.empty_table()
    quarantine = pa.concat_tables(bad) if bad else BRONZE_QUARANTINE.schema.empty_table()
    catalog = iceberg.load()
    snapshot_props = {"dagster.run_id": context.run.run_id, "packetx.partitions": f"{days[0]}..{days[-1]}"}
    packets_written = replace_partitions(ensure_table(catalog, BRONZE_PACKETS), packets, values=days,
                                         snapshot_properties=snapshot_props)
    quarantine_written = replace_partitions(ensure_table(catalog, BRONZE_QUARANTINE), quarantine, values=days,
                                            snapshot_properties=snapshot_props)

    files_md = markdown_table(["file", "lines", "rows", "quarantined", "sha256", "archive"], file_rows)
    yield dg.MaterializeResult(
        asset_key=RAW_ARCHIVE_KEY,
        metadata={
            "files": len(file_rows),
            "newly_archived": newly_archived,
            "archive": dg.MetadataValue.path(archive_store.describe("")),
            "file_list": files_md,
        },
    )
    yield dg.MaterializeResult(
        asset_key=BRONZE_PACKETS_KEY,
        metadata={
            **iceberg_metadata(BRONZE_PACKETS.identifier, packets_written, packets),
            "lines_read": counts["lines"],
            "quarantined": counts["quarantined"],
            "headers": counts["headers"],
            "blank_lines": counts["blank"],
            "files": files_md,
        },
    )
    reasons = collections.Counter(quarantine.column("reason").to_pylist()).most_common(10)
    yield dg.MaterializeResult(
        asset_key=BRONZE_QUARANTINE_KEY,
        metadata={
            **iceberg_metadata(BRONZE_QUARANTINE.identifier, quarantine_written, quarantine),
            "top_reasons": markdown_table(["reason", "lines"], reasons),
        },
    )


def _archive_state(source_file: str, sources: DaySources) -> str:
    """How this run got the file: a new version, unchanged, or only from the archive."""
    if source_file in sources.newly_archived:
        return "new version"
    if source_file in sources.from_archive_only:
        return "from archive (gone from landing)"
    return "unchanged"
