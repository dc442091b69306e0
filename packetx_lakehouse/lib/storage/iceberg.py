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
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from pyiceberg.manifest import DataFile, ManifestContent, ManifestEntryStatus
from pyiceberg.table import FileScanTask, Table, Transaction
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.transforms import IdentityTransform
from sqlalchemy.exc import IntegrityError, OperationalError

from packetx_lakehouse.lib.retry import retrying
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
#: metadata, snapshots included, so a day refreshed every minute must not grow it. Of the budget,
#: the newest RECENT_SNAPSHOTS are the last writes: enough for a layer that fell a few refreshes
#: behind to catch up from the changes in between (``changes_since``); the rest are the newest
#: snapshot of each earlier clock hour, so time travel reaches back hours, not minutes, at the
#: same metadata size. Files are deleted by maintenance (``maintenance.py``), which also ages
#: these snapshots out; the raw archive is the audit trail to replay from.
RECENT_SNAPSHOTS = 4
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
    #: Rows the whole table holds after the commit (the snapshot summary's ``total-records``).
    total_rows: int | None = None


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


class MovedSourceError(StaleSourceError):
    """An incremental commit found the table no longer at the generation it continues from.

    Another run extended or replaced the day meanwhile (or an earlier commit of this one was
    lost): the change was computed against a state the table has left, so it is refused, like
    stale data, and recomputed from what the table holds now.
    """

    def __init__(self, identifier: str, moved: Mapping[dt.date, tuple[int, int]]) -> None:
        RuntimeError.__init__(self, f"{identifier} moved on under this write (" + "; ".join(
            f"{day}: it continues from generation {ours}, the table holds {theirs}"
            for day, (ours, theirs) in sorted(moved.items())) + ")")
        self.identifier = identifier
        self.stale = dict(moved)


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
    sums: Sequence[str] = (),
    counted: DayCounts | None = None,
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
        sums: Columns whose per-day totals the commit records (``TOTALS_PROPERTY``).
        counted: Per-day figures that are not sums of ``data``'s rows, recorded with the totals
            (a day missing here records none).

    Raises:
        ValueError: if ``data`` holds rows outside ``values`` (they would survive the next
            replacement of their own partition as duplicates).
        StaleSourceError: if the table holds a newer generation for a day of ``generations``.
    """
    values = list(values)
    expression = partition_filter(column, values)
    wanted = {v if v is None or isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values}
    if data.num_rows:
        present = set(data.column(column).unique().to_pylist())
        stray = present - wanted
        if stray:
            raise ValueError(f"rows for {sorted(stray)} outside the partitions being replaced")
    days = sorted(v for v in wanted if isinstance(v, dt.date))
    totals = _Totals(sums, days, column, set_to=data, counted=counted or {}) if days else None
    write = _Write(expression, generations, totals=totals, summary=_changes_summary(days, None, generations))
    return _overwrite(table, data, write, snapshot_properties, retries, on_retry)


def append_rows(
    table: Table,
    data: pa.Table,
    *,
    continues: Generations,
    generations: Generations,
    sums: Sequence[str] = (),
    counted: DayCounts | None = None,
    snapshot_properties: dict[str, str] | None = None,
    retries: int = COMMIT_ATTEMPTS,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Add ``data`` to the days it holds without touching their rows: a refresh's new lines.

    A fast append (one new manifest, none rewritten): the cost of the commit does not grow with
    the day. The commit continues each day of ``continues`` from that generation to the one in
    ``generations``, and records both in the snapshot's summary (see ``changes_since``).
    ``counted`` figures are added to the day's recorded ones (see ``replace_partitions``).

    Raises:
        MovedSourceError: if the table does not hold exactly the ``continues`` generation of a day.
    """
    days = sorted(continues)
    empty = frozenset(day for day, generation in continues.items() if generation == 0)
    write = _Write(None, generations, continues=continues,
                   totals=_Totals(sums, days, "log_date", add=data, empty=empty, counted=counted or {}),
                   summary=_changes_summary(days, continues, generations))
    return _overwrite(table, data, write, snapshot_properties, retries, on_retry)


def replace_rows(
    table: Table,
    data: pa.Table,
    *,
    where: BooleanExpression,
    replaced: pa.Table,
    continues: Generations,
    generations: Generations,
    sums: Sequence[str] = (),
    snapshot_properties: dict[str, str] | None = None,
    retries: int = COMMIT_ATTEMPTS,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Replace the rows ``where`` matches (``replaced``, as the caller read them) by ``data``.

    For a refresh that recomputes some hours of some days: files holding only those rows are
    dropped whole, files holding others too are rewritten without them (copy-on-write). The
    commit continues each day of ``continues`` as ``append_rows`` does; the day's totals move by
    ``data`` minus ``replaced``, which the caller read at the generation the commit continues from.

    Raises:
        MovedSourceError: if the table does not hold exactly the ``continues`` generation of a day.
    """
    days = sorted(continues)
    empty = frozenset(day for day, generation in continues.items() if generation == 0)
    write = _Write(where, generations, continues=continues,
                   totals=_Totals(sums, days, "log_date", add=data, remove=replaced, empty=empty),
                   summary=_changes_summary(days, continues, generations))
    return _overwrite(table, data, write, snapshot_properties, retries, on_retry)


#: Snapshot summary property of a compaction: rows rewritten into fewer files, none changed.
COMPACTION_SUMMARY = "packetx.compaction"


def rewrite_files(table: Table, files: Sequence[DataFile], *, sort_by: Sequence[str] = (),
                  max_files: int | None = None) -> int:
    """Rewrite ``files`` into as few as their rows need (sorted by ``sort_by``), in one commit.

    ``max_files`` caps the files written per partition: the table's target file size is raised for
    this write when the rows need it (PyIceberg bins rows by their size in memory, many times their Parquet size:
    a closed day of 100 busy devices, 185 MB of Parquet, came out as 6 files of the 512 MB target).

    The commit changes no row, generation or total, and says so (an empty ``CHANGES_SUMMARY``): a
    compaction (``compaction.py``). It asserts the snapshot ``table`` is at, so a commit that got
    there first makes it fail; nothing is retried here.

    Returns:
        The rows rewritten.

    Raises:
        CommitFailedException: another commit changed the table since ``table`` was loaded.
    """
    rows = read_tasks(table, [FileScanTask(data_file) for data_file in files])
    if sort_by:
        rows = rows.sort_by([(column, "ascending") for column in sort_by])
    with MetadataReusingTransaction(table) as txn:
        _expire_old_snapshots(txn)
        with MergingOverwrite(txn, {CHANGES_SUMMARY: "{}", COMPACTION_SUMMARY: "true"}) as overwrite:
            for data_file in files:
                overwrite.delete_data_file(data_file)
            min_target = -(-rows.nbytes // max_files) if max_files else 0
            for data_file in _write_data_files(txn, table, rows, overwrite.commit_uuid, min_target_size=min_target):
                overwrite.append_data_file(data_file)
    return rows.num_rows


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
    return _overwrite(table, data, _Write(AlwaysTrue(), generations, whole_table=True), snapshot_properties, retries,
                      on_retry)


#: Table property ``packetx.totals.<YYYY-MM-DD>``: JSON of the day's row count (``records``) and
#: the sums of the table's total columns, kept by every commit so that checks and freshness read a
#: day's totals from metadata instead of scanning it. KB (float) columns are summed as micro-KB.
TOTALS_PROPERTY = "packetx.totals."
#: Snapshot summary property: JSON ``{day: [generation continued from (null: replaced), generation left]}``.
CHANGES_SUMMARY = "packetx.changes"
#: Snapshot summary property of a commit that replaced some hours of a day: JSON ``{day: [hour, ...]}``
#: (ISO time stamps). A commit without it changed its days whole, as far as a reader can tell.
HOURS_SUMMARY = "packetx.hours"


#: Figures of a day a commit records with its totals that are not sums of its rows (bronze: the
#: header and blank lines its files held), ``{day: {name: count}}``.
DayCounts = Mapping[dt.date, Mapping[str, int]]


@dataclass(frozen=True)
class _Totals:
    """How a commit moves the recorded totals of ``days``: set to ``set_to``'s, or by ``add`` minus
    ``remove``; ``counted`` figures are set, or added, the same way."""

    columns: Sequence[str]
    days: Sequence[dt.date]
    column: str
    set_to: pa.Table | None = None
    add: pa.Table | None = None
    remove: pa.Table | None = None
    #: Days the table holds nothing of yet (generation 0): their totals start from zero.
    empty: frozenset[dt.date] = frozenset()
    counted: DayCounts = field(default_factory=dict)

    def properties(self, recorded: Mapping[str, str]) -> dict[str, str]:
        """The new ``TOTALS_PROPERTY`` values (none for a day whose earlier totals are unknown)."""
        out = {}
        for day in self.days:
            key = f"{TOTALS_PROPERTY}{day.isoformat()}"
            counted = self.counted.get(day, {})
            if self.set_to is not None:
                totals = day_sums(self.set_to, day, self.columns, self.column) | dict(counted)
            elif key in recorded or day in self.empty:
                totals = json.loads(recorded[key]) if key in recorded else {}
                known = {name for name in counted if name in totals or day in self.empty}
                for sign, rows in ((1, self.add), (-1, self.remove)):
                    if rows is not None:
                        for name, value in day_sums(rows, day, self.columns, self.column).items():
                            totals[name] = totals.get(name, 0) + sign * value
                # A figure an earlier version did not record stays unrecorded until the day is replaced.
                for name in known:
                    totals[name] = totals.get(name, 0) + counted[name]
            else:
                continue
            out[key] = json.dumps(totals, sort_keys=True)
        return out


def day_sums(data: pa.Table, day: dt.date, columns: Sequence[str], column: str = "log_date") -> dict[str, float]:
    """``records`` and each of ``columns`` summed over ``data``'s rows of ``day``.

    Float columns (KB) are summed as whole micro-units, exact below 2**53 whatever the order of
    the rows or of the commits that add and remove them (a NaN shows as NaN).
    """
    # Only the summed columns are filtered: a copy of every column of a week of silver, once per
    # day, cost more than the sums themselves.
    needed = data.select([column, *columns])
    rows = needed.filter(pc.equal(needed.column(column), pa.scalar(day, data.schema.field(column).type)))
    sums: dict[str, float] = {"records": rows.num_rows}
    for name in columns:
        values = rows.column(name)
        if pa.types.is_floating(values.type):
            values = pc.round(pc.multiply(values, 1_000_000))
        sums[name] = pc.sum(values).as_py() or 0
    return sums


def recorded_totals(table: Table, day: dt.date) -> dict[str, int] | None:
    """The totals of ``day`` the table's commits kept (None: not recorded, e.g. written by an earlier version)."""
    raw = table.metadata.properties.get(f"{TOTALS_PROPERTY}{day.isoformat()}")
    return None if raw is None else json.loads(raw)


def _changes_summary(days: Sequence[dt.date], continues: Generations | None,
                     generations: Generations | None) -> dict[str, str]:
    if generations is None:
        return {}
    return {CHANGES_SUMMARY: json.dumps({day.isoformat(): [None if continues is None else continues.get(day, 0),
                                                          generations.get(day, 0)] for day in days})}


@dataclass(frozen=True)
class _Write:
    """What one commit does: replace what ``replace`` matches (None: only add rows), guarded by generations."""

    replace: BooleanExpression | None
    generations: Generations | None
    continues: Generations | None = None
    whole_table: bool = False
    totals: _Totals | None = None
    summary: Mapping[str, str] = field(default_factory=dict)


def _overwrite(
    table: Table,
    data: pa.Table,
    write: _Write,
    snapshot_properties: dict[str, str] | None,
    retries: int,
    on_retry: OnRetry | None = None,
) -> WriteResult:
    """Commit ``write`` with ``data``, retrying lost races.

    A concurrent commit to the same table (another run) makes the optimistic commit fail; we
    reload and retry, which is safe because the delete, the generation check and the totals are
    recomputed against fresh metadata. ``on_retry(attempt, error)`` hears of each lost commit
    before its retry (attempt 1 = the first).
    """
    target = table.schema().as_arrow()
    data = data if data.schema == target else data.cast(target)
    properties = {**(snapshot_properties or {}), **write.summary}
    # Lost to a concurrent writer, a busy SQLite catalog, or maintenance's expiry of our starting
    # snapshot: start again from fresh metadata (a refreshed table), after a jittered wait.
    for attempt in retrying(_lost_a_race, attempts=retries, on_retry=on_retry):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                table = table.refresh()
            _commit_overwrite(table, data, write, properties)
    snapshot = table.current_snapshot()
    total = snapshot.summary["total-records"] if snapshot and snapshot.summary else None
    return WriteResult(data.num_rows, snapshot.snapshot_id if snapshot else None, table.location(),
                       int(total) if total is not None else None)


def _lost_a_race(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE_COMMIT_ERRORS) or (
        isinstance(error, ValueError) and lost_to_concurrent_expiry(error))


def _commit_overwrite(table: Table, data: pa.Table, write: _Write, properties: dict[str, str]) -> None:
    """``write`` in one commit: one overwrite snapshot, or a fast append when nothing is replaced.

    The generations and totals go into the same commit as table properties. The commit is
    accepted only if the table's snapshot is still the one this transaction started from, and
    every change of a generation comes with a new snapshot, so the checks below cannot be
    overtaken by another writer.
    """
    check_schema_compatible(table.metadata, data.schema)
    identifier = ".".join(table.name())
    with MetadataReusingTransaction(table) as txn:
        recorded = txn.table_metadata.properties
        if write.continues is not None:
            _check_continues(identifier, recorded, write.continues)
        raised = _check_generations(identifier, recorded, write.generations, write.whole_table)
        totals = write.totals.properties(recorded) if write.totals is not None else {}
        _expire_old_snapshots(txn)
        if write.replace is None:
            with txn.update_snapshot(snapshot_properties=properties).fast_append() as append:
                for data_file in _write_data_files(txn, table, data, append.commit_uuid):
                    append.append_data_file(data_file)
        else:
            replaced = _whole_files_matching(txn, write.replace)
            if replaced is None:
                _delete_then_append(txn, table, data, write.replace, properties)
            else:
                with MergingOverwrite(txn, properties) as overwrite:
                    for data_file in replaced:
                        overwrite.delete_data_file(data_file)
                    if data.num_rows:
                        for data_file in _write_data_files(txn, table, data, overwrite.commit_uuid):
                            overwrite.append_data_file(data_file)
        if raised or totals:
            txn.set_properties({**raised, **totals})


@dataclass(frozen=True)
class Changes:
    """What a table's commits did to one day since it held some generation: rows added and removed."""

    added: pa.Table
    removed: pa.Table
    #: The generation the day is at after those commits.
    generation: int


def changes_since(table: Table, day: dt.date, generation: int) -> Changes | None:
    """The rows the commits since ``table`` held ``generation`` for ``day`` added to it and took from it.

    Each commit of the write path says in its snapshot summary which generation of which day it
    continued from and left (``CHANGES_SUMMARY``); walking back from the current snapshot to the
    commit that left ``generation`` gives the files those commits added and deleted in the day's
    partition. A file added and deleted again on the way counts for neither. Snapshots that say
    nothing of the day (other days, compaction) change nothing of it and are passed over.

    Returns:
        None when the changes cannot be told: a commit on the way replaced the day whole, its
        snapshot has expired, or one of its files is gone. The caller then rebuilds the day.
    """
    current = source_generations(table, [day])[day]
    schema = table.schema().as_arrow()
    if current == generation:
        return Changes(schema.empty_table(), schema.empty_table(), current)
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    snapshot = table.current_snapshot()
    included: list[Snapshot] = []
    while snapshot is not None:
        raw = snapshot.summary.get(CHANGES_SUMMARY) if snapshot.summary else None
        step = json.loads(raw).get(day.isoformat()) if raw else None
        if step is not None:
            start, end = step
            if end <= generation:
                break
            if start is None:
                return None
            included.append(snapshot)
        if snapshot.parent_snapshot_id is None:
            if generation != 0:
                return None
            break
        snapshot = by_id.get(snapshot.parent_snapshot_id)
        if snapshot is None:
            return None  # expired: the chain back to ``generation`` is lost
    added, deleted = _files_of(table, included, day)
    both = set(added) & set(deleted)
    try:
        return Changes(_read_files(table, [f for p, f in added.items() if p not in both]),
                       _read_files(table, [f for p, f in deleted.items() if p not in both]), current)
    except FileNotFoundError:
        return None


def touched_since(table: Table, snapshot_id: int | None, days: Iterable[dt.date]) -> dict[dt.date, set[str] | None] | None:
    """Which of ``days`` the commits after snapshot ``snapshot_id`` changed, and which hours of them.

    Read from the commits' summaries (``CHANGES_SUMMARY``, ``HOURS_SUMMARY``): a day maps to the
    ISO hours its commits replaced, or None when one of them changed it whole (or told no hours).
    Days no commit changed are left out. None when ``snapshot_id`` is not an ancestor of the
    current snapshot any more (expired, or never one): then anything may have changed.
    """
    wanted = {day.isoformat(): day for day in days}
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    snapshot = table.current_snapshot()
    touched: dict[dt.date, set[str] | None] = {}
    while snapshot is not None and snapshot.snapshot_id != snapshot_id:
        summary = snapshot.summary
        changed = json.loads(summary.get(CHANGES_SUMMARY) or "{}") if summary else {}
        hours = json.loads(summary.get(HOURS_SUMMARY) or "{}") if summary else {}
        for key in changed.keys() & wanted.keys():
            day = wanted[key]
            if key in hours and touched.get(day, set()) is not None:
                touched[day] = touched.get(day, set()) | set(hours[key])
            else:
                touched[day] = None
        if summary is not None and not summary.get(CHANGES_SUMMARY):
            # Written without the guard (an earlier version, a migration): it may have changed any day.
            touched.update(dict.fromkeys(wanted.values()))
        parent = snapshot.parent_snapshot_id
        snapshot = by_id.get(parent) if parent is not None else None
        if parent is not None and snapshot is None:
            return None
    if snapshot is None and snapshot_id is not None:
        return None
    return touched


def _files_of(table: Table, snapshots: list[Snapshot], day: dt.date) -> tuple[dict[str, DataFile], dict[str, DataFile]]:
    """Data files of ``day``'s partition the ``snapshots`` added and deleted, by path."""
    position = _partition_position(table, "log_date")
    value = (day - dt.date(1970, 1, 1)).days
    added: dict[str, DataFile] = {}
    deleted: dict[str, DataFile] = {}
    ids = {s.snapshot_id for s in snapshots}
    for snapshot in snapshots:
        for manifest in snapshot.manifests(table.io):
            if manifest.added_snapshot_id not in ids or manifest.content != ManifestContent.DATA:
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                if entry.snapshot_id not in ids or (position is not None and entry.data_file.partition[position] != value):
                    continue
                if entry.status == ManifestEntryStatus.ADDED:
                    added[entry.data_file.file_path] = entry.data_file
                elif entry.status == ManifestEntryStatus.DELETED:
                    deleted[entry.data_file.file_path] = entry.data_file
    return added, deleted


def _partition_position(table: Table, column: str) -> int | None:
    source_id = table.schema().find_field(column).field_id
    for position, partition_field in enumerate(table.spec().fields):
        if partition_field.source_id == source_id:
            return position
    return None


def _read_files(table: Table, files: list[DataFile]) -> pa.Table:
    if not files:
        return table.schema().as_arrow().empty_table()
    return read_tasks(table, [FileScanTask(data_file) for data_file in files])


def _check_continues(identifier: str, properties: Mapping[str, str], continues: Generations) -> None:
    """Raise ``MovedSourceError`` unless the table holds exactly the generations ``continues`` names."""
    recorded = _recorded_generations(properties)
    moved = {day: (generation, recorded.get(day, 0)) for day, generation in continues.items()
             if recorded.get(day, 0) != generation}
    if moved:
        raise MovedSourceError(identifier, moved)


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


def _write_data_files(txn: Transaction, table: Table, data: pa.Table, write_uuid, *,
                      min_target_size: int = 0) -> Iterable[DataFile]:
    """Write ``data`` as the table's data files, one or more per partition (zero-copy slices)."""
    columns = _identity_partition_columns(table)
    parts = [data] if columns is None or not columns else partition_slices(data, columns)
    return write_data_files(txn, table, parts, columns or None, write_uuid, min_target_size=min_target_size)


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
