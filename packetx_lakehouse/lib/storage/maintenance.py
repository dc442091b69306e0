"""Iceberg table maintenance: expire old snapshots, then delete every file nothing references.

PyIceberg 0.12 expires snapshots, but only in the metadata: it deletes no file, has no orphan-file
removal and no way to list a table's location. Without this module every re-run of a day leaves
its old data files, manifests, manifest lists and metadata JSON behind for good.

One rule deletes files, whoever made them dead (this job's expiry, the in-commit expiry of the
write path, a crashed write, a metadata JSON that fell out of the log): a file under the table's
location is deleted when it is older than the safety window and reached neither by the current
metadata nor by any logged metadata version that was still current within the window. The file
age protects a write in flight (its new files are referenced only once it commits); the recent
versions protect what that write (or a reader) planned on, which other writers' in-commit
expiry may have dropped meanwhile.

Time is a parameter everywhere, so a benchmark or test can run maintenance "a day later" without
waiting; file ages still come from storage.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlparse

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import ManifestContent
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Snapshot

from packetx_lakehouse.lib.storage.iceberg import snapshots_oldest_first
from packetx_lakehouse.lib.storage.pyiceberg_internals import list_location, read_metadata_file

#: What a file under a table's location is, by PyIceberg's naming (used for reports only).
FILE_KINDS = ("data", "manifest", "manifest_list", "metadata_json", "other")


@dataclass(frozen=True)
class MaintenancePolicy:
    """How long old table states and dead files are kept (see ``docs/operations.md``).

    Attributes:
        snapshot_max_age: A snapshot is expired once it has been *superseded* (stopped being the
            newest) for longer than this. Counting from its successor, not from its own time,
            means a table idle for a week and then rewritten keeps last week's state for this
            long, for readers that planned on it.
        min_snapshots: The newest snapshots kept whatever their age.
        orphan_grace: Unreferenced files younger than this are left alone: a write in flight
            has written them and will reference them when it commits.
    """

    snapshot_max_age: dt.timedelta = dt.timedelta(hours=24)
    min_snapshots: int = 1
    orphan_grace: dt.timedelta = dt.timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.min_snapshots < 1:
            raise ValueError(f"min_snapshots must be at least 1 (the current state), got {self.min_snapshots}")
        if self.snapshot_max_age < dt.timedelta(0) or self.orphan_grace < dt.timedelta(0):
            raise ValueError("snapshot_max_age and orphan_grace cannot be negative")


@dataclass(frozen=True)
class StoredFile:
    """One file under a table's location, as storage lists it."""

    size: int
    modified: dt.datetime


@dataclass(frozen=True)
class TableStorage:
    """What a table occupies and how much of it the current snapshot uses."""

    files: int
    bytes: int
    #: Bytes of the current state: its data files, manifests, manifest list and metadata JSON.
    live_bytes: int
    files_by_kind: dict[str, int]
    bytes_by_kind: dict[str, int]
    snapshots: int
    #: Data files of the current snapshot, and the most in any one partition (compaction's cue).
    live_data_files: int
    max_data_files_per_partition: int

    @property
    def metadata_files(self) -> int:
        """Metadata JSON, manifest lists and manifests: everything that is not data."""
        return self.files - self.files_by_kind.get("data", 0) - self.files_by_kind.get("other", 0)


@dataclass(frozen=True)
class TableMaintenance:
    """What one maintenance pass did to a table (shown per run in the UI)."""

    table: str
    snapshots_expired: int
    snapshots_kept: int
    files_deleted: dict[str, int] = field(default_factory=dict)
    bytes_deleted: dict[str, int] = field(default_factory=dict)
    #: Unreferenced files left for a later pass because they are younger than the safety window.
    young_unreferenced: int = 0
    #: Deletions that failed (logged, retried by the next pass): path -> error.
    failures: dict[str, str] = field(default_factory=dict)
    #: What the table occupies once the pass is done.
    after: TableStorage | None = None

    @property
    def total_files_deleted(self) -> int:
        return sum(self.files_deleted.values())

    @property
    def total_bytes_deleted(self) -> int:
        return sum(self.bytes_deleted.values())


def file_kind(uri: str) -> str:
    """Classify a table file by PyIceberg's names: ``snap-*.avro`` lists, ``*.avro`` manifests."""
    name = uri.rsplit("/", 1)[-1]
    if name.endswith(".metadata.json"):
        return "metadata_json"
    if name.endswith(".avro"):
        return "manifest_list" if name.startswith("snap-") else "manifest"
    if name.endswith((".parquet", ".orc")):
        return "data"
    return "other"


def normalise_uri(uri: str) -> str:
    """One spelling per file: ``file:/x``, ``file:///x`` and ``/x`` are the same; ``s3a`` is ``s3``."""
    parsed = urlparse(uri)
    if not parsed.scheme or parsed.scheme == "file":
        return "file://" + parsed.path
    if parsed.scheme in ("s3a", "s3n"):
        return "s3://" + parsed.netloc + parsed.path
    return uri


# --- snapshot expiry ------------------------------------------------------------------------


def expirable_snapshots(metadata: TableMetadata, now: dt.datetime, policy: MaintenancePolicy) -> list[int]:
    """The snapshots ``policy`` lets go at ``now``: superseded long enough, not among the newest.

    Branch and tag heads (the current snapshot included) are never expired.
    """
    ordered = snapshots_oldest_first(metadata.snapshots)
    protected = {ref.snapshot_id for ref in metadata.refs.values()
                 if ref.snapshot_ref_type in (SnapshotRefType.BRANCH, SnapshotRefType.TAG)}
    cutoff_ms = int(now.timestamp() * 1000) - int(policy.snapshot_max_age.total_seconds() * 1000)
    candidates = ordered[: max(0, len(ordered) - policy.min_snapshots)]
    # A snapshot stopped being the newest when the next one was committed.
    superseded_ms = {s.snapshot_id: nxt.timestamp_ms for s, nxt in zip(ordered, ordered[1:])}
    return [s.snapshot_id for s in candidates
            if s.snapshot_id not in protected and superseded_ms[s.snapshot_id] < cutoff_ms]


def expire_snapshots(table: Table, now: dt.datetime, policy: MaintenancePolicy, retries: int = 5) -> tuple[Table, int]:
    """Expire what :func:`expirable_snapshots` allows, in one commit; returns the fresh table and the count.

    An expiry commit carries no requirement, so PyIceberg applies it to whatever metadata is current
    when it lands. It fails only if a writer's in-commit expiry removed one of the same snapshots
    first (``ValueError``) or the catalog swap lost a race (``CommitFailedException``): both are
    recomputed from fresh metadata.
    """
    attempt = 1
    while True:
        table = table.refresh()
        expired = expirable_snapshots(table.metadata, now, policy)
        if not expired:
            return table, 0
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
            return table.refresh(), len(expired)
        except (CommitFailedException, ValueError):
            if attempt == retries:
                raise
            attempt += 1


# --- what the metadata reaches, what storage holds ------------------------------------------


def referenced_files(table: Table, *, versions_current_since: dt.datetime | None = None) -> set[str]:
    """Every file the table's metadata reaches, normalised.

    That is, for each retained snapshot: its manifest list, its manifests and every data or
    delete file any of them lists as live; plus the current metadata JSON and those in its log,
    and statistics files. Files a retained manifest lists as *deleted* are live only in expired
    snapshots, so they are not reachable (the same rule as ``inspect.all_files``).

    Args:
        versions_current_since: Also follow the snapshots of every logged metadata version that
            was still current at this time. A write in flight (or a reader) planned on the
            version that was current when it started; other writers' in-commit expiry may have
            dropped that snapshot since, but its files must outlive the write.
    """
    metadata, io = table.metadata, table.io
    snapshots = list(metadata.snapshots)
    if versions_current_since is not None:
        snapshots += _snapshots_of_versions_current_since(table, versions_current_since)
    found: set[str] = set()
    seen_manifests: set[str] = set()
    for snapshot in snapshots:
        if snapshot.manifest_list in found:
            continue
        found.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            found.add(manifest.manifest_path)
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            found.update(entry.data_file.file_path for entry in manifest.fetch_manifest_entry(io, discard_deleted=True))
    found.add(table.metadata_location)
    found.update(entry.metadata_file for entry in metadata.metadata_log)
    found.update(s.statistics_path for s in metadata.statistics)
    found.update(s.statistics_path for s in metadata.partition_statistics)
    return {normalise_uri(uri) for uri in found}


def _snapshots_of_versions_current_since(table: Table, since: dt.datetime) -> list[Snapshot]:
    """Snapshots of the logged metadata versions that were replaced after ``since``."""
    log = sorted(table.metadata.metadata_log, key=lambda entry: entry.timestamp_ms)
    replaced_at = [entry.timestamp_ms for entry in log[1:]] + [table.metadata.last_updated_ms]
    since_ms = since.timestamp() * 1000
    found: list[Snapshot] = []
    for entry, replaced_ms in zip(log, replaced_at):
        if replaced_ms < since_ms:
            continue
        try:
            found += read_metadata_file(table.io, entry.metadata_file).snapshots
        except FileNotFoundError:
            continue  # dropped from the log by a commit since: a newer version covers it
    return found


def current_state(table: Table) -> tuple[set[str], list[tuple[tuple, str]]]:
    """The files the current snapshot needs, and its live data files with their partitions."""
    snapshot, io = table.current_snapshot(), table.io
    needed = {table.metadata_location}
    data: list[tuple[tuple, str]] = []
    if snapshot is not None:
        needed.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            needed.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                if manifest.content == ManifestContent.DATA:
                    data.append((tuple(entry.data_file.partition), entry.data_file.file_path))
                needed.add(entry.data_file.file_path)
    return {normalise_uri(uri) for uri in needed}, data


def list_table_files(table: Table) -> dict[str, StoredFile]:
    """Every file under the table's location, through the table's own FileIO (local disk or S3)."""
    location = table.location().rstrip("/")
    prefix = normalise_uri(location) + "/"
    found = {normalise_uri(uri): StoredFile(size, modified) for uri, size, modified in list_location(table.io, location)}
    # A listing of ".../t" must never reach a sibling ".../t2".
    return {uri: stored for uri, stored in found.items() if uri.startswith(prefix)}


def table_storage(table: Table, listing: dict[str, StoredFile] | None = None) -> TableStorage:
    """Files and bytes under the table's location, and the bytes its current state uses."""
    listing = list_table_files(table) if listing is None else listing
    needed, data = current_state(table)
    files_by_kind: Counter[str] = Counter()
    bytes_by_kind: Counter[str] = Counter()
    for uri, stored in listing.items():
        files_by_kind[file_kind(uri)] += 1
        bytes_by_kind[file_kind(uri)] += stored.size
    per_partition = Counter(partition for partition, _ in data)
    return TableStorage(
        files=len(listing),
        bytes=sum(stored.size for stored in listing.values()),
        live_bytes=sum(listing[uri].size for uri in needed if uri in listing),
        files_by_kind=dict(files_by_kind),
        bytes_by_kind=dict(bytes_by_kind),
        snapshots=len(table.metadata.snapshots),
        live_data_files=len(data),
        max_data_files_per_partition=max(per_partition.values(), default=0),
    )


# --- the pass --------------------------------------------------------------------------------


def maintain_table(table: Table, *, now: dt.datetime, policy: MaintenancePolicy) -> TableMaintenance:
    """Expire old snapshots, then delete every unreferenced file older than the safety window.

    Storage is listed *before* the metadata is re-read: a file committed in between is then
    both listed and referenced, never mistaken for an orphan. Deleting a file that is already
    gone (another pass) is not an error.
    """
    table, expired = expire_snapshots(table, now, policy)
    listing = list_table_files(table)
    table = table.refresh()
    cutoff = now - policy.orphan_grace
    referenced = referenced_files(table, versions_current_since=cutoff)
    dead = {uri: stored for uri, stored in listing.items() if uri not in referenced}
    old = sorted(uri for uri, stored in dead.items() if stored.modified < cutoff)
    files: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for uri in old:
        try:
            table.io.delete(uri)
        except FileNotFoundError:
            pass  # another pass was first
        except OSError as error:
            failures[uri] = str(error)
            continue
        files[file_kind(uri)] += 1
        sizes[file_kind(uri)] += dead[uri].size
        del listing[uri]
    return TableMaintenance(
        table=".".join(table.name()),
        snapshots_expired=expired,
        snapshots_kept=len(table.metadata.snapshots),
        files_deleted=dict(files),
        bytes_deleted=dict(sizes),
        young_unreferenced=len(dead) - len(old),
        failures=failures,
        after=table_storage(table, listing),
    )


def sum_storage(storages: Sequence[TableStorage]) -> dict[str, int]:
    """Totals over tables, for reports: files, bytes, live bytes, metadata files."""
    return {
        "files": sum(s.files for s in storages),
        "bytes": sum(s.bytes for s in storages),
        "live_bytes": sum(s.live_bytes for s in storages),
        "metadata_files": sum(s.metadata_files for s in storages),
        "data_files": sum(s.files_by_kind.get("data", 0) for s in storages),
    }
