"""Every PyIceberg name outside its documented API that the lakehouse relies on, in one place.

PyIceberg 0.12 has no public API for what the write path needs: one overwrite snapshot that
drops whole files and merges manifests, an expiry staged inside a write's own commit, data files
written from zero-copy partition slices, a scan planned on a transaction's staged metadata. Nor
can its FileIO list a table's location, which storage maintenance needs. Each such use is one
small function or class here, with the narrowest interface the callers need, so that the rest
of the code only sees this module's names.

``packetx_lakehouse_tests/lib/storage/test_pyiceberg_internals.py`` pins every name, signature,
attribute and behaviour used here, and checks that no other product module reaches past
PyIceberg's public API: an upgrade then fails there, naming what moved, instead of a write
failing at run time. When it fails, re-check each use below against the new version.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
import warnings
from collections.abc import Iterable, Iterator
from urllib.parse import urlparse

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    PyArrowFileIO,
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import (
    DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE,
    FileScanTask,
    Table,
    TableProperties,
    Transaction,
    WriteTask,
)
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation, Snapshot
from pyiceberg.table.update.snapshot import ExpireSnapshots, _MergeAppendFiles, _OverwriteFiles
from pyiceberg.utils.config import Config
from pyiceberg.utils.properties import property_as_bool, property_as_int

#: The version every use below was checked against (the contract test compares it).
CHECKED_VERSION = "0.12.0"


def check_schema_compatible(table_metadata: TableMetadata, schema: pa.Schema) -> None:
    """Raise ``ValueError`` if Arrow data of ``schema`` cannot be written to the table as it is."""
    _check_pyarrow_schema_compatible(table_metadata.schema(), provided_schema=schema,
                                     format_version=table_metadata.format_version)


class MetadataReusingTransaction(Transaction):
    """``Table.transaction()``, minus a deep copy of the whole table metadata on every read of it.

    PyIceberg's ``Transaction.table_metadata`` applies the staged updates to a deep copy of the
    metadata (every snapshot, every property) each time it is read, and one commit reads it
    dozens of times: measured, a third of a commit's CPU time. The metadata is immutable (frozen
    models), so the copy is reused until an update is staged or the table's metadata changes.
    """

    _reused: tuple[object, tuple, object] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        if self._reused is None or self._reused[0] is not base or self._reused[1] is not updates:
            self._reused = (base, updates, super().table_metadata)
        return self._reused[2]


def plan_files(txn: Transaction, expression: BooleanExpression) -> list[FileScanTask]:
    """The scan tasks of ``expression`` on the transaction's staged metadata (not the table's)."""
    return list(txn._scan(row_filter=expression).plan_files())


class MergingOverwrite(_OverwriteFiles):
    """PyIceberg's overwrite (drop files, add files: one snapshot), merging manifests as a merge-append does.

    ``Table.overwrite`` makes two snapshots (a delete, then an append), and its plain overwrite
    never merges manifests, so a table written day after day would plan from one manifest per
    day (``commit.manifest-merge.enabled``). Use it as a context manager: ``delete_data_file``,
    ``append_data_file``, and the snapshot is staged on exit.
    """

    _process_manifests = _MergeAppendFiles._process_manifests

    def __init__(self, txn: Transaction, snapshot_properties: dict[str, str]) -> None:
        super().__init__(operation=Operation.OVERWRITE if txn.table_metadata.current_snapshot() else Operation.APPEND,
                         transaction=txn, io=txn._table.io, snapshot_properties=snapshot_properties)
        props = txn.table_metadata.properties
        self._target_size_bytes = property_as_int(props, TableProperties.MANIFEST_TARGET_SIZE_BYTES,
                                                  TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT)
        self._min_count_to_merge = property_as_int(props, TableProperties.MANIFEST_MIN_MERGE_COUNT,
                                                   TableProperties.MANIFEST_MIN_MERGE_COUNT_DEFAULT)
        self._merge_enabled = property_as_bool(props, TableProperties.MANIFEST_MERGE_ENABLED,
                                               TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT)


def delete_as_overwrite(txn: Transaction, expression: BooleanExpression, snapshot_properties: dict[str, str]) -> None:
    """Stage ``Transaction.delete`` (copy-on-write for partly matched files) checked as an OVERWRITE.

    The isolation operation makes PyIceberg validate the delete like the overwrite it is part of.
    The first write of a partition has nothing to delete; PyIceberg warns, we expect it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Delete operation did not match any records")
        txn.delete(expression, snapshot_properties=snapshot_properties, _isolation_operation=Operation.OVERWRITE)


def stage_expiry(txn: Transaction, snapshot_ids: list[int]) -> None:
    """Expire ``snapshot_ids`` in the transaction's own commit (``Table.maintenance`` commits alone)."""
    ExpireSnapshots(txn).by_ids(snapshot_ids).commit()


def lost_to_concurrent_expiry(error: ValueError) -> bool:
    """Whether a commit's staged expiry named a snapshot that another writer expired meanwhile.

    That writer's expiry moves no branch, so our commit's requirements still hold and PyIceberg
    applies our "remove snapshot X" to the fresh metadata, where X is gone: a lost race, told
    only by the message of the ``ValueError`` it raises.
    """
    message = str(error)
    return message.startswith("Snapshot with snapshot id") and "does not exist" in message


def write_data_files(
    txn: Transaction, table: Table, parts: Iterable[pa.Table], partition_columns: list[str] | None, write_uuid: uuid.UUID,
    *, min_target_size: int = 0,
) -> Iterable[DataFile]:
    """Write ``parts`` (each holding one partition's rows) as data files of the transaction's table.

    PyIceberg's own ``_dataframe_to_data_files`` splits a partitioned input by filtering the
    *whole* table once per partition (a week of silver: 21 filtered copies of 5 M rows); our
    callers pass rows already cut into zero-copy partition slices. ``partition_columns`` None
    (a non-identity spec or an unpartitioned table) hands the rows to PyIceberg whole.
    """
    metadata = txn.table_metadata
    spec, schema = metadata.spec(), metadata.schema()
    parts = list(parts)
    if spec.is_unpartitioned() or partition_columns is None:
        data = pa.concat_tables(parts) if parts else None
        return [] if data is None else _dataframe_to_data_files(table_metadata=metadata, df=data, io=table.io,
                                                                 write_uuid=write_uuid)
    target_size = max(min_target_size, property_as_int(metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                                                       TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT) or 0)
    counter = itertools.count()

    def tasks() -> Iterator[WriteTask]:
        for part in parts:
            task_schema = pyarrow_to_schema(
                part.schema, name_mapping=schema.name_mapping, format_version=metadata.format_version,
                downcast_ns_timestamp_to_us=Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False,
            )
            key = PartitionKey(field_values=[PartitionFieldValue(field, part.column(column)[0].as_py())
                                             for field, column in zip(spec.fields, partition_columns)],
                               partition_spec=spec, schema=schema)
            for batches in bin_pack_arrow_table(part, target_size):
                yield WriteTask(write_uuid=write_uuid, task_id=next(counter), record_batches=batches,
                                schema=task_schema, partition_key=key)

    return write_file(io=table.io, table_metadata=metadata, tasks=tasks())


def read_tasks(table: Table, tasks: list[FileScanTask], projection: Schema | None = None) -> pa.Table:
    """Every row of the planned ``tasks`` (no row filter applied again), as Arrow.

    ``DataScan.to_arrow`` evaluates the scan's filter on every row even when the planned files
    match it whole (a full copy of the data); callers that know they do, read the tasks directly.
    """
    return ArrowScan(table.metadata, table.io, projection or table.schema(), AlwaysTrue()).to_table(tasks)


def read_metadata_file(io: FileIO, location: str) -> TableMetadata:
    """A table metadata JSON (a logged earlier version, say) read through the table's FileIO."""
    return FromInputFile.table_metadata(io.new_input(location))


def list_location(io: FileIO, location: str) -> Iterator[tuple[str, int, dt.datetime]]:
    """``(uri, size, modified)`` of every file under ``location``, through the FileIO's filesystem.

    FileIO has no listing, so the filesystem behind it is asked directly: PyArrow's for the
    default local FileIO, fsspec's (s3fs) for the S3 warehouse. URIs come back without a
    ``file://`` scheme for local files.
    """
    if isinstance(io, PyArrowFileIO):
        import pyarrow.fs as pafs

        scheme, netloc, path = io.parse_location(location, io.properties)
        filesystem = io.fs_by_scheme(scheme, netloc)
        for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                yield (f"{scheme}://{info.path}" if scheme != "file" else info.path, info.size,
                       info.mtime.astimezone(dt.UTC))
        return
    scheme = urlparse(location).scheme or "file"
    filesystem = io.get_fs(scheme)  # FsspecFileIO
    filesystem.invalidate_cache(location)  # s3fs caches listings per instance
    for path, info in filesystem.find(location, detail=True).items():
        if info.get("type") == "file":
            yield (path if "://" in path else f"{scheme}://{path}" if scheme != "file" else path,
                   int(info["size"]), _modified(info))


def _modified(info: dict) -> dt.datetime:
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(float(value), dt.UTC)

