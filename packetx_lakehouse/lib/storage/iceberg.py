"""Iceberg catalog access and the one write primitive every layer uses: replace a partition.

Every deployment goes through PyIceberg's ``load_catalog``: a SQL catalog on SQLite with a file
warehouse (local), the same SQL catalog on PostgreSQL with a shared warehouse (several hosts, no
cloud), or the Glue catalog with an S3 warehouse (AWS), so table code never branches.

Writes are guarded by source versions: each table records, per day, the generation of the raw
archive's day manifest (``lib/ingest/archive.py``) its content was built from, in the same commit
as the data. A commit built from an older generation than the table already holds is refused
(:class:`StaleSourceError`), so a run that stalled can never replace newer data with older.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.transforms import IdentityTransform
from sqlalchemy.exc import IntegrityError, OperationalError

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.pyiceberg_internals import (
    MergingOverwrite,
    MetadataReusingTransaction,
    check_schema_compatible,
    delete_as_overwrite,
    lost_to_concurrent_expiry,
    plan_files,
    read_tasks,
    stage_expiry,
    write_data_files,
)

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
#: the newest RECENT_SNAPSHOTS are the last two writes (one overwrite snapshot each); the rest
#: are the newest snapshot of each earlier clock hour, so time travel reaches back hours, not
#: minutes, at the same metadata size. Files are deleted by maintenance (``maintenance.py``),
#: which also ages these snapshots out; the raw archive is the audit trail to replay from.
RECENT_SNAPSHOTS = 2
HOURLY_SNAPSHOTS = 6
SNAPSHOTS_KEPT = RECENT_SNAPSHOTS + HOURLY_SNAPSHOTS
_HOUR_MS = 3_600_000


#: Seconds a SQLite catalog connection waits for another process's write lock (pysqlite's
#: default of 5 s turns a busy moment into "database is locked").
SQLITE_BUSY_TIMEOUT = 30


def local_catalog(catalog_path: Path, warehouse_dir: Path, name: str = CATALOG_NAME) -> Catalog:
    """The embedded default: SQLite catalog with its file warehouse beside it."""
    return sql_catalog(sqlite_catalog_url(catalog_path), location_uri(warehouse_dir), name=name)


def sqlite_catalog_url(catalog_path: Path) -> str:
    """SQLAlchemy URL of a SQLite catalog file, with a busy timeout for concurrent writers."""
    return f"sqlite:///{catalog_path.resolve()}?timeout={SQLITE_BUSY_TIMEOUT}"


def location_uri(location: str | Path) -> str:
    """``s3://...`` and ``file://...`` stay as they are; a plain path becomes an absolute file URI."""
    text = str(location)
    return text if "://" in text else Path(text).resolve().as_uri()


def sql_catalog(
    url: str, warehouse: str, *, name: str = CATALOG_NAME, region: str = "", endpoint_url: str = ""
) -> Catalog:
    """PyIceberg's SQL catalog in the database at ``url``, over the warehouse at ``warehouse``.

    SQLite (``sqlite:///path``) serves one host; PostgreSQL (``postgresql://...``) lets workers
    on several hosts share tables, with the warehouse on a shared path or S3. Commits are
    optimistic either way: a compare-and-swap of the table's metadata location.

    Args:
        url: SQLAlchemy URL. ``postgresql://`` is pinned to psycopg 3 (SQLAlchemy 2.0 would
            pick psycopg2); a local SQLite file and a ``file://`` warehouse are created if missing.
        warehouse: ``file://`` or ``s3://`` URI; S3 goes through s3fs and the AWS credential chain.
        region, endpoint_url: For an S3 warehouse (``endpoint_url``: an emulator).
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        url = f"postgresql+psycopg://{rest}"
    if scheme == "sqlite" and rest.startswith("/") and rest != "/:memory:":
        Path(urlsplit(url).path).parent.mkdir(parents=True, exist_ok=True)
    props = {"type": "sql", "uri": url, "warehouse": warehouse}
    if warehouse.startswith("file://"):
        Path(urlsplit(warehouse).path).mkdir(parents=True, exist_ok=True)
    elif warehouse.startswith("s3://"):
        props |= _s3_io_properties(region, endpoint_url)
    return load_catalog(name, **props)


def _s3_io_properties(region: str, endpoint_url: str) -> dict[str, str]:
    """FileIO settings for an S3 warehouse (see :func:`glue_catalog` for why fsspec)."""
    props = {"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO"}
    if region:
        props["s3.region"] = region
    if endpoint_url:
        props["s3.endpoint"] = endpoint_url
    return props


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
    props = {"type": "glue", "warehouse": warehouse_uri, "glue.region": region,
             **_s3_io_properties(region, endpoint_url)}
    if endpoint_url:
        props["glue.endpoint"] = endpoint_url
    return load_catalog(name, **props)


def ensure_table(catalog: Catalog, table_def: TableDef) -> Table:
    """Load the table, creating namespace and table (with its partition spec) atomically if new."""
    try:
        return _with_table_properties(catalog.load_table(table_def.identifier))
    except (NoSuchTableError, NoSuchNamespaceError):
        pass
    try:
        catalog.create_namespace_if_not_exists(table_def.namespace)
    except IntegrityError:
        pass  # created by a concurrent run between the SQL catalog's check and its insert
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


#: Table property ``packetx.source-generation.<YYYY-MM-DD>``: the generation of that day's source
#: set (the raw archive's day manifest) the table's content was built from.
GENERATION_PROPERTY = "packetx.source-generation."
#: The source generation of each day some data was built from.
Generations = Mapping[dt.date, int]
#: Attempts of one commit before a lost race is reported (the backoff between them is capped).
COMMIT_ATTEMPTS = 8
#: Failures after which a commit is tried again from fresh metadata: a lost optimistic race, a
#: concurrent expiry that removed our starting snapshot, or SQLite's lock held past its timeout.
RETRYABLE_COMMIT_ERRORS = (CommitFailedException, ValidationException, OperationalError)


class StaleSourceError(RuntimeError):
    """A commit built from older sources than the table already holds for some day.

    Not retried by the write path: the data itself is stale, so the caller must rebuild it from
    fresh input (or give up) rather than commit it again.
    """

    def __init__(self, identifier: str, stale: Mapping[dt.date, tuple[int, int]]) -> None:
        self.identifier = identifier
        self.stale = dict(stale)
        days = "; ".join(f"{day}: this write was built from generation {ours}, the table holds {theirs}"
                         for day, (ours, theirs) in sorted(self.stale.items()))
        super().__init__(f"{identifier} already holds newer source data ({days})")


def source_generations(table: Table, days: Iterable[dt.date] | None = None) -> dict[dt.date, int]:
    """The generation each day of ``table`` was built from (0: never recorded).

    Read from the table's metadata object, the very one a scan of ``table`` reads, so data and
    generations always belong together. ``days`` None gives every day the table has recorded.
    """
    recorded = _recorded_generations(table.metadata.properties)
    return recorded if days is None else {day: recorded.get(day, 0) for day in days}


def _recorded_generations(properties: Mapping[str, str]) -> dict[dt.date, int]:
    return {dt.date.fromisoformat(key[len(GENERATION_PROPERTY):]): int(value)
            for key, value in properties.items() if key.startswith(GENERATION_PROPERTY)}


def replace_partitions(
    table: Table,
    data: pa.Table,
    *,
    column: str = "log_date",
    values: Iterable[object],
    generations: Generations | None = None,
    snapshot_properties: dict[str, str] | None = None,
    retries: int = COMMIT_ATTEMPTS,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Atomically replace every row whose ``column`` is in ``values`` by ``data``.

    One Iceberg commit per call, so a re-run of a day leaves exactly the same rows and readers
    never see a half-written day.

    Args:
        generations: The source generation of each day ``data`` was built from (the days it
            read, which may be more than ``values``, e.g. a baseline window). Recorded in the
            same commit; None writes without the guard.

    Raises:
        ValueError: if ``data`` holds rows outside ``values`` (they would survive the next
            replacement of their own partition as duplicates).
        StaleSourceError: if the table holds a newer generation for a day of ``generations``.
    """
    values = list(values)
    expression = partition_filter(column, values)
    if data.num_rows:
        wanted = {v if v is None or isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values}
        present = set(data.column(column).unique().to_pylist())
        stray = present - wanted
        if stray:
            raise ValueError(f"rows for {sorted(stray)} outside the partitions being replaced")
    return _overwrite(table, data, expression, snapshot_properties, retries, generations, on_retry,
                      whole_table=False)


def migrate_table(table: Table, table_def: TableDef, data: pa.Table) -> None:
    """Give ``table`` the schema of ``table_def`` and ``data`` as its rows, in one commit.

    For a table whose grain changed (the row-grain ``packets_fact`` became hourly). The table
    stays, with its partition spec, its properties (the per-day source generations among them)
    and its history: nothing is dropped, so no crash can leave it missing. The commit asserts the
    schema and snapshot it started from: if another process wrote or migrated the table since
    ``table`` was loaded, it raises ``CommitFailedException`` and changes nothing.
    """
    old = table.schema().column_names
    with table.transaction() as txn:
        with txn.update_schema(allow_incompatible_changes=True) as update:
            update.union_by_name(table_def.schema)
            for name in old:
                if name not in table_def.schema.names:
                    update.delete_column(name)
            # New columns come last; put every column where ``table_def`` has it, as a new table would.
            previous = None
            for name in table_def.schema.names:
                if previous is not None:
                    update.move_after(name, previous)
                previous = name
        txn.overwrite(data.select(table_def.schema.names).cast(table_def.schema))


def replace_table(
    table: Table,
    data: pa.Table,
    snapshot_properties: dict[str, str] | None = None,
    retries: int = COMMIT_ATTEMPTS,
    *,
    generations: Generations | None = None,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Replace a whole (small, unpartitioned) table in one commit: dimensions rebuilt in full.

    ``generations`` is then every day the data was built from: a day the table has recorded
    but ``generations`` lacks counts as generation 0, i.e. older.
    """
    return _overwrite(table, data, AlwaysTrue(), snapshot_properties, retries, generations, on_retry,
                      whole_table=True)


def _overwrite(
    table: Table,
    data: pa.Table,
    expression: BooleanExpression,
    snapshot_properties: dict[str, str] | None,
    retries: int,
    generations: Generations | None,
    on_retry: OnRetry | None = None,
    *,
    whole_table: bool,
) -> WriteResult:
    """Delete what ``expression`` matches and append ``data`` in one commit, retrying lost races.

    A concurrent commit to the same table (another run) makes the optimistic commit fail; we
    reload and retry, which is safe because the delete and the generation check are recomputed
    against fresh metadata. ``on_retry(attempt, error)`` hears of each lost commit before its
    retry (attempt 1 = the first).
    """
    target = table.schema().as_arrow()
    data = data if data.schema == target else data.cast(target)
    for attempt in range(retries):
        try:
            if attempt:
                table = table.refresh()
            _commit_overwrite(table, data, expression, snapshot_properties or {}, generations, whole_table)
            break
        except (*RETRYABLE_COMMIT_ERRORS, ValueError) as error:
            # Lost to a concurrent writer, a busy SQLite catalog, or maintenance's expiry of our
            # starting snapshot: start again from fresh metadata (the loop refreshes the table).
            unrelated = isinstance(error, ValueError) and not lost_to_concurrent_expiry(error)
            if attempt == retries - 1 or unrelated:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, error)
            # Jitter: writers that collided must not retry in lockstep.
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
    snapshot = table.current_snapshot()
    return WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location())


def _commit_overwrite(
    table: Table,
    data: pa.Table,
    expression: BooleanExpression,
    properties: dict[str, str],
    generations: Generations | None,
    whole_table: bool,
) -> None:
    """Replace what ``expression`` matches by ``data``: one overwrite snapshot in one commit.

    The generations go into the same commit as table properties. The commit is accepted only if
    the table's snapshot is still the one this transaction started from, and every change of a
    generation comes with a new snapshot, so the check below cannot be overtaken by another writer.
    """
    check_schema_compatible(table.metadata, data.schema)
    with MetadataReusingTransaction(table) as txn:
        raised = _check_generations(".".join(table.name()), txn.table_metadata.properties, generations, whole_table)
        _expire_old_snapshots(txn)
        replaced = _whole_files_matching(txn, expression)
        if replaced is None:
            _delete_then_append(txn, table, data, expression, properties)
        else:
            with MergingOverwrite(txn, properties) as overwrite:
                for data_file in replaced:
                    overwrite.delete_data_file(data_file)
                if data.num_rows:
                    for data_file in _write_data_files(txn, table, data, overwrite.commit_uuid):
                        overwrite.append_data_file(data_file)
        if raised:
            txn.set_properties(raised)


def _whole_files_matching(txn: Transaction, expression: BooleanExpression) -> list[DataFile] | None:
    """The data files ``expression`` matches, if it matches each of them whole; else None.

    Always so for whole partitions (``partition_filter`` on identity partition columns) and
    whole tables: then they are dropped as files, nothing is rewritten.
    """
    if txn.table_metadata.current_snapshot() is None:
        return []
    tasks = plan_files(txn, expression)
    if any(task.residual != AlwaysTrue() or task.delete_files for task in tasks):
        return None
    return [task.file for task in tasks]


def _delete_then_append(
    txn: Transaction, table: Table, data: pa.Table, expression: BooleanExpression, properties: dict[str, str]
) -> None:
    """``Table.overwrite``'s way (a delete and an append snapshot), for rows that only part of a file holds."""
    delete_as_overwrite(txn, expression, properties)
    with txn.update_snapshot(snapshot_properties=properties).merge_append() as append:
        if data.num_rows:
            for data_file in _write_data_files(txn, table, data, append.commit_uuid):
                append.append_data_file(data_file)


def _check_generations(
    identifier: str, properties: Mapping[str, str], generations: Generations | None, whole_table: bool
) -> dict[str, str]:
    """The properties that raise the table's generations to ``generations``.

    Raises:
        StaleSourceError: if the table holds a newer generation for any day concerned.
    """
    if generations is None:
        return {}
    recorded = _recorded_generations(properties)
    days = set(generations) | (set(recorded) if whole_table else set())
    stale = {day: (generations.get(day, 0), recorded[day]) for day in days
             if recorded.get(day, 0) > generations.get(day, 0)}
    if stale:
        raise StaleSourceError(identifier, stale)
    return {f"{GENERATION_PROPERTY}{day.isoformat()}": str(generation)
            for day, generation in sorted(generations.items()) if generation > recorded.get(day, 0)}


def _expire_old_snapshots(txn: Transaction) -> None:
    """Thin the snapshots to the budget (``SNAPSHOTS_KEPT``), in the write's own commit.

    Safe under concurrent writers because PyIceberg's own commit retry is off for our tables
    (``TABLE_PROPERTIES``): it would replay "remove snapshot X" onto metadata where another
    writer already removed X. Our retry rebuilds the whole transaction, expiry included, from
    fresh metadata. Data files are not deleted here (expiry only edits metadata).
    """
    # This commit adds one snapshot to the recent ones (two if it must rewrite part of a file).
    expired = snapshots_beyond_budget(txn.table_metadata.snapshots, recent=RECENT_SNAPSHOTS - 1,
                                      hourly=HOURLY_SNAPSHOTS)
    if expired:
        stage_expiry(txn, expired)


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
    """By commit time; the sequence number orders snapshots of one commit (delete + append)."""
    return sorted(snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number or 0))


def _write_data_files(txn: Transaction, table: Table, data: pa.Table, write_uuid) -> Iterable[DataFile]:
    """Write ``data`` as the table's data files, one or more per partition (zero-copy slices)."""
    columns = _identity_partition_columns(table)
    parts = [data] if columns is None or not columns else partition_slices(data, columns)
    return write_data_files(txn, table, parts, columns or None, write_uuid)


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
    return read_tasks(table, tasks, scan.projection())


def read_between(table: Table, column: str, low: object, high: object, columns: tuple[str, ...]) -> pa.Table:
    """``columns`` of the rows whose ``column`` is in ``[low, high]``, whatever their partition.

    For checks that look across days (the same hour under two days); file statistics prune the scan.
    """
    expression = And(GreaterThanOrEqual(column, _literal(low)), LessThanOrEqual(column, _literal(high)))
    return table.scan(row_filter=expression, selected_fields=columns).to_arrow()


def _literal(value: object) -> object:
    """Dates and datetimes as ISO text, which PyIceberg's expressions parse for date and timestamp columns."""
    return value.isoformat() if isinstance(value, dt.date) else value
