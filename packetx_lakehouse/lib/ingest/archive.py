"""The raw archive: an immutable, content-addressed gzip copy of every file version ingested.

Layout per day: ``date=<YYYY-MM-DD>/<file name>.<sha256[:16]>.gz`` (never overwritten) plus a
``manifest.json`` naming the newest version of each source file. Bronze is always rebuilt from
the manifest, so a day can be replayed even after the device deleted its landing file.
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
class DaySources:
    """Everything bronze needs for one day: each file's text and its archive record."""

    files: list[tuple[ArchivedFile, bytes]]
    newly_archived: list[str]
    from_archive_only: list[str]


def _manifest_key(day: dt.date) -> str:
    return f"date={day.isoformat()}/manifest.json"


def load_manifest(archive: ObjectStore, day: dt.date) -> dict[str, ArchivedFile]:
    """The newest archived version of each source file of ``day`` (empty before the first run)."""
    key = _manifest_key(day)
    if not archive.exists(key):
        return {}
    raw = json.loads(archive.get(key))
    return {name: ArchivedFile(**entry) for name, entry in raw.items()}


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
    manifest = load_manifest(archive, day)
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
        if source in manifest and manifest[source].sha256 == digest:
            continue
        key = f"date={day.isoformat()}/{source}.{digest[:16]}.gz"
        if not archive.exists(key):
            archive.put(key, gzip_deterministic(text))
        manifest[source] = ArchivedFile(source, digest, len(text), key, now.isoformat())
        newly.append(source)
    if newly:
        archive.put(_manifest_key(day), json.dumps({k: asdict(v) for k, v in sorted(manifest.items())}, indent=1).encode())
    archived_only = sorted(set(manifest) - set(contents))
    for source in archived_only:
        text = gunzip(archive.get(manifest[source].archive_key))
        if hashlib.sha256(text).hexdigest() != manifest[source].sha256:
            raise ValueError(f"archive object {archive.describe(manifest[source].archive_key)} fails its SHA-256 check")
        contents[source] = text
    files = [(manifest[name], contents[name]) for name in sorted(contents)]
    return DaySources(files, sorted(newly), archived_only)
