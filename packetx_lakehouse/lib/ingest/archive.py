"""The raw archive: an immutable, content-addressed gzip copy of every file version ingested.

Layout per day: ``date=<YYYY-MM-DD>/<file name>.<sha256[:16]>.gz`` (never overwritten) plus a
``manifest.json`` naming the current version of each source file, and a copy of every manifest
generation under ``manifests/`` (the day's history, retractions included). Bronze is always rebuilt
from the manifest, so a day can be replayed even after the device deleted its landing file.

The manifest's ``generation`` grows by one with every change to the day's source set (a new
version, a retraction or its undoing): it is the day's source version, which every table built
from the day carries, so that a write built from older sources can be recognised and refused.

Which version of a file wins: the **longest** (most complete lines). PacketX only ever appends, so
a landing copy with fewer lines than the ingested version is a mistake (a restored backup, a
truncation); it is recorded as a problem and the longer version stays. A file landed by mistake
is withdrawn with :func:`retract`, which is the only way rows leave the archive's source set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.gzipio import (
    GZIP_CUT_SHORT,
    FileRefused,
    decompress_landing,
    gunzip,
    gzip_deterministic,
)
from packetx_lakehouse.lib.ingest.limits import IngestLimits, text_lines, text_refusal
from packetx_lakehouse.lib.ingest.problems import (
    CUT_SHORT,
    EMPTY,
    ERROR,
    GONE,
    REFUSED,
    RETRACTED,
    SHORTER_COPY,
    SHRUNK,
    LandingProblem,
)
from packetx_lakehouse.lib.storage.objectstore import (
    ObjectInfo,
    ObjectStore,
    ObjectTooLarge,
)

#: A landing object as a listing saw it: ``(key, size, version)``.
LandingState = tuple[str, int, str]


@dataclass(frozen=True)
class LandingRef:
    """The landing object a version was read from (``version``: mtime in ns locally, ETag on S3)."""

    key: str
    size: int
    version: str

    @property
    def state(self) -> LandingState:
        return (self.key, self.size, self.version)


@dataclass(frozen=True)
class ArchivedFile:
    """One source file version in the archive."""

    source_file: str
    sha256: str
    size: int
    archive_key: str
    archived_at: str
    #: Complete lines (None in manifests written before it was recorded).
    lines: int | None = None
    #: The landing object this version was read from (None before it was recorded).
    landing: LandingRef | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, raw: dict) -> ArchivedFile:
        landing = raw.get("landing")
        return cls(**{**raw, "landing": LandingRef(**landing) if landing else None})


@dataclass(frozen=True)
class Retraction:
    """A source withdrawn from its day: who, when, why, and the version it held then (if any)."""

    source_file: str
    retracted_at: str
    retracted_by: str
    reason: str
    version: ArchivedFile | None = None

    def to_json(self) -> dict:
        return {**asdict(self), "version": self.version.to_json() if self.version else None}

    @classmethod
    def from_json(cls, raw: dict) -> Retraction:
        version = raw.get("version")
        return cls(**{**raw, "version": ArchivedFile.from_json(version) if version else None})

    def describe(self) -> str:
        return f"retracted {self.retracted_at} by {self.retracted_by}: {self.reason}"


@dataclass(frozen=True)
class DayManifest:
    """A day's source set: the current version of each source file, and its generation."""

    generation: int
    files: dict[str, ArchivedFile]
    #: Sources withdrawn with ``retract``: never read again, whatever the landing area holds.
    retracted: dict[str, Retraction] = field(default_factory=dict)
    #: Every landing object of the day the last collection looked at: what "already ingested" means.
    seen: frozenset[LandingState] = frozenset()

    def to_json(self) -> bytes:
        return json.dumps({
            "format": MANIFEST_FORMAT,
            "generation": self.generation,
            "files": {name: entry.to_json() for name, entry in sorted(self.files.items())},
            "retracted": {name: entry.to_json() for name, entry in sorted(self.retracted.items())},
            "seen": sorted(list(state) for state in self.seen),
        }, indent=1).encode()


@dataclass(frozen=True)
class DaySources:
    """Everything bronze needs for one day: each file's text and its archive record."""

    files: list[tuple[ArchivedFile, bytes]]
    newly_archived: list[str]
    from_archive_only: list[str]
    #: The manifest generation these files are: the day's source version.
    generation: int = 0
    #: Landing objects (or archived sources) not ingested as they are.
    problems: list[LandingProblem] = field(default_factory=list)
    #: Source -> complete lines the landing still shows of it, for sources that shrank (or are
    #: gone: 0): the archived rows after that line are what is at stake.
    at_stake_after_line: dict[str, int] = field(default_factory=dict)


MANIFEST_FORMAT = 3


def _manifest_key(day: dt.date) -> str:
    return f"date={day.isoformat()}/manifest.json"


def _history_key(day: dt.date, generation: int) -> str:
    return f"date={day.isoformat()}/manifests/generation-{generation:06d}.json"


def load_manifest(archive: ObjectStore, day: dt.date) -> DayManifest:
    """The day's current source set (generation 0 and no files before the first run)."""
    return _load_manifest_versioned(archive, day)[0]


def read_manifest(archive: ObjectStore, key: str) -> DayManifest:
    """One manifest object: the current one, or a generation of the day's history."""
    return _parse_manifest(archive.get(key))


def manifest_at(archive: ObjectStore, day: dt.date, generation: int) -> DayManifest | None:
    """The day's source set as it was at ``generation`` (0: before the first run); None when
    archive retention has deleted that generation's copy."""
    if generation == 0:
        return DayManifest(0, {})
    current = load_manifest(archive, day)
    if current.generation == generation:
        return current
    key = _history_key(day, generation)
    return read_manifest(archive, key) if archive.exists(key) else None


def _load_manifest_versioned(archive: ObjectStore, day: dt.date) -> tuple[DayManifest, str | None]:
    """The manifest and the storage version it was read at (None: no manifest yet)."""
    found = archive.get_versioned(_manifest_key(day))
    return (_parse_manifest(found[0]), found[1]) if found else (DayManifest(0, {}), None)


def _parse_manifest(data: bytes) -> DayManifest:
    raw = json.loads(data)
    if "format" not in raw:
        # Format 1 was the bare {source: entry} map, written by versions before the generation.
        return DayManifest(1, {name: ArchivedFile.from_json(entry) for name, entry in raw.items()})
    return DayManifest(
        raw["generation"],
        {name: ArchivedFile.from_json(entry) for name, entry in raw["files"].items()},
        {name: Retraction.from_json(entry) for name, entry in raw.get("retracted", {}).items()},
        frozenset(tuple(state) for state in raw.get("seen", [])),
    )


def _store_manifest(
    archive: ObjectStore, day: dt.date, manifest: DayManifest, read_at: str | None, *, new_generation: bool
) -> None:
    """The current manifest, written only if it is still what was read at ``read_at``; then, for
    a new generation, its immutable copy in the day's history.

    Two runs changing the day at once: the loser raises ``ObjectChangedError`` and redoes from
    fresh input, so a generation is never reused for other content nor lost. The history copy is
    written after the winning write, so it never holds a losing run's content.
    """
    data = manifest.to_json()
    archive.put_if_unchanged(_manifest_key(day), data, read_at)
    if new_generation:
        archive.put(_history_key(day, manifest.generation), data)


@dataclass(frozen=True)
class _LandingCopy:
    info: ObjectInfo
    text: bytes
    lines: int


def _read_landing(
    landing: ObjectStore, info: ObjectInfo, day: dt.date, limits: IngestLimits, problems: list[LandingProblem]
) -> _LandingCopy | None:
    """One landing object's text within the bounds (possibly empty), or None with the problem recorded."""
    try:
        if info.size > limits.max_file_bytes:
            raise FileRefused(f"{info.size:,} bytes, larger than the {limits.max_file_bytes:,}-byte bound "
                              "(PACKETX_MAX_FILE_BYTES)")
        try:
            raw = landing.get(info.key, max_bytes=limits.max_file_bytes)
        except ObjectTooLarge as exc:  # it grew past the bound after it was listed
            raise FileRefused(f"larger than the {limits.max_file_bytes:,}-byte bound (PACKETX_MAX_FILE_BYTES)") from exc
        text, cut_short = decompress_landing(raw, limits.max_file_bytes)
        refusal = text_refusal(text, limits)
        if refusal:
            raise FileRefused(refusal)
    except FileRefused as exc:
        problems.append(LandingProblem(day, info.key, REFUSED, str(exc), size=info.size))
        return None
    if cut_short:
        problems.append(LandingProblem(day, info.key, CUT_SHORT, GZIP_CUT_SHORT, size=info.size))
    return _LandingCopy(info, text, text_lines(text))


def collect_day(
    landing: ObjectStore,
    archive: ObjectStore,
    day: dt.date,
    landing_objects: list[ObjectInfo],
    *,
    now: dt.datetime,
    limits: IngestLimits = IngestLimits(),
) -> DaySources:
    """Archive every new or grown landing file of ``day`` and return the day's full source set.

    Files are keyed by their user-level name with any ``.gz`` dropped, so ``bob-<day>.csv`` and
    an uploaded ``bob-<day>.csv.gz`` are the same source. The longest version wins (most complete
    lines; a tie goes to the landing copy, the newer, or between two copies to the first key):
    a shorter landing copy never replaces what was ingested, it is recorded as a problem.
    Retracted sources are never read. Files past the ``limits`` are refused, recorded, and the
    day's other files still ingest.
    """
    # The manifest is read BEFORE the landing files, and rewritten only if unchanged since: any
    # text read here is then at least as new as what the manifest names (PacketX only appends).
    manifest, manifest_version = _load_manifest_versioned(archive, day)
    current = dict(manifest.files)
    problems: list[LandingProblem] = []
    copies: dict[str, list[_LandingCopy]] = {}
    for info in sorted(landing_objects, key=lambda o: o.key):
        parsed = parse_log_file_name(info.name)
        if parsed is None or parsed.date != day:
            raise ValueError(f"{landing.describe(info.key)} is not a traffic log of {day}")
        source = parsed.source_file
        if source in manifest.retracted:
            problems.append(LandingProblem(day, info.key, RETRACTED, manifest.retracted[source].describe()
                                           + "; still in the landing area, not ingested", size=info.size))
            continue
        copy = _read_landing(landing, info, day, limits, problems)
        if copy is not None:
            copies.setdefault(source, []).append(copy)

    contents: dict[str, bytes] = {}
    newly: list[str] = []
    at_stake: dict[str, int] = {}
    for source, candidates in sorted(copies.items()):
        best = max(candidates, key=lambda c: c.lines)  # max keeps the first of equals: sorted by key
        for other in candidates:
            if other is not best and other.text != best.text:
                problems.append(LandingProblem(
                    day, other.info.key, SHORTER_COPY,
                    f"{other.lines:,} lines, shorter than {best.info.key} ({best.lines:,}): not ingested",
                    size=other.info.size))
        digest = hashlib.sha256(best.text).hexdigest()
        ref = LandingRef(best.info.key, best.info.size, best.info.version)
        archived = current.get(source)
        if not best.text and archived is None:
            problems.append(LandingProblem(day, best.info.key, EMPTY, "empty file", size=best.info.size))
            continue
        if archived is not None and archived.sha256 == digest:
            current[source] = replace(archived, lines=best.lines, landing=ref)
            contents[source] = best.text
            continue
        archived_lines = None if archived is None else _archived_lines(archive, archived)
        if archived_lines is not None and best.lines < archived_lines:
            problems.append(LandingProblem(
                day, best.info.key, SHRUNK,
                f"shrunk: {best.lines:,} lines where the ingested version has {archived_lines:,}; the longer "
                "version stays (PacketX only appends)", severity=ERROR, size=best.info.size))
            at_stake[source] = best.lines
            continue
        key = f"date={day.isoformat()}/{source}.{digest[:16]}.gz"
        if not archive.exists(key):
            archive.put(key, gzip_deterministic(best.text))
        current[source] = ArchivedFile(source, digest, len(best.text), key, now.isoformat(), best.lines, ref)
        contents[source] = best.text
        newly.append(source)

    present = {info.key for info in landing_objects}
    archived_only = sorted(set(current) - set(contents))
    for source in archived_only:
        entry = current[source]
        if source in at_stake or any(p.log_date == day and _source_of(p.object_key) == source for p in problems):
            pass  # the landing copy is there, and its problem is recorded already
        elif entry.landing is not None and entry.landing.state in manifest.seen and entry.landing.key not in present:
            problems.append(LandingProblem(day, entry.landing.key, GONE,
                                           "gone from the landing area since the last run; still served from "
                                           "the archive (retract it if it was landed by mistake)", severity=ERROR))
            at_stake[source] = 0
        else:
            problems.append(LandingProblem(day, source, GONE, "not in the landing area; served from the archive"))
        contents[source] = _read_archived(archive, entry)
    for source, retraction in sorted(manifest.retracted.items()):
        if not any(_source_of(p.object_key) == source for p in problems):
            problems.append(LandingProblem(day, source, RETRACTED, retraction.describe()))

    generation = manifest.generation + (1 if newly else 0)
    updated = DayManifest(generation, current, manifest.retracted,
                          frozenset((o.key, o.size, o.version) for o in landing_objects))
    if updated != manifest:
        _store_manifest(archive, day, updated, manifest_version, new_generation=bool(newly))
    files = [(current[name], contents[name]) for name in sorted(contents)]
    return DaySources(files, sorted(newly), archived_only, generation, problems, at_stake)


def _source_of(key: str) -> str | None:
    parsed = parse_log_file_name(key.rsplit("/", 1)[-1])
    return parsed.source_file if parsed else key


def _read_archived(archive: ObjectStore, entry: ArchivedFile) -> bytes:
    text = gunzip(archive.get(entry.archive_key))
    if hashlib.sha256(text).hexdigest() != entry.sha256:
        raise ValueError(f"archive object {archive.describe(entry.archive_key)} fails its SHA-256 check")
    return text


def _archived_lines(archive: ObjectStore, entry: ArchivedFile) -> int:
    """Complete lines of an archived version (read back only for manifests that did not record it)."""
    return entry.lines if entry.lines is not None else text_lines(_read_archived(archive, entry))


def source_of_name(name: str) -> tuple[dt.date, str]:
    """The day and source of a file name given by a person (``alice-2026-11-30.csv[.gz]``).

    Raises:
        ValueError: if the name breaks the naming contract.
    """
    parsed = parse_log_file_name(name.rsplit("/", 1)[-1])
    if parsed is None:
        raise ValueError(f"{name!r} is not named <user>-<YYYY-MM-DD>.csv[.gz]")
    return parsed.date, parsed.source_file


def retract(
    archive: ObjectStore, name: str, *, by: str, reason: str, now: dt.datetime
) -> tuple[DayManifest, DayManifest]:
    """Withdraw a day's source file: its rows leave every layer on the day's next run.

    The archived versions stay, and the manifest history records who retracted it, when and
    why. A retracted file still (or again) in the landing area is not ingested; :func:`restore`
    undoes the retraction.

    Returns:
        The manifest before and after (its generation grown by one).

    Raises:
        ValueError: if the name breaks the contract, or is already retracted.
    """
    day, source = source_of_name(name)
    manifest, read_at = _load_manifest_versioned(archive, day)
    if source in manifest.retracted:
        raise ValueError(f"{source} is already retracted ({manifest.retracted[source].describe()})")
    files = dict(manifest.files)
    retraction = Retraction(source, now.isoformat(timespec="seconds"), by, reason, files.pop(source, None))
    updated = DayManifest(manifest.generation + 1, files, {**manifest.retracted, source: retraction}, manifest.seen)
    _store_manifest(archive, day, updated, read_at, new_generation=True)
    return manifest, updated


def restore(archive: ObjectStore, name: str) -> tuple[DayManifest, DayManifest]:
    """Undo a retraction: the version it held counts again, and so does the landing copy (the longer wins).

    Raises:
        ValueError: if the name breaks the contract, or is not retracted.
    """
    day, source = source_of_name(name)
    manifest, read_at = _load_manifest_versioned(archive, day)
    if source not in manifest.retracted:
        raise ValueError(f"{source} is not retracted")
    retracted = dict(manifest.retracted)
    version = retracted.pop(source).version
    files = {**manifest.files, **({source: version} if version else {})}
    # Forget what the landing showed: the day's next run reads the landing copy again.
    updated = DayManifest(manifest.generation + 1, files, retracted, frozenset())
    _store_manifest(archive, day, updated, read_at, new_generation=True)
    return manifest, updated
