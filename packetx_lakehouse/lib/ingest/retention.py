"""Raw-archive retention: every version for a while, then only the newest version of each file.

The archive keeps a gzip copy of every version of every landing file it ingests. A device
capturing all day makes a new version each time the sensor sees its file grow (up to one a
minute), and PacketX only appends, so each older version is a prefix of the next: worth keeping
for a while (to replay a past run exactly, or to fall back when a newer upload turns out bad),
not for ever.

Policy (``docs/operations.md``): a version younger than ``keep_all_for`` is kept. Older ones are
deleted unless one of these holds:

- the day's manifest names it (the day's current source set);
- it is the newest archived version of its file;
- the day's bronze rows were not built from the manifest's version of that file (bronze lags
  the archive after a failed run): then every version of the file is kept, because bronze rows
  name their file and its ``ingested_at`` but not which older version it was.

The day's manifest history (``date=<day>/manifests/generation-N.json``, one per change of its
source set) follows the same window: older generations are deleted, except the newest and every
generation that retracted a file or undid a retraction, which stay as the audit record.

Other keys are never touched.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow.compute as pc
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from packetx_lakehouse.lib.ingest.archive import (
    DayManifest,
    load_manifest,
    read_manifest,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

_VERSION_KEY = re.compile(r"^date=(?P<day>\d{4}-\d{2}-\d{2})/(?P<source>[^/]+)\.(?P<digest>[0-9a-f]{16})\.gz$")
_HISTORY_KEY = re.compile(r"^date=(?P<day>\d{4}-\d{2}-\d{2})/manifests/generation-(?P<generation>\d+)\.json$")

#: ``day -> {source file -> the ingested_at values its bronze rows carry}``.
BronzeSources = Callable[[dt.date], Mapping[str, set[dt.datetime]]]


@dataclass(frozen=True)
class ArchiveRetention:
    """How long every archived version is kept; after that only the newest of each file."""

    keep_all_for: dt.timedelta = dt.timedelta(days=3)

    def __post_init__(self) -> None:
        if self.keep_all_for < dt.timedelta(0):
            raise ValueError("keep_all_for cannot be negative")


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass removed and why it kept what it kept."""

    versions_deleted: int = 0
    bytes_deleted: int = 0
    versions_kept: int = 0
    days_checked: int = 0
    #: ``<day>/<file>`` whose older versions were all kept because bronze was not built from the
    #: manifest's version (a failed run; the next successful run of the day releases them).
    held_for_bronze: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)
    #: Manifest generations of the days' history deleted (versions above are file versions only).
    history_deleted: int = 0


@dataclass(frozen=True)
class _Version:
    info: ObjectInfo
    day: dt.date
    source: str


def archived_versions(objects: Iterable[ObjectInfo]) -> dict[dt.date, dict[str, list[_Version]]]:
    """The archive's file versions by day and source file, oldest first."""
    by_day: dict[dt.date, dict[str, list[_Version]]] = {}
    for info in objects:
        match = _VERSION_KEY.match(info.key)
        if match is None:
            continue
        day = dt.date.fromisoformat(match["day"])
        by_day.setdefault(day, {}).setdefault(match["source"], []).append(_Version(info, day, match["source"]))
    for sources in by_day.values():
        for versions in sources.values():
            versions.sort(key=lambda v: (v.info.modified, v.info.key))
    return by_day


def apply_archive_retention(
    archive: ObjectStore, *, now: dt.datetime, retention: ArchiveRetention, bronze_sources: BronzeSources
) -> RetentionReport:
    """Delete the archived versions ``retention`` lets go at ``now`` (see the module docstring).

    Bronze is read only for days that have something to delete. The manifest is read again just
    before a day's deletions, so a version a run has just made current again is kept.
    """
    cutoff = (now - retention.keep_all_for).timestamp()
    deleted: list[str] = []
    deleted_bytes = kept = days = 0
    held: list[str] = []
    listing = archive.list()
    history_deleted = 0
    for day, generations in sorted(_history(listing).items()):
        for info in _history_to_delete(archive, generations, cutoff):
            archive.delete(info.key)
            history_deleted += 1
            deleted_bytes += info.size
    for day, sources in sorted(archived_versions(listing).items()):
        candidates = {source: [v for v in versions[:-1] if v.info.modified < cutoff]
                      for source, versions in sources.items()}
        candidates = {source: old for source, old in candidates.items() if old}
        kept += sum(len(v) for v in sources.values()) - sum(len(v) for v in candidates.values())
        if not candidates:
            continue
        days += 1
        manifest = load_manifest(archive, day)
        in_bronze = bronze_sources(day)
        doomed: list[_Version] = []
        for source, old in sorted(candidates.items()):
            current = manifest.files.get(source)
            built_from = in_bronze.get(source)
            if built_from and (current is None or built_from != {dt.datetime.fromisoformat(current.archived_at)}):
                held.append(f"{day.isoformat()}/{source}")
                kept += len(old)
            else:
                doomed += old
        # Read again: a run may have made an old version current since (its bytes came back).
        named = named_versions(load_manifest(archive, day))
        for version in doomed:
            if version.info.key in named:
                kept += 1
                continue
            archive.delete(version.info.key)
            deleted.append(version.info.key)
            deleted_bytes += version.info.size
    return RetentionReport(len(deleted), deleted_bytes, kept, days, held, deleted, history_deleted)


def _history(objects: Iterable[ObjectInfo]) -> dict[dt.date, list[tuple[int, ObjectInfo]]]:
    """Each day's manifest generations, oldest first."""
    by_day: dict[dt.date, list[tuple[int, ObjectInfo]]] = {}
    for info in objects:
        match = _HISTORY_KEY.match(info.key)
        if match:
            by_day.setdefault(dt.date.fromisoformat(match["day"]), []).append((int(match["generation"]), info))
    return {day: sorted(generations, key=lambda g: g[0]) for day, generations in by_day.items()}


def _history_to_delete(archive: ObjectStore, generations: list[tuple[int, ObjectInfo]], cutoff: float) -> list[ObjectInfo]:
    """Generations past the window, but never the newest nor one that retracted or restored a file."""
    if not any(info.modified < cutoff for _, info in generations[:-1]):
        return []
    doomed, retracted_before = [], frozenset()
    for generation, info in generations:
        retracted = frozenset(read_manifest(archive, info.key).retracted)
        audit_record = retracted != retracted_before
        retracted_before = retracted
        if info is not generations[-1][1] and info.modified < cutoff and not audit_record:
            doomed.append(info)
    return doomed


def named_versions(manifest: DayManifest) -> set[str]:
    """Archive keys the day's manifest may read again: never deleted, whatever their age.

    A retraction keeps the version it withdrew, which ``restore`` puts back.
    """
    return ({entry.archive_key for entry in manifest.files.values()}
            | {r.version.archive_key for r in manifest.retracted.values() if r.version})


def bronze_sources_from(tables: Iterable[Table]) -> BronzeSources:
    """Read, per day, which file versions the current bronze snapshot holds rows of.

    ``tables`` are bronze tables carrying ``log_date``, ``source_file`` and ``ingested_at`` (rows
    and quarantine: a file whose every line was bad is only in the latter).
    """
    tables = list(tables)

    def read(day: dt.date) -> dict[str, set[dt.datetime]]:
        found: dict[str, set[dt.datetime]] = {}
        for table in tables:
            rows = table.scan(row_filter=EqualTo("log_date", day.isoformat()),
                              selected_fields=("source_file", "ingested_at")).to_arrow()
            pairs = rows.group_by(["source_file", "ingested_at"]).aggregate([])
            for source, ingested in zip(pc.cast(pairs["source_file"], "string").to_pylist(),
                                        pairs["ingested_at"].to_pylist()):
                found.setdefault(source, set()).add(ingested)
        return found

    return read
