"""Iceberg catalog access and the one write primitive every layer uses: replace a partition.

Both deployments go through PyIceberg's ``load_catalog``: a SQL catalog on SQLite with a file
warehouse (local) or the Glue catalog with an S3 warehouse (AWS), so table code never branches.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In
from pyiceberg.table import Table

from packetx_lakehouse.lib.schemas import TableDef

CATALOG_NAME = "packetx"


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
    catalog.create_namespace_if_not_exists(table_def.namespace)
    try:
        return catalog.load_table(table_def.identifier)
    except NoSuchTableError:
        pass
    txn = catalog.create_table_transaction(table_def.identifier, schema=table_def.schema)
    if table_def.partition_by:
        with txn.update_spec() as spec:
            for column in table_def.partition_by:
                spec.add_identity(column)
    try:
        txn.commit_transaction()
    except Exception:
        # Another run created it between our load and commit: theirs is as good as ours.
        pass
    # The transaction returns a StagedTable (Glue), which cannot be scanned: load the real one.
    return catalog.load_table(table_def.identifier)


def partition_filter(column: str, values: Iterable[object]) -> BooleanExpression:
    """``column == v`` for one value, ``column IN (...)`` for several (dates as ISO strings)."""
    literals = sorted({v.isoformat() if isinstance(v, dt.date) else v for v in values})
    if not literals:
        raise ValueError(f"no partition values given for {column}")
    return EqualTo(column, literals[0]) if len(literals) == 1 else In(column, literals)


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
        wanted = {v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values}
        present = set(data.column(column).unique().to_pylist())
        stray = present - wanted
        if stray:
            raise ValueError(f"rows for {sorted(stray)} outside the partitions being replaced")
    return _overwrite(table, data, expression, snapshot_properties, retries)


def replace_table(
    table: Table, data: pa.Table, snapshot_properties: dict[str, str] | None = None, retries: int = 5
) -> WriteResult:
    """Replace a whole (small, unpartitioned) table in one commit: dimensions rebuilt in full."""
    return _overwrite(table, data, AlwaysTrue(), snapshot_properties, retries)


def _overwrite(
    table: Table,
    data: pa.Table,
    expression: BooleanExpression,
    snapshot_properties: dict[str, str] | None,
    retries: int,
) -> WriteResult:
    """Delete what ``expression`` matches and append ``data`` in one commit, retrying lost races.

    A concurrent commit to the same table (another run) makes the optimistic commit fail; we
    reload and retry, which is safe because the delete is recomputed against fresh metadata.
    """
    target = table.schema().as_arrow()
    data = data if data.schema == target else data.cast(target)
    for attempt in range(retries):
        try:
            with warnings.catch_warnings():
                # The first write of a day has nothing to delete; PyIceberg warns, we expect it.
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                table.overwrite(data, overwrite_filter=expression, snapshot_properties=snapshot_properties or {})
            break
        except CommitFailedException:
            if attempt == retries - 1:
                raise
            time.sleep(0.05 * 2**attempt)
            table = table.refresh()
    snapshot = table.current_snapshot()
    return WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location())


def read_partitions(
    table: Table, *, column: str = "log_date", values: Iterable[object], extra: BooleanExpression | None = None
) -> pa.Table:
    """Scan only the requested partitions (pruned by the partition filter)."""
    expression = partition_filter(column, values)
    if extra is not None:
        expression = And(expression, extra)
    return table.scan(row_filter=expression).to_arrow()
