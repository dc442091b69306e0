"""The ``lakehouse_maintenance`` job and its hourly schedule.

Every Iceberg table: expire snapshots past their retention, delete the files nothing references
any more (older than the safety window); the raw archive: delete versions past their retention.
Each run records, on every table's asset page and on the raw archive's, what it removed and what
is left (an observation, so the numbers plot over time), and the run's own output lists it all.

The job is safe next to running writes without any Dagster machinery (see
``lib/storage/maintenance.py``); it still takes a slot of the Iceberg writers' pool, so that on
the local SQLite catalog it never competes with a write for the catalog's lock.
"""

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table

from packetx_lakehouse.defs.conventions import ICEBERG_POOL, RAW_ARCHIVE_KEY, asset_key
from packetx_lakehouse.defs.metadata import markdown_table
from packetx_lakehouse.defs.resources import (
    IcebergCatalogResource,
    MaintenanceResource,
    ObjectStoreResource,
    archive_store,
    maintenance_resource,
    open_catalog,
)
from packetx_lakehouse.lib.ingest.retention import (
    ArchiveRetention,
    RetentionReport,
    apply_archive_retention,
    bronze_generation_from,
)
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, GOLD_HOURLY_TABLES, TABLES_BY_LAYER, TableDef
from packetx_lakehouse.lib.storage.compaction import Compaction, compact_table
from packetx_lakehouse.lib.storage.maintenance import (
    MaintenancePolicy,
    TableMaintenance,
    TableStorage,
    maintain_table,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectStore
from packetx_lakehouse.settings import Settings

MAINTENANCE_JOB = "lakehouse_maintenance"
#: Hourly, away from the daily schedule's 00:15: dead files of a day re-run every minute are
#: gone about an hour after they pass the safety window.
MAINTENANCE_CRON = "40 * * * *"


@dataclass(frozen=True)
class TableOutcome:
    table: TableDef
    maintenance: TableMaintenance
    compaction: Compaction = Compaction()

    @property
    def storage(self) -> TableStorage:
        return self.maintenance.after


@dataclass(frozen=True)
class MaintenanceRun:
    """What one pass did to every table and to the archive."""

    tables: list[TableOutcome]
    archive: RetentionReport
    #: Table identifier (or ``raw_archive``) -> the error that stopped its maintenance.
    errors: dict[str, str] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        return {
            "files_compacted": sum(t.compaction.files_before for t in self.tables),
            "snapshots_expired": sum(t.maintenance.snapshots_expired for t in self.tables),
            "files_deleted": sum(t.maintenance.total_files_deleted for t in self.tables),
            "bytes_deleted": sum(t.maintenance.total_bytes_deleted for t in self.tables),
            "young_unreferenced": sum(t.maintenance.young_unreferenced for t in self.tables),
            "files": sum(t.storage.files for t in self.tables),
            "bytes": sum(t.storage.bytes for t in self.tables),
            "live_bytes": sum(t.storage.live_bytes for t in self.tables),
            "archive_versions_deleted": self.archive.versions_deleted,
            "archive_bytes_deleted": self.archive.bytes_deleted,
        }


def maintain(catalog: Catalog, archive: ObjectStore, *, now: dt.datetime, policy: MaintenancePolicy,
             retention: ArchiveRetention) -> MaintenanceRun:
    """One pass over every lakehouse table and the raw archive; an error in one does not stop the rest."""
    outcomes: list[TableOutcome] = []
    errors: dict[str, str] = {}
    for table_def in (t for layer in TABLES_BY_LAYER.values() for t in layer):
        try:
            table = catalog.load_table(table_def.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            continue  # not written yet
        try:
            compaction = _compact(table, table_def, now)
            outcomes.append(TableOutcome(table_def, maintain_table(table.refresh(), now=now, policy=policy), compaction))
        except Exception as error:  # noqa: BLE001 - reported per table, the job fails at the end
            errors[table_def.identifier] = f"{type(error).__name__}: {error}"
    try:
        bronze = catalog.load_table(BRONZE_PACKETS.identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        bronze = None
    try:
        report = apply_archive_retention(archive, now=now, retention=retention,
                                         bronze_generation=bronze_generation_from(bronze))
    except Exception as error:  # noqa: BLE001
        errors["raw_archive"] = f"{type(error).__name__}: {error}"
        report = RetentionReport()
    return MaintenanceRun(outcomes, report, errors)


def run_maintenance(settings: Settings, *, now: dt.datetime | None = None) -> MaintenanceRun:
    """The job's work outside Dagster, on the resources ``settings`` describe (benchmarks, a shell)."""
    maintenance = maintenance_resource(settings)
    return maintain(open_catalog(settings), archive_store(settings),
                    now=now or dt.datetime.now(dt.UTC), policy=maintenance.policy(),
                    retention=maintenance.archive_retention())


#: Days before yesterday (UTC) are closed: every device's local day has ended.
OPEN_DAYS = 2


def _compact(table: Table, table_def: TableDef, now: dt.datetime) -> Compaction:
    """The table's small files merged (closed days into few files; see ``lib/storage/compaction.py``)."""
    if "log_date" not in table_def.partition_by:
        return Compaction()
    hourly = table_def in GOLD_HOURLY_TABLES
    return compact_table(table, now=now, closed_before=now.astimezone(dt.UTC).date() - dt.timedelta(days=OPEN_DAYS - 1),
                         hour_column="hour_utc" if hourly else None,
                         sort_by=("hour_utc", *table_def.key) if hourly else table_def.key)


def _table_metadata(outcome: TableOutcome) -> dict[str, object]:
    done, storage = outcome.maintenance, outcome.storage
    return {
        "partitions_compacted": outcome.compaction.partitions,
        "files_compacted": outcome.compaction.files_before,
        "files_after_compaction": outcome.compaction.files_after,
        "max_data_files_per_partition": storage.max_data_files_per_partition,
        "snapshots_expired": done.snapshots_expired,
        "snapshots_kept": done.snapshots_kept,
        "files_deleted": done.total_files_deleted,
        "bytes_deleted": done.total_bytes_deleted,
        "data_files_deleted": done.files_deleted.get("data", 0),
        "metadata_files_deleted": done.total_files_deleted - done.files_deleted.get("data", 0),
        "unreferenced_within_safety_window": done.young_unreferenced,
        "files": storage.files,
        "bytes": storage.bytes,
        "live_bytes": storage.live_bytes,
        "metadata_files": storage.metadata_files,
        "storage_over_live": round(storage.bytes / storage.live_bytes, 3) if storage.live_bytes else 0.0,
    }


def maintenance_job() -> dg.JobDefinition:
    @dg.op(pool=ICEBERG_POOL, out=dg.Out(dg.Nothing))
    def maintain_lakehouse(
        context: dg.OpExecutionContext,
        iceberg: IcebergCatalogResource,
        raw_archive: ObjectStoreResource,
        maintenance: MaintenanceResource,
    ):
        """Compact small files, expire old snapshots, delete dead table files, apply raw-archive retention."""
        run = maintain(iceberg.load(), raw_archive.store(), now=dt.datetime.now(dt.UTC),
                       policy=maintenance.policy(), retention=maintenance.archive_retention())
        for outcome in run.tables:
            context.log_event(dg.AssetObservation(asset_key=asset_key(outcome.table),
                                                  metadata=_table_metadata(outcome)))
        archive = run.archive
        context.log_event(dg.AssetObservation(asset_key=RAW_ARCHIVE_KEY, metadata={
            "versions_deleted": archive.versions_deleted,
            "manifest_generations_deleted": archive.history_deleted,
            "bytes_deleted": archive.bytes_deleted,
            "versions_kept": archive.versions_kept,
            "held_for_bronze": dg.MetadataValue.json(archive.held_for_bronze),
        }))
        for failure in (f for t in run.tables for f in t.maintenance.failures.items()):
            context.log.warning(f"could not delete {failure[0]}: {failure[1]} (the next run tries again)")
        rows = [(t.table.identifier, t.maintenance.snapshots_expired, t.maintenance.total_files_deleted,
                 f"{t.maintenance.total_bytes_deleted:,}", t.storage.files, f"{t.storage.bytes:,}",
                 f"{t.storage.live_bytes:,}") for t in run.tables]
        yield dg.Output(None, metadata={
            **run.totals(),
            "tables": markdown_table(["table", "snapshots expired", "files deleted", "bytes deleted", "files",
                                      "bytes", "live bytes"], rows),
            "errors": dg.MetadataValue.json(run.errors),
        })
        if run.errors:
            raise dg.Failure(f"maintenance failed for {', '.join(sorted(run.errors))}",
                             metadata={"errors": dg.MetadataValue.json(run.errors)})

    @dg.job(name=MAINTENANCE_JOB, description="Hourly: compact the small files of refreshed days, expire old "
            "Iceberg snapshots, delete unreferenced table files and old raw-archive parts (docs/operations.md).")
    def lakehouse_maintenance():
        maintain_lakehouse()

    return lakehouse_maintenance


def maintenance_schedule(job: dg.JobDefinition, timezone: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name=f"{MAINTENANCE_JOB}_schedule", job=job, cron_schedule=MAINTENANCE_CRON,
                                 execution_timezone=timezone, default_status=dg.DefaultScheduleStatus.RUNNING)
