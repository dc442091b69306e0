"""Iceberg catalog access and the one write primitive every layer uses: replace a partition.

Both deployments go through PyIceberg's ``load_catalog``: a SQL catalog on SQLite with a file
warehouse (local) or the Glue catalog with an S3 warehouse (AWS), so table code never branches.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThanOrEqual,
    Or,
)
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import (
    DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE,
    Table,
    TableProperties,
    Transaction,
    WriteTask,
)
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update.snapshot import ExpireSnapshots
from pyiceberg.transforms import IdentityTransform
from pyiceberg.utils.config import Config
from pyiceberg.utils.properties import property_as_int

from packetx_lakehouse.lib.schemas import TableDef

CATALOG_NAME = "packetx"
TABLE_PROPERTIES = {
    # Our write loop retries lost commits itself, from fresh metadata (see ``_expire_old_snapshots``).
    "commit.retry.num-retries": "0",
    # Every append adds a manifest and every scan or delete reads them all: merged on each commit,
    # day 30's reads and writes plan from one or two manifests instead of thirty.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "2",
    # Each commit writes a new metadata JSON; keep the last few and delete older ones as it
    # commits (PyIceberg honours both; the default keeps a log of 100 and deletes nothing).
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "4",
}
#: Snapshots the write path keeps per table, expired in its own commit: every commit copies the
#: metadata, snapshots included, so a day re-run every minute must not grow it. Of the budget,
#: the newest RECENT_SNAPSHOTS are the last two writes (each a delete and an append); the rest
#: are the newest snapshot of each earlier clock hour, so time travel reaches back hours, not
#: minutes, at the same metadata size. Files are deleted by maintenance (``maintenance.py``),
#: which also ages these snapshots out; the raw archive is the audit trail to replay from.
RECENT_SNAPSHOTS = 4
HOURLY_SNAPSHOTS = 6
SNAPSHOTS_KEPT = RECENT_SNAPSHOTS + HOURLY_SNAPSHOTS
_HOUR_MS = 3_600_000


def local_catalog(catalog_path: Path, warehouse_dir: Path, name: str = CATALOG_NAME) -> Catalog:
    """The embedded default: SQLite catalog with its file warehouse beside it."""
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    return load_catalog(
        name,
        type="sql",
        uri=f"sqlite:///{catalog_path.resolve()}",
        warehouse=warehouse_dir.resolve().as_uri(),
    )


def glue_catalog(
    warehouse_uri: str, region: str, endpoint_url: str = "", name: str = CATALOG_NAME
) -> Catalog:
    """Glue catalog with an S3 warehouse; credentials come from the AWS chain only.

    Table files go through PyIceberg's fsspec FileIO (s3fs on botocore), so S3 uses exactly the
    credential chain, retries and endpoint handling of every other boto3 client here. PyArrow's
    own S3 client would need the endpoint again and fails multipart uploads against moto 5.2.1
    (moto issue 10055). An emulator endpoint is passed explicitly as ``glue.endpoint`` and
    ``s3.endpoint``: neither client reads ``AWS_ENDPOINT_URL`` by itself.
    """
    props = {
        "type": "glue",
        "warehouse": warehouse_uri,
        "glue.region": region,
        "s3.region": region,
        "py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO",
    }
    if endpoint_url:
        props |= {"glue.endpoint": endpoint_url, "s3.endpoint": endpoint_url}
    return load_catalog(name, **props)


def ensure_table(catalog: Catalog, table_def: TableDef) -> Table:
    """Load the table, creating namespace and table (with its partition spec) atomically if new."""
    try:
        return _with_table_properties(catalog.load_table(table_def.identifier))
    except (NoSuchTableError, NoSuchNamespaceError):
        pass
    catalog.create_namespace_if_not_exists(table_def.namespace)
    txn = catalog.create_table_transaction(table_def.identifier, schema=table_def.schema,
                                           properties=TABLE_PROPERTIES)
    if table_def.partition_by:
        with txn.update_spec() as spec:
            for column in table_def.partition_by:
                spec.add_identity(column)
    try:
        txn.commit_transaction()
    except (TableAlreadyExistsError, CommitFailedException):
        # Another run created it between our load and commit: theirs is as good as ours.
        pass
    # The transaction returns a StagedTable (Glue), which cannot be scanned: load the real one.
    return catalog.load_table(table_def.identifier)


def _with_table_properties(table: Table) -> Table:
    """Bring a table made by an earlier version up to ``TABLE_PROPERTIES`` (one commit, once)."""
    missing = {k: v for k, v in TABLE_PROPERTIES.items() if table.properties.get(k) != v}
    if not missing:
        return table
    try:
        with table.transaction() as txn:
            txn.set_properties(missing)
    except CommitFailedException:
        pass  # a concurrent writer changed the table; the next load tries again
    return table.refresh()


def partition_filter(column: str, values: Iterable[object]) -> BooleanExpression:
    """``column == v`` for one value, ``column IN (...)`` for several (dates as ISO strings);
    ``None`` among the values stands for the null partition."""
    values = list(values)
    literals = sorted({v.isoformat() if isinstance(v, dt.date) else v for v in values if v is not None})
    if not literals and None not in values:
        raise ValueError(f"no partition values given for {column}")
    expression = (EqualTo(column, literals[0]) if len(literals) == 1 else In(column, literals)) if literals else None
    if None in values:
        return IsNull(column) if expression is None else Or(expression, IsNull(column))
    return expression


#: Told of each lost commit before it is retried: ``(attempt that lost, its error)``.
OnRetry = Callable[[int, Exception], None]


@dataclass(frozen=True)
class WriteResult:
    """What a partition replacement committed, for Dagster metadata."""

    rows: int
    snapshot_id: int | None
    location: str


def replace_partitions(
    table: Table,
    data: pa.Table,
    *,
    column: str = "log_date",
    values: Iterable[object],
    snapshot_properties: dict[str, str] | None = None,
    retries: int = 5,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Atomically replace every row whose ``column`` is in ``values`` by ``data``.

    One Iceberg commit per call, so a re-run of a day leaves exactly the same rows and readers
    never see a half-written day.

    Raises:
        ValueError: if ``data`` holds rows outside ``values`` (they would survive the next
            replacement of their own partition as duplicates).
    """
    values = list(values)
    expression = partition_filter(column, values)
    if data.num_rows:
        wanted = {v if v is None or isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values}
        present = set(data.column(column).unique().to_pylist())
        stray = present - wanted
        if stray:
            raise ValueError(f"rows for {sorted(stray)} outside the partitions being replaced")
    return _overwrite(table, data, expression, snapshot_properties, retries, on_retry)


def replace_table(
    table: Table, data: pa.Table, snapshot_properties: dict[str, str] | None = None, retries: int = 5,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Replace a whole (small, unpartitioned) table in one commit: dimensions rebuilt in full."""
    return _overwrite(table, data, AlwaysTrue(), snapshot_properties, retries, on_retry)


def _overwrite(
    table: Table,
    data: pa.Table,
    expression: BooleanExpression,
    snapshot_properties: dict[str, str] | None,
    retries: int,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Delete what ``expression`` matches and append ``data`` in one commit, retrying lost races.

    A concurrent commit to the same table (another run) makes the optimistic commit fail; we
    reload and retry, which is safe because the delete is recomputed against fresh metadata.
    ``on_retry(attempt, error)`` hears of each lost commit before its retry (attempt 1 = the first).
    """
    target = table.schema().as_arrow()
    data = data if data.schema == target else data.cast(target)
    for attempt in range(retries):
        try:
            _commit_overwrite(table, data, expression, snapshot_properties or {})
            break
        except (CommitFailedException, ValidationException, ValueError) as error:
            # Lost to a concurrent writer (or its expiry removed our starting snapshot): start
            # again from fresh metadata; replacing a partition is last-writer-wins.
            unrelated = isinstance(error, ValueError) and not _lost_to_concurrent_expiry(error)
            if attempt == retries - 1 or unrelated:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, error)
            time.sleep(0.05 * 2**attempt)
            table = table.refresh()
    snapshot = table.current_snapshot()
    return WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location())


def _lost_to_concurrent_expiry(error: ValueError) -> bool:
    """Whether our in-commit expiry named a snapshot that maintenance expired meanwhile.

    Maintenance's expiry moves no branch, so our commit's requirements still hold and PyIceberg
    applies our "remove snapshot X" to the fresh metadata, where X is gone: a lost race too.
    """
    message = str(error)
    return message.startswith("Snapshot with snapshot id") and "does not exist" in message


def _commit_overwrite(table: Table, data: pa.Table, expression: BooleanExpression, properties: dict[str, str]) -> None:
    """``Table.overwrite``: a delete and an append snapshot in one commit, same files written."""
    _check_pyarrow_schema_compatible(table.schema(), provided_schema=data.schema,
                                     format_version=table.metadata.format_version)
    with table.transaction() as txn:
        _expire_old_snapshots(txn)
        with warnings.catch_warnings():
            # The first write of a day has nothing to delete; PyIceberg warns, we expect it.
            warnings.filterwarnings("ignore", "Delete operation did not match any records")
            txn.delete(expression, snapshot_properties=properties, _isolation_operation=Operation.OVERWRITE)
        with txn.update_snapshot(snapshot_properties=properties).merge_append() as append:
            if data.num_rows:
                for data_file in _write_data_files(txn, table, data, append.commit_uuid):
                    append.append_data_file(data_file)


def _expire_old_snapshots(txn: Transaction) -> None:
    """Thin the snapshots to the budget (``SNAPSHOTS_KEPT``), in the write's own commit.

    Safe under concurrent writers because PyIceberg's own commit retry is off for our tables
    (``TABLE_PROPERTIES``): it would replay "remove snapshot X" onto metadata where another
    writer already removed X. Our retry rebuilds the whole transaction, expiry included, from
    fresh metadata. Data files are not deleted here (expiry only edits metadata).
    """
    # This commit adds up to two snapshots (delete + append) to the recent ones.
    expired = snapshots_beyond_budget(txn.table_metadata.snapshots, recent=RECENT_SNAPSHOTS - 2,
                                      hourly=HOURLY_SNAPSHOTS)
    if expired:
        ExpireSnapshots(txn).by_ids(expired).commit()


def snapshots_beyond_budget(snapshots: Iterable[Snapshot], *, recent: int, hourly: int) -> list[int]:
    """Snapshot ids outside "the newest ``recent``, plus the newest of each of ``hourly`` earlier hours".

    Hours are clock hours of the snapshot time stamps (UTC): for a day re-run every minute that
    keeps the state at the end of each of the last ``hourly`` hours; for a table written once a
    day, the state after each of its last ``hourly`` writes.
    """
    ordered = snapshots_oldest_first(snapshots)[::-1]
    kept, hours = ordered[:recent], {s.timestamp_ms // _HOUR_MS for s in ordered[:recent]}
    for snapshot in ordered[recent:]:
        if len(kept) == recent + hourly:
            break
        if snapshot.timestamp_ms // _HOUR_MS not in hours:
            hours.add(snapshot.timestamp_ms // _HOUR_MS)
            kept.append(snapshot)
    kept_ids = {s.snapshot_id for s in kept}
    return [s.snapshot_id for s in ordered if s.snapshot_id not in kept_ids]


def snapshots_oldest_first(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    """By commit time; the sequence number orders the two snapshots one overwrite commits."""
    return sorted(snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))


def _write_data_files(txn: Transaction, table: Table, data: pa.Table, write_uuid) -> Iterable[DataFile]:
    """PyIceberg's ``_dataframe_to_data_files``, minus its cost of rows x partitions.

    PyIceberg splits a partitioned input by filtering the *whole* table once per partition (a
    week of silver: 21 filtered copies of 5 M rows). Our inputs arrive grouped by partition, so
    zero-copy slices give the same files; all are still written in parallel by PyIceberg's pool.
    """
    metadata = txn.table_metadata
    spec, schema = metadata.spec(), metadata.schema()
    columns = _identity_partition_columns(table)
    if spec.is_unpartitioned() or columns is None:
        return _dataframe_to_data_files(table_metadata=metadata, df=data, io=table.io, write_uuid=write_uuid)
    target_size = property_as_int(metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                                  TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT)
    task_schema = pyarrow_to_schema(
        data.schema, name_mapping=schema.name_mapping, format_version=metadata.format_version,
        downcast_ns_timestamp_to_us=Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False,
    )
    counter = itertools.count()
    tasks = (
        WriteTask(write_uuid=write_uuid, task_id=next(counter), record_batches=batches, schema=task_schema,
                  partition_key=PartitionKey(
                      field_values=[PartitionFieldValue(field, part.column(column)[0].as_py())
                                    for field, column in zip(spec.fields, columns)],
                      partition_spec=spec, schema=schema))
        for part in partition_slices(data, columns)
        for batches in bin_pack_arrow_table(part, target_size)
    )
    return write_file(io=table.io, table_metadata=metadata, tasks=tasks)


def _identity_partition_columns(table: Table) -> list[str] | None:
    """The partition columns, or None when a transform is not identity (PyIceberg then splits)."""
    fields = table.spec().fields
    if not all(isinstance(f.transform, IdentityTransform) for f in fields):
        return None
    return [table.schema().find_column_name(f.source_id) for f in fields]


def partition_slices(data: pa.Table, columns: list[str] | None) -> list[pa.Table]:
    """``data`` cut into one zero-copy slice per distinct value of ``columns``.

    Every layer writes rows already grouped by partition (files are read day by day, transforms
    sort by their keys), so this is usually a scan for the boundaries; otherwise the rows are
    sorted by ``columns`` first.
    """
    if data.num_rows == 0:
        return []
    if not columns:
        return [data]
    starts = _run_starts(data, columns)
    if data.select(columns).take(starts).group_by(columns).aggregate([]).num_rows < len(starts):
        data = data.sort_by([(c, "ascending") for c in columns])
        starts = _run_starts(data, columns)
    bounds = [*starts.tolist(), data.num_rows]
    return [data.slice(start, end - start) for start, end in zip(bounds, bounds[1:])]


def _run_starts(data: pa.Table, columns: list[str]) -> np.ndarray:
    """Row indices where the value of any of ``columns`` differs from the row before (nulls equal)."""
    n = data.num_rows
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for name in columns:
        column = data.column(name)
        current, previous = column.slice(1), column.slice(0, n - 1)
        differs = pc.if_else(pc.and_(pc.is_null(current), pc.is_null(previous)), False,
                             pc.fill_null(pc.not_equal(current, previous), True))
        change[1:] |= differs.to_numpy(zero_copy_only=False)
    return np.flatnonzero(change)


def read_partitions(
    table: Table, *, column: str = "log_date", values: Iterable[object], extra: BooleanExpression | None = None
) -> pa.Table:
    """Scan only the requested partitions (pruned by the partition filter)."""
    values = list(values)
    expression = partition_filter(column, values)
    if extra is not None:
        expression = And(expression, extra)
    scan = table.scan(row_filter=expression)
    tasks = list(scan.plan_files())
    if any(task.residual != AlwaysTrue() or task.delete_files for task in tasks):
        return scan.to_arrow()
    # Whole partitions were asked for: every row of every planned file matches, and PyIceberg
    # would still evaluate the filter row by row (a full copy of the data).
    return ArrowScan(table.metadata, table.io, scan.projection(), AlwaysTrue()).to_table(tasks)


def read_between(table: Table, column: str, low: object, high: object, columns: tuple[str, ...]) -> pa.Table:
    """``columns`` of the rows whose ``column`` is in ``[low, high]``, whatever their partition.

    For checks that look across days (the same hour under two days); file statistics prune the scan.
    """
    expression = And(GreaterThanOrEqual(column, _literal(low)), LessThanOrEqual(column, _literal(high)))
    return table.scan(row_filter=expression, selected_fields=columns).to_arrow()


def _literal(value: object) -> object:
    """Dates and datetimes as ISO text, which PyIceberg's expressions parse for date and timestamp columns."""
    return value.isoformat() if isinstance(value, dt.date) else value
