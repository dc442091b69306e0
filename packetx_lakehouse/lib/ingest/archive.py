"""The raw archive: an immutable, content-addressed gzip copy of every file version ingested.

Layout per day: ``date=<YYYY-MM-DD>/<file name>.<sha256[:16]>.gz`` (never overwritten) plus a
``manifest.json`` naming the current version of each source file. Bronze is always rebuilt from
the manifest, so a day can be replayed even after the device deleted its landing file.

The manifest's ``generation`` grows by one with every change to the day's source set: it is the
day's source version, which every table built from the day carries, so that a write built from
older sources can be recognised and refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.gzipio import (
    decompress_if_gzip,
    gunzip,
    gzip_deterministic,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore


@dataclass(frozen=True)
class ArchivedFile:
    """One source file version in the archive."""

    source_file: str
    sha256: str
    size: int
    archive_key: str
    archived_at: str


@dataclass(frozen=True)
class DayManifest:
    """A day's source set: the current version of each source file, and its generation."""

    generation: int
    files: dict[str, ArchivedFile]

    def to_json(self) -> bytes:
        files = {name: asdict(entry) for name, entry in sorted(self.files.items())}
        return json.dumps({"format": MANIFEST_FORMAT, "generation": self.generation, "files": files},
                          indent=1).encode()


@dataclass(frozen=True)
class DaySources:
    """Everything bronze needs for one day: each file's text and its archive record."""

    files: list[tuple[ArchivedFile, bytes]]
    newly_archived: list[str]
    from_archive_only: list[str]
    #: The manifest generation these files are: the day's source version.
    generation: int = 0


MANIFEST_FORMAT = 2


def _manifest_key(day: dt.date) -> str:
    return f"date={day.isoformat()}/manifest.json"


def load_manifest(archive: ObjectStore, day: dt.date) -> DayManifest:
    """The day's current source set (generation 0 and no files before the first run)."""
    return _load_manifest_versioned(archive, day)[0]


def _load_manifest_versioned(archive: ObjectStore, day: dt.date) -> tuple[DayManifest, str | None]:
    """The manifest and the storage version it was read at (None: no manifest yet)."""
    found = archive.get_versioned(_manifest_key(day))
    return (_parse_manifest(found[0]), found[1]) if found else (DayManifest(0, {}), None)


def _parse_manifest(data: bytes) -> DayManifest:
    raw = json.loads(data)
    if raw.get("format") != MANIFEST_FORMAT:
        # Format 1 was the bare {source: entry} map, written by versions before the generation.
        return DayManifest(1, {name: ArchivedFile(**entry) for name, entry in raw.items()})
    return DayManifest(raw["generation"], {name: ArchivedFile(**entry) for name, entry in raw["files"].items()})


def collect_day(
    landing: ObjectStore,
    archive: ObjectStore,
    day: dt.date,
    landing_objects: list[ObjectInfo],
    *,
    now: dt.datetime,
) -> DaySources:
    """Archive every new or changed landing file of ``day`` and return the day's full source set.

    Files are keyed by their user-level name with any ``.gz`` dropped, so ``bob-<day>.csv`` and
    an uploaded ``bob-<day>.csv.gz`` are the same source. When both are present the longer text
    wins: PacketX only ever appends, so the longer copy is the newer one (ties: first key).
    """
    # The manifest is read BEFORE the landing files, and rewritten only if unchanged since: any
    # text read here is then at least as new as what the manifest names (PacketX only appends).
    manifest, manifest_version = _load_manifest_versioned(archive, day)
    current = dict(manifest.files)
    contents: dict[str, bytes] = {}
    for info in sorted(landing_objects, key=lambda o: o.key):
        parsed = parse_log_file_name(info.name)
        if parsed is None or parsed.date != day:
            raise ValueError(f"{landing.describe(info.key)} is not a traffic log of {day}")
        source = f"{parsed.user}-{parsed.partition_key}.csv"
        text = decompress_if_gzip(landing.get(info.key))
        if len(text) > len(contents.get(source, b"")) or source not in contents:
            contents[source] = text
    newly: list[str] = []
    for source, text in sorted(contents.items()):
        digest = hashlib.sha256(text).hexdigest()
        if source in current and current[source].sha256 == digest:
            continue
        key = f"date={day.isoformat()}/{source}.{digest[:16]}.gz"
        if not archive.exists(key):
            archive.put(key, gzip_deterministic(text))
        current[source] = ArchivedFile(source, digest, len(text), key, now.isoformat())
        newly.append(source)
    generation = manifest.generation
    if newly:
        generation += 1
        # Two runs archiving the day at once: the loser raises ObjectChangedError and redoes from
        # fresh input, so a generation is never reused for other content or lost.
        archive.put_if_unchanged(_manifest_key(day), DayManifest(generation, current).to_json(), manifest_version)
    archived_only = sorted(set(current) - set(contents))
    for source in archived_only:
        text = gunzip(archive.get(current[source].archive_key))
        if hashlib.sha256(text).hexdigest() != current[source].sha256:
            raise ValueError(f"archive object {archive.describe(current[source].archive_key)} fails its SHA-256 check")
        contents[source] = text
    files = [(current[name], contents[name]) for name in sorted(contents)]
    return DaySources(files, sorted(newly), archived_only, generation)
