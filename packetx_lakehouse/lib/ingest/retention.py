"""Raw-archive retention: every archive object for a while, then only what a manifest may read.

The archive keeps a gzip copy of every byte it ingests, as parts of each file's version (see
``archive.py``). Objects become unnamed when a file is replaced by a new version (a rewrite, a
shorter copy winning after a retraction...) or when parts are merged into a bigger one; they
are worth keeping for a while (to replay a past run exactly), not for ever.

Policy (``docs/operations.md``): an object younger than ``keep_all_for`` is kept. Older ones are
deleted unless one of these holds:

- the day's manifest names it (a part of the current version of a file, or of a retracted one);
- it is the newest archived object of its file;
- the day's bronze was not built from the manifest's generation (bronze lags the archive after a
  failed run): then every object of the day is kept, because bronze may still need the bytes of a
  version the manifest no longer names.

The day's manifest history (``date=<day>/manifests/generation-N.json``, one per replacement or
withdrawal of bytes and one of the state before it) follows the same window: older generations are deleted, except the newest and
every generation that retracted a file or undid a retraction, which stay as the audit record.

Other keys are never touched.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pyiceberg.table import Table

from packetx_lakehouse.lib.ingest.archive import (
    DayManifest,
    load_manifest,
    read_manifest,
)
from packetx_lakehouse.lib.storage.iceberg import source_generations
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

_VERSION_KEY = re.compile(r"^date=(?P<day>\d{4}-\d{2}-\d{2})/(?P<source>[^/]+)\.(?P<digest>[0-9a-f]{16})\.gz$")
_HISTORY_KEY = re.compile(r"^date=(?P<day>\d{4}-\d{2}-\d{2})/manifests/generation-(?P<generation>\d+)\.json$")

#: ``day -> the source generation bronze holds for it`` (0: none).
BronzeGeneration = Callable[[dt.date], int]


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
    archive: ObjectStore, *, now: dt.datetime, retention: ArchiveRetention, bronze_generation: BronzeGeneration
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
        lagging = bronze_generation(day) < manifest.generation
        doomed: list[_Version] = []
        for source, old in sorted(candidates.items()):
            if lagging:
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
    versions = [*manifest.files.values(), *(r.version for r in manifest.retracted.values() if r.version)]
    return {part.key for entry in versions for part in entry.parts}


def bronze_generation_from(table: Table | None) -> BronzeGeneration:
    """The source generation bronze (``table``, None: not created yet) records for each day."""
    if table is None:
        return lambda day: 0
    return lambda day: source_generations(table, [day])[day]
