"""The raw archive: an immutable, content-addressed gzip copy of every line ever ingested.

Layout per day: ``date=<YYYY-MM-DD>/<file name>.<sha256[:16]>.gz`` objects (never overwritten)
plus a ``manifest.json`` naming the current version of each source file, and a copy of the
manifest under ``manifests/`` for every generation that changed the day's source set other than
by appending (a new version of a file, a retraction or its undoing): the day's audit history.
Bronze is always rebuilt from the manifest, so a day can be replayed even after the device
deleted its landing file.

A version is a chain of **parts**. A file read whole is one part; a file that grew (PacketX
appends a block every minute) gains a part holding its new bytes, so the archive stores each
byte once instead of a whole copy per growth. Parts are merged as they accumulate (16 of one
size into one of the next, as a log-structured merge does), which keeps a day's manifest small
and every byte rewritten only a few times. A version's digest is the SHA-256 of its content for
one part, else of its parts' digests in order; each part carries its own SHA-256.

The manifest's ``generation`` grows by one with every change to the day's source set (new
bytes, a new version, a retraction or its undoing): it is the day's source version, which every
table built from the day carries, so that a write built from older sources can be recognised and
refused. Each part records the generation that archived it.

Which version of a file wins: the **longest** (most complete lines). PacketX only ever appends, so
a landing copy with fewer lines than the ingested version is a mistake (a restored backup, a
truncation); it is recorded as a problem and the longer version stays. A file landed by mistake
is withdrawn with :func:`retract`, which is the only way rows leave the archive's source set.

Two ways to take a day's landing files in: :func:`collect_day` reads every file whole and proves
every byte (backfills, replays, the daily run); :func:`collect_tails` reads only what each file
gained since the archive took it in (the live refresh), after checking that the bytes just before
that point are still the ones archived, and gives up, for :func:`collect_day` to do it the careful
way, on anything else (a file that shrank or was rewritten, a second copy, a retraction, an
archived file gone from the landing area).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
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
#: Bytes before a refresh's offset that must still be the archived ones: PacketX only appends, so
#: a file rewritten or replaced since (a restored backup, another device's copy) differs there.
#: About five minutes of a busy device's lines; the careful read proves every byte.
BOUNDARY_BYTES = 64 * 1024
#: Parts of one level merged into one part of the next (see the module docstring).
PARTS_PER_MERGE = 16
#: The level of a part holding a file read whole (or a first read of over ``MERGE_BELOW`` bytes):
#: it is never rewritten by a merge.
WHOLE_LEVEL = 1_000
MERGE_BELOW = 1 << 20


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
class Part:
    """A run of a version's bytes in one archive object."""

    key: str
    size: int
    #: LF-ended lines in the part (a last line without LF is not counted).
    lines: int
    sha256: str
    archived_at: str
    #: The manifest generation that archived it, and for a merged part the oldest it holds
    #: (None: before parts were recorded).
    generation: int | None = None
    from_generation: int | None = None
    #: 0 for a refresh's new bytes; n + 1 for a merge of ``PARTS_PER_MERGE`` parts of level n;
    #: ``WHOLE_LEVEL`` for a file read whole, never merged again.
    level: int = 0

    def to_json(self) -> list:
        return [self.key, self.size, self.lines, self.sha256, self.archived_at, self.generation, self.from_generation,
                self.level]

    @classmethod
    def from_json(cls, raw: list) -> Part:
        return cls(*raw)


@dataclass(frozen=True)
class ArchivedFile:
    """One source file version in the archive: a chain of parts."""

    source_file: str
    #: The version's digest: its content's SHA-256 for one part, else that of its parts' digests.
    sha256: str
    size: int
    #: Complete lines (None in manifests written before it was recorded).
    lines: int | None
    parts: tuple[Part, ...]
    #: The landing object this version was read from (None before it was recorded).
    landing: LandingRef | None = None
    #: SHA-256 of the last ``BOUNDARY_BYTES`` of the content (None: not recorded).
    boundary_sha256: str | None = None

    @property
    def archive_key(self) -> str:
        """The first part's object (the whole version when it has one part)."""
        return self.parts[0].key

    @property
    def archived_at(self) -> str:
        """When the newest part was archived."""
        return self.parts[-1].archived_at

    #: Whether the content ends with a newline (False: its last line is cut short).
    ends_with_lf: bool = True

    @property
    def extendable(self) -> bool:
        """Whether new bytes can follow it as a part: its lines are whole and its boundary known."""
        return self.lines is not None and self.boundary_sha256 is not None and self.ends_with_lf

    def to_json(self) -> dict:
        raw = {"source_file": self.source_file, "sha256": self.sha256, "size": self.size, "lines": self.lines,
               "parts": [p.to_json() for p in self.parts], "ends_with_lf": self.ends_with_lf}
        if self.landing:
            raw["landing"] = asdict(self.landing)
        if self.boundary_sha256:
            raw["boundary_sha256"] = self.boundary_sha256
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> ArchivedFile:
        landing = LandingRef(**raw["landing"]) if raw.get("landing") else None
        if "parts" not in raw:  # manifests before format 4: one object per version
            part = Part(raw["archive_key"], raw["size"], raw.get("lines") or 0, raw["sha256"], raw["archived_at"])
            return cls(raw["source_file"], raw["sha256"], raw["size"], raw.get("lines"), (part,), landing)
        return cls(raw["source_file"], raw["sha256"], raw["size"], raw["lines"],
                   tuple(Part.from_json(p) for p in raw["parts"]), landing, raw.get("boundary_sha256"),
                   raw.get("ends_with_lf", True))


def version_digest(parts: Sequence[Part]) -> str:
    """A version's digest from its parts (see ``ArchivedFile.sha256``)."""
    if len(parts) == 1:
        return parts[0].sha256
    return hashlib.sha256("".join(p.sha256 for p in parts).encode()).hexdigest()


def digest_as_parts(text: bytes, sizes: Sequence[int]) -> str | None:
    """The digest ``text`` would have cut into parts of ``sizes`` (None if it is too short)."""
    if sum(sizes) > len(text):
        return None
    if len(sizes) == 1:
        return hashlib.sha256(text[: sizes[0]]).hexdigest()
    digests, start = [], 0
    for size in sizes:
        digests.append(hashlib.sha256(text[start:start + size]).hexdigest())
        start += size
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _boundary(text: bytes) -> str:
    return hashlib.sha256(text[-BOUNDARY_BYTES:]).hexdigest()


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
    #: The newest generation that replaced or withdrew bytes (0: every generation only appended):
    #: the generations after it are its state plus parts, which ``manifest_at`` and the new-lines
    #: path rely on.
    replaced_at: int = 0

    def to_json(self) -> bytes:
        return json.dumps({
            "format": MANIFEST_FORMAT,
            "generation": self.generation,
            "replaced_at": self.replaced_at,
            "files": {name: entry.to_json() for name, entry in sorted(self.files.items())},
            "retracted": {name: entry.to_json() for name, entry in sorted(self.retracted.items())},
            "seen": sorted(list(state) for state in self.seen),
        }, separators=(",", ":")).encode()


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


MANIFEST_FORMAT = 4


def _manifest_key(day: dt.date) -> str:
    return f"date={day.isoformat()}/manifest.json"


_MANIFEST_KEY = re.compile(r"date=(\d{4}-\d{2}-\d{2})/manifest\.json")


def archived_days(archive: ObjectStore) -> list[dt.date]:
    """The days the archive keeps a manifest for: ingested once, whatever is left of them (a
    retraction empties a day's source set, not its manifest)."""
    found = (_MANIFEST_KEY.fullmatch(info.key) for info in archive.list())
    return sorted(dt.date.fromisoformat(match[1]) for match in found if match)


def _history_key(day: dt.date, generation: int) -> str:
    return f"date={day.isoformat()}/manifests/generation-{generation:06d}.json"


def _part_key(day: dt.date, source: str, digest: str) -> str:
    return f"date={day.isoformat()}/{source}.{digest[:16]}.gz"


def load_manifest(archive: ObjectStore, day: dt.date) -> DayManifest:
    """The day's current source set (generation 0 and no files before the first run)."""
    return _load_manifest_versioned(archive, day)[0]


def read_manifest(archive: ObjectStore, key: str) -> DayManifest:
    """One manifest object: the current one, or a generation of the day's history."""
    return _parse_manifest(archive.get(key))


def manifest_at(archive: ObjectStore, day: dt.date, generation: int) -> DayManifest | None:
    """The day's source set as it was at ``generation`` (0: before the first run); None when
    archive retention has deleted what it was read from.

    A generation that only appended has no copy of its own: it is the next state kept (a copy, or
    the current manifest) with each file cut to the parts it had then, provided nothing was
    replaced in between. A merged part that straddles the generation leaves that file's line
    count and digest unknown (``lines`` None, ``sha256`` empty).
    """
    if generation == 0:
        return DayManifest(0, {})
    current = load_manifest(archive, day)
    if current.generation == generation:
        return current
    key = _history_key(day, generation)
    if archive.exists(key):
        return read_manifest(archive, key)
    later = sorted(g for g in _history_generations(archive, day) if g > generation)
    base = read_manifest(archive, _history_key(day, later[0])) if later else current
    if base.generation < generation or base.replaced_at > generation:
        return None
    files = {name: cut for name, entry in base.files.items() if (cut := _as_of(entry, generation)) is not None}
    return DayManifest(generation, files, base.retracted, frozenset(), base.replaced_at)


def lines_to_read(manifest: DayManifest) -> int | None:
    """The lines a whole read of the day's current files reads: each file's complete lines, plus
    its last line when that is cut short (the reader judges it too; a refresh never extends such a
    file). None when a file's count is unknown (a manifest written before counts were recorded, or
    a generation inside a merged part). Retracted sources are not the day's: not counted."""
    total = 0
    for entry in manifest.files.values():
        if entry.lines is None:
            return None
        total += entry.lines + (entry.size > 0 and not entry.ends_with_lf)
    return total


def _history_generations(archive: ObjectStore, day: dt.date) -> list[int]:
    prefix = _history_key(day, 0).rsplit("/", 1)[0] + "/"
    return [int(info.key.rsplit("-", 1)[1].removesuffix(".json")) for info in archive.list(prefix)]


def _as_of(entry: ArchivedFile, generation: int) -> ArchivedFile | None:
    """A version cut to the parts it had at ``generation`` (None: it did not exist yet)."""
    kept = [p for p in entry.parts if (p.from_generation or p.generation or 0) <= generation]
    if len(kept) == len(entry.parts) and all((p.generation or 0) <= generation for p in kept):
        return entry
    if not kept:
        return None
    whole = [p for p in kept if (p.generation or 0) <= generation]
    if len(whole) < len(kept):  # a merged part holds bytes of both sides: the size is all that is known
        return ArchivedFile(entry.source_file, "", sum(p.size for p in whole), None, tuple(whole), entry.landing)
    return ArchivedFile(entry.source_file, version_digest(whole), sum(p.size for p in whole),
                        sum(p.lines for p in whole), tuple(whole), entry.landing)


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
        # Unrecorded: any generation may have replaced bytes.
        raw.get("replaced_at", raw["generation"]),
    )


def _store_manifest(
    archive: ObjectStore, day: dt.date, manifest: DayManifest, read_at: str | None, *,
    previous: DayManifest | None = None,
) -> None:
    """The current manifest, written only if it is still what was read at ``read_at``; then, for
    a change other than appended bytes (given the ``previous`` state), immutable copies of both
    states in the day's history.

    Appending generations get no copy (one a minute would double the archive's writes): each is
    the next copy's or the current manifest's state cut to its parts (``manifest_at``), which the
    copy of the state before a replacement makes possible.

    Two runs changing the day at once: the loser raises ``ObjectChangedError`` and redoes from
    fresh input, so a generation is never reused for other content nor lost. The history copies
    are written after the winning write, so they never hold a losing run's content.
    """
    data = manifest.to_json()
    archive.put_if_unchanged(_manifest_key(day), data, read_at)
    if previous is not None:
        if previous.generation and not archive.exists(_history_key(day, previous.generation)):
            archive.put(_history_key(day, previous.generation), previous.to_json())
        archive.put(_history_key(day, manifest.generation), data)


def read_version(archive: ObjectStore, entry: ArchivedFile) -> bytes:
    """A version's content, every part checked against its SHA-256."""
    return b"".join(_read_part(archive, part) for part in entry.parts)


def _read_part(archive: ObjectStore, part: Part) -> bytes:
    text = gunzip(archive.get(part.key))
    if hashlib.sha256(text).hexdigest() != part.sha256:
        raise ValueError(f"archive object {archive.describe(part.key)} fails its SHA-256 check")
    return text


def _archive_part(
    archive: ObjectStore, day: dt.date, source: str, text: bytes, now: dt.datetime, generation: int,
    level: int | None = None, from_generation: int | None = None,
) -> Part:
    """Store ``text`` as a part (content-addressed: an object that exists already is not written again)."""
    digest = hashlib.sha256(text).hexdigest()
    key = _part_key(day, source, digest)
    if not archive.exists(key):
        archive.put(key, gzip_deterministic(text))
    if level is None:
        level = 0 if len(text) < MERGE_BELOW else WHOLE_LEVEL
    return Part(key, len(text), text.count(b"\n"), digest, now.isoformat(), generation,
                generation if from_generation is None else from_generation, level)


def _merged(archive: ObjectStore, day: dt.date, source: str, parts: tuple[Part, ...], now: dt.datetime) -> tuple[Part, ...]:
    """``parts`` with each trailing run of ``PARTS_PER_MERGE`` parts of one level merged into one.

    Like a binary counter in base ``PARTS_PER_MERGE``: a day of minute-by-minute parts keeps a few
    dozen, and each byte is rewritten about log16(refreshes) times, never a whole file.
    """
    parts = list(parts)
    while len(parts) >= PARTS_PER_MERGE:
        run = parts[-PARTS_PER_MERGE:]
        level = run[0].level
        if level >= WHOLE_LEVEL or any(p.level != level for p in run):
            break
        text = b"".join(_read_part(archive, p) for p in run)
        merged = _archive_part(archive, day, source, text, now, run[-1].generation, level + 1, run[0].from_generation)
        parts[-PARTS_PER_MERGE:] = [replace(merged, archived_at=run[-1].archived_at)]
    return tuple(parts)


def _grown(
    archive: ObjectStore, day: dt.date, entry: ArchivedFile | None, source: str, new: bytes, before: bytes,
    ref: LandingRef, now: dt.datetime, generation: int,
) -> ArchivedFile:
    """``entry`` (None: a file not archived yet) followed by the bytes ``new``; ``before`` ends with
    the bytes the archive held just before them (for the new boundary digest)."""
    part = _archive_part(archive, day, source, new, now, generation)
    if entry is None:
        return ArchivedFile(source, part.sha256, part.size, part.lines, (part,), ref, _boundary(new), new.endswith(b"\n"))
    parts = _merged(archive, day, source, (*entry.parts, part), now)
    return ArchivedFile(source, version_digest(parts), entry.size + part.size, (entry.lines or 0) + part.lines, parts,
                        ref, _boundary(before[-BOUNDARY_BYTES:] + new), new.endswith(b"\n"))


def _whole(archive: ObjectStore, day: dt.date, source: str, text: bytes, ref: LandingRef, now: dt.datetime,
           generation: int) -> ArchivedFile:
    """A version read whole: one part, never merged."""
    part = _archive_part(archive, day, source, text, now, generation, WHOLE_LEVEL)
    return ArchivedFile(source, part.sha256, part.size, text_lines(text), (part,), ref, _boundary(text),
                        text.endswith(b"\n"))


# --- reading a day's landing files whole ------------------------------------------------------


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
        text, cut_short = decompress_landing(raw, limits.max_file_bytes, named_gzip=info.name.endswith(".gz"))
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
    a shorter landing copy never replaces what was ingested, it is recorded as a problem. A
    copy that extends the archived version (every archived byte proven equal) adds a part with
    its new bytes. Retracted sources are never read. Files past the ``limits`` are refused,
    recorded, and the day's other files still ingest.
    """
    # The manifest is read BEFORE the landing files, and rewritten only if unchanged since: any
    # text read here is then at least as new as what the manifest names (PacketX only appends).
    manifest, manifest_version = _load_manifest_versioned(archive, day)
    problems: list[LandingProblem] = []
    copies = _landing_copies(landing, day, landing_objects, manifest, limits, problems)
    generation = manifest.generation + 1
    current = dict(manifest.files)
    contents: dict[str, bytes] = {}
    newly: list[str] = []
    replaced = False
    at_stake: dict[str, int] = {}
    for source, candidates in sorted(copies.items()):
        best = max(candidates, key=lambda c: c.lines)  # max keeps the first of equals: sorted by key
        problems += _shorter_copies(day, best, candidates)
        ref = LandingRef(best.info.key, best.info.size, best.info.version)
        archived = current.get(source)
        if not best.text and archived is None:
            problems.append(LandingProblem(day, best.info.key, EMPTY, "empty file", size=best.info.size))
            continue
        sizes = [p.size for p in archived.parts] if archived else []
        if archived is not None and len(best.text) == archived.size and digest_as_parts(best.text, sizes) == archived.sha256:
            current[source] = replace(archived, landing=ref)
            contents[source] = best.text
            continue
        if archived is not None and archived.lines is not None and best.lines < archived.lines:
            problems.append(LandingProblem(
                day, best.info.key, SHRUNK,
                f"shrunk: {best.lines:,} lines where the ingested version has {archived.lines:,}; the longer "
                "version stays (PacketX only appends)", severity=ERROR, size=best.info.size))
            at_stake[source] = best.lines
            continue
        if archived is not None and len(best.text) > archived.size \
                and digest_as_parts(best.text[: archived.size], sizes) == archived.sha256:
            current[source] = _grown(archive, day, archived, source, best.text[archived.size:],
                                     best.text[: archived.size], ref, now, generation)
        else:
            replaced |= archived is not None
            current[source] = _whole(archive, day, source, best.text, ref, now, generation)
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
        contents[source] = read_version(archive, entry)
    problems += _retraction_problems(day, manifest, problems)

    generation = generation if newly else manifest.generation
    updated = DayManifest(generation, current, manifest.retracted,
                          frozenset((o.key, o.size, o.version) for o in landing_objects),
                          generation if replaced else manifest.replaced_at)
    if updated != manifest:
        _store_manifest(archive, day, updated, manifest_version, previous=manifest if replaced else None)
    files = [(current[name], contents[name]) for name in sorted(contents)]
    return DaySources(files, sorted(newly), archived_only, generation, problems, at_stake)


def _landing_copies(
    landing: ObjectStore, day: dt.date, objects: list[ObjectInfo], manifest: DayManifest, limits: IngestLimits,
    problems: list[LandingProblem],
) -> dict[str, list[_LandingCopy]]:
    """Every readable landing copy of the day's sources that are not retracted, by source."""
    copies: dict[str, list[_LandingCopy]] = {}
    for info in sorted(objects, key=lambda o: o.key):
        source = _day_source(landing, info, day)
        if source in manifest.retracted:
            problems.append(LandingProblem(day, info.key, RETRACTED, manifest.retracted[source].describe()
                                           + "; still in the landing area, not ingested", size=info.size))
            continue
        copy = _read_landing(landing, info, day, limits, problems)
        if copy is not None:
            copies.setdefault(source, []).append(copy)
    return copies


def _day_source(landing: ObjectStore, info: ObjectInfo, day: dt.date) -> str:
    parsed = parse_log_file_name(info.name)
    if parsed is None or parsed.date != day:
        raise ValueError(f"{landing.describe(info.key)} is not a traffic log of {day}")
    return parsed.source_file


def _shorter_copies(day: dt.date, best: _LandingCopy, candidates: list[_LandingCopy]) -> list[LandingProblem]:
    return [LandingProblem(day, other.info.key, SHORTER_COPY,
                           f"{other.lines:,} lines, shorter than {best.info.key} ({best.lines:,}): not ingested",
                           size=other.info.size)
            for other in candidates if other is not best and other.text != best.text]


def _retraction_problems(day: dt.date, manifest: DayManifest, problems: list[LandingProblem]) -> list[LandingProblem]:
    return [LandingProblem(day, source, RETRACTED, retraction.describe())
            for source, retraction in sorted(manifest.retracted.items())
            if not any(_source_of(p.object_key) == source for p in problems)]


def _source_of(key: str) -> str | None:
    parsed = parse_log_file_name(key.rsplit("/", 1)[-1])
    return parsed.source_file if parsed else key


# --- reading only what the day's files gained ----------------------------------------------------


@dataclass(frozen=True)
class Tail:
    """A source's lines that the table being fed does not hold yet, and where they came from."""

    entry: ArchivedFile
    text: bytes
    #: Line number of ``text``'s first line in the file.
    first_line: int
    #: ``(lines, archived_at)`` of each part ``text`` spans, in order: each row's ingest time.
    stamps: tuple[tuple[int, str], ...]
    #: Bytes of a last line still being written, left for the next refresh.
    pending: int = 0
    #: Whether this collection archived bytes of it (rather than only reading what was archived).
    newly_archived: bool = False


@dataclass(frozen=True)
class DayTails:
    """What a day's landing files gained since a table took in generation ``since``."""

    since: int
    #: The day's source generation after this collection (its manifest's).
    generation: int
    tails: list[Tail]
    problems: list[LandingProblem] = field(default_factory=list)


def collect_tails(
    landing: ObjectStore,
    archive: ObjectStore,
    day: dt.date,
    landing_objects: list[ObjectInfo],
    *,
    since: int,
    now: dt.datetime,
    limits: IngestLimits = IngestLimits(),
) -> DayTails | None:
    """Archive what each landing file of ``day`` gained, and return every line added since generation ``since``.

    ``since`` is the generation the table being fed holds: the lines it lacks are the parts the
    archive took in after it (a run that archived and then stopped) plus what the landing files
    gained now. Only whole lines are taken; a last line still being written waits for the next
    refresh. A file's growth is taken only when it follows what the archive holds: the file is
    not shorter, and its ``BOUNDARY_BYTES`` before the archived end are the archived ones.

    Returns:
        None when the day needs the careful whole read (``collect_day``): a file shrank or was
        rewritten, a source has two landing copies, an archived file is gone from the landing
        area, a retraction or new version was made since ``since``, a bound is passed, or a part
        spans ``since``.
    """
    manifest, manifest_version = _load_manifest_versioned(archive, day)
    if since > manifest.generation or manifest.replaced_at > since:
        return None
    objects = {}
    for info in landing_objects:
        source = _day_source(landing, info, day)
        if source in objects:
            return None  # a second copy (plain and .gz): which one wins is the careful read's call
        objects[source] = info
    if set(manifest.files) - set(objects):
        return None  # an archived file left the landing area: a problem the careful read records
    problems = [LandingProblem(day, info.key, RETRACTED, manifest.retracted[source].describe()
                               + "; still in the landing area, not ingested", size=info.size)
                for source, info in sorted(objects.items()) if source in manifest.retracted]
    generation = manifest.generation + 1
    current = dict(manifest.files)
    grown: dict[str, tuple[bytes, int]] = {}
    for source, info in sorted(objects.items()):
        if source in manifest.retracted:
            continue
        growth = _growth(landing, info, current.get(source), limits)
        if growth is None:
            return None
        new, before, pending = growth
        if new:
            ref = LandingRef(info.key, info.size, info.version)
            current[source] = _grown(archive, day, current.get(source), source, new, before, ref, now, generation)
            grown[source] = (new, pending)
        elif pending:
            grown[source] = (b"", pending)
    generation = generation if any(new for new, _ in grown.values()) else manifest.generation
    updated = DayManifest(generation, current, manifest.retracted,
                          frozenset((o.key, o.size, o.version) for o in landing_objects), manifest.replaced_at)
    if updated != manifest:
        _store_manifest(archive, day, updated, manifest_version)
    tails = []
    for source, entry in sorted(current.items()):
        tail = _tail_since(archive, entry, since, manifest.generation, *grown.get(source, (b"", 0)))
        if tail is None:
            return None
        if tail.text or tail.pending:
            tails.append(tail)
    return DayTails(since, generation, tails, problems)


def _growth(landing: ObjectStore, info: ObjectInfo, entry: ArchivedFile | None,
            limits: IngestLimits) -> tuple[bytes, bytes, int] | None:
    """``(new whole lines, the archived bytes just before them, bytes of a cut last line)`` of a
    landing file, or None when it does not simply follow what the archive holds."""
    if info.size > limits.max_file_bytes:
        return None
    archived = 0 if entry is None else entry.size
    if entry is not None and not entry.extendable:
        return None
    try:
        if info.name.endswith(".gz"):
            text, cut_short = decompress_landing(landing.get(info.key, max_bytes=limits.max_file_bytes),
                                                 limits.max_file_bytes, named_gzip=True)
            if cut_short:
                return None
            start = max(0, archived - BOUNDARY_BYTES)
            data, offset = text[start:], start
        else:
            if info.size < archived:
                return None
            offset = max(0, archived - BOUNDARY_BYTES)
            data = landing.get_range(info.key, offset, limits.max_file_bytes)
    except (FileRefused, ObjectTooLarge):
        return None
    before, rest = data[: archived - offset], data[archived - offset:]
    if len(before) != archived - offset or (entry is not None and _boundary(before) != entry.boundary_sha256):
        return None  # shrunk, or rewritten before the point the archive reached
    whole = rest[: rest.rfind(b"\n") + 1]
    if whole and (text_refusal(whole, limits) or (entry.lines if entry else 0) + text_lines(whole) > limits.max_file_lines):
        return None
    return whole, before, len(rest) - len(whole)


def _tail_since(archive: ObjectStore, entry: ArchivedFile, since: int, manifest_generation: int, new: bytes,
                pending: int) -> Tail | None:
    """The lines of ``entry``'s parts archived after generation ``since`` (``new``: a part's text in hand).

    None when a part spans ``since`` (a merge of parts from both sides), or predates recorded
    generations while the table may lack some of it.
    """
    def held(part: Part) -> bool:
        if part.generation is None:  # archived before generations were recorded per part
            return since >= manifest_generation
        return part.generation <= since

    later = [p for p in entry.parts if not held(p)]
    if any(p.generation is None or p.from_generation <= since for p in later):
        return None
    held_lines = sum(p.lines for p in entry.parts if held(p))
    in_hand = {hashlib.sha256(new).hexdigest(): new} if new else {}
    text = b"".join(in_hand.get(p.sha256) or _read_part(archive, p) for p in later)
    return Tail(entry, text, held_lines + 1, tuple((p.lines, p.archived_at) for p in later), pending,
                newly_archived=bool(new))


def stamps_of(entry: ArchivedFile) -> tuple[tuple[int, str], ...]:
    """``(lines, archived_at)`` of every part of a version: each of its rows' ingest time."""
    return tuple((p.lines, p.archived_at) for p in entry.parts)


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
    updated = DayManifest(manifest.generation + 1, files, {**manifest.retracted, source: retraction}, manifest.seen,
                          manifest.generation + 1)
    _store_manifest(archive, day, updated, read_at, previous=manifest)
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
    updated = DayManifest(manifest.generation + 1, files, retracted, frozenset(), manifest.generation + 1)
    _store_manifest(archive, day, updated, read_at, previous=manifest)
    return manifest, updated
