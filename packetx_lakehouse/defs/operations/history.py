"""The history of each day's gold totals, recorded after the fact from Iceberg and the raw archive.

Nothing is added to the pipeline's runs: each evaluation compares ``daily_user_bandwidth`` now with
the state it recorded last (named in its own commit's summary). The days to look at are those
with a data file added since (manifest entries carry the sequence number of the commit that added
them, which survives the snapshot's expiry); when and by which run each was written comes from
Dagster's own record of the day's materialisations, the files from the raw archive's manifest
history. A day refreshed every minute between two evaluations is one change (its growth), not 1,440.
"""

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from packetx_lakehouse.defs.conventions import ICEBERG_POOL, asset_key, table_spec
from packetx_lakehouse.defs.metadata import iceberg_metadata, table_metadata
from packetx_lakehouse.defs.resources import IcebergCatalogResource, ObjectStoreResource
from packetx_lakehouse.defs.tables import log_lost_commits
from packetx_lakehouse.lib.ingest.archive import manifest_at
from packetx_lakehouse.lib.schemas import DAILY_TOTAL_CHANGES, GOLD_DAILY_USER_BANDWIDTH
from packetx_lakehouse.lib.storage.iceberg import (
    WriteResult,
    ensure_table,
    read_partitions,
    replace_partitions,
    source_generations,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectStore
from packetx_lakehouse.lib.transform.total_changes import (
    FIRST_RECORDED,
    Commit,
    Describe,
    SourceChange,
    file_changes,
    first_files,
    record_changes,
)

DAILY_KEY = asset_key(GOLD_DAILY_USER_BANDWIDTH)
#: Snapshot-summary properties of each history commit: the gold state it recorded up to.
RECORDED_SNAPSHOT, RECORDED_SEQUENCE = "packetx.recorded-snapshot", "packetx.recorded-sequence-number"


def _recorded(history: Table) -> tuple[int, int] | None:
    """The gold snapshot id and sequence number the history was last recorded from."""
    snapshot = history.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    if summary is None or summary.get(RECORDED_SNAPSHOT) is None:
        return None
    return int(summary[RECORDED_SNAPSHOT]), int(summary[RECORDED_SEQUENCE])


def _day_files(table: Table, snapshot_id: int) -> dict[dt.date, tuple[int, int]]:
    """Each day's newest live data file at ``snapshot_id``: (sequence number, snapshot id of the commit
    that added it). Read from the manifests only."""
    entries = table.inspect.entries(snapshot_id=snapshot_id)
    entries = entries.filter(pc.not_equal(entries.column("status"), 2))  # 2: deleted by this snapshot
    found: dict[dt.date, tuple[int, int]] = {}
    for data_file, sequence, snapshot in zip(entries.column("data_file").to_pylist(),
                                             entries.column("sequence_number").to_pylist(),
                                             entries.column("snapshot_id").to_pylist()):
        day = data_file["partition"]["log_date"]
        found[day] = max(found.get(day, (0, 0)), (sequence, snapshot))
    return found


def _commit(instance: dg.DagsterInstance, table: Table, day: dt.date, snapshot_id: int) -> Commit:
    """When, and by which run, ``snapshot_id`` wrote ``day``: Dagster's record of the day's materialisation
    (kept whatever Iceberg expired); else the snapshot itself while it is kept; else the table's newest."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DAILY_KEY, asset_partitions=[day.isoformat()]), limit=1).records
    if records:
        materialization = records[0].asset_materialization
        written = materialization.metadata.get("iceberg/snapshot_id") if materialization else None
        if written is not None and written.value == str(snapshot_id):
            return Commit(dt.datetime.fromtimestamp(records[0].timestamp, dt.UTC), snapshot_id, records[0].run_id)
    snapshot = table.snapshot_by_id(snapshot_id) or table.current_snapshot()
    run = snapshot.summary.get("dagster.run_id") if snapshot.summary and snapshot.snapshot_id == snapshot_id else None
    return Commit(dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC), snapshot_id, run)


def _describer(archive: ObjectStore) -> Describe:
    """Each changed file of a day between two generations, from the archive's manifest history."""

    def describe(day: dt.date, before: int | None, after: int) -> dict[str, SourceChange] | None:
        now = manifest_at(archive, day, after)
        if now is None:
            return None
        if before is None:
            return first_files(now)
        then = manifest_at(archive, day, before)
        return None if then is None else file_changes(then, now)

    return describe


#: Changes named one by one in a run's log; the rest are counted (all are in the table).
MAX_LOGGED_CHANGES = 20


def total_changes_assets(*, retry_policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    spec = table_spec(DAILY_TOTAL_CHANGES, group="operations", deps=[asset_key(GOLD_DAILY_USER_BANDWIDTH)],
                      automation_condition=None)

    @dg.multi_asset(name="daily_total_changes", specs=[spec], pool=ICEBERG_POOL, retry_policy=retry_policy)
    def daily_total_changes(
        context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, raw_archive: ObjectStoreResource
    ) -> dg.MaterializeResult:
        catalog = iceberg.load()
        gold = ensure_table(catalog, GOLD_DAILY_USER_BANDWIDTH)
        new, written = _record(context, gold, ensure_table(catalog, DAILY_TOTAL_CHANGES), raw_archive.store())
        # A first record lists every user-day; what is worth a line is what changed after.
        later = [row for row in new.to_pylist() if row["kind"] != FIRST_RECORDED]
        for row in later[:MAX_LOGGED_CHANGES]:
            context.log.info(f"{row['log_date']} {row['user']}: {row['kind']}, {row['delta_kb']:+,.3f} KB "
                             f"({row['files']})")
        if len(later) > MAX_LOGGED_CHANGES:
            context.log.info(f"... and {len(later) - MAX_LOGGED_CHANGES:,} more changes in "
                             f"{DAILY_TOTAL_CHANGES.identifier}")
        current = gold.current_snapshot()
        return dg.MaterializeResult(metadata={
            **table_metadata(new), "rows_added": new.num_rows, **iceberg_metadata(DAILY_TOTAL_CHANGES.identifier, written),
            "recorded_up_to": str(current.snapshot_id if current else None),
            "days_changed": len(set(new.column("log_date").to_pylist())),
        })

    return daily_total_changes


def _record(
    context: dg.AssetExecutionContext, gold: Table, history: Table, archive: ObjectStore
) -> tuple[pa.Table, WriteResult]:
    """Record what changed in ``gold`` since the last record: the rows added (or grown by a merge), and the
    history's state after."""
    snapshot = history.current_snapshot()
    nothing = (DAILY_TOTAL_CHANGES.schema.empty_table(),
               WriteResult(0, snapshot.snapshot_id if snapshot else None, history.location()))
    current, recorded = gold.current_snapshot(), _recorded(history)
    if current is None or (recorded is not None and recorded[0] == current.snapshot_id):
        return nothing
    now = _day_files(gold, current.snapshot_id)
    touched = set(now) if recorded is None else {day for day, (seq, _) in now.items() if seq > recorded[1]}
    if recorded is not None:
        # Days whose every row went (all their files retracted): recorded with traffic, gone now.
        rows = history.scan(selected_fields=("log_date", "user", "changed_at", "kb_after")).to_arrow()
        latest = {(r["log_date"], r["user"]): r["kb_after"] for r in rows.sort_by("changed_at").to_pylist()}
        touched |= {day for (day, _), kb in latest.items() if kb} - set(now)
    if not touched:
        return nothing
    days = sorted(touched)
    commits = {day: _commit(context.instance, gold, day, now.get(day, (0, current.snapshot_id))[1]) for day in days}
    old = read_partitions(history, values=days)
    rows = record_changes(old, read_partitions(gold, values=days), touched=days, commits=commits,
                          generations=source_generations(gold, days), describe=_describer(archive),
                          first=recorded is None)
    written = replace_partitions(history, rows, values=days,
                                 snapshot_properties={"dagster.run_id": context.run.run_id,
                                                      RECORDED_SNAPSHOT: str(current.snapshot_id),
                                                      RECORDED_SEQUENCE: str(current.sequence_number)},
                                 on_retry=log_lost_commits(context, DAILY_TOTAL_CHANGES))
    return _new_rows(old, rows), written


def _new_rows(old: pa.Table, rows: pa.Table) -> pa.Table:
    """The rows of ``rows`` that ``old`` did not hold as they are (new, or grown by a merge)."""
    columns = ["log_date", "user", "changed_at", "updates"]
    seen = {tuple(r.values()) for r in old.select(columns).to_pylist()}
    keep = [tuple(r.values()) not in seen for r in rows.select(columns).to_pylist()]
    return rows.filter(pa.array(keep, pa.bool_()))
