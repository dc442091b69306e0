"""Landing files -> bronze: archive each day's files, then read every line into rows or quarantine.

The archive comes first, so what bronze holds is always exactly what the archive can replay.
Files that are not ingested as they are (refused, empty, shrunk, gone, retracted, mostly off
their date) come back as landing problems, so that nothing is dropped without a word.

Two ways, one reader: ``ingest_days`` reads whole days (what a backfill or a replay does), and
``ingest_tails`` reads only the lines bronze lacks (a live refresh: ``archive.collect_tails``).
Each row's ``ingested_at`` is when the archive took in the part of its file it is in, so both
ways give a line the same one.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.lib.ingest.archive import DaySources, DayTails, Tail, collect_day, stamps_of
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.lib.ingest.problems import EMPTY, ERROR, OFF_DATE, LandingProblem
from packetx_lakehouse.lib.ingest.reader import (
    OFF_DATE_PREFIX,
    ReadResult,
    read_traffic_log_bytes,
)
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, BRONZE_QUARANTINE
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore

#: Days a backfill ingests side by side (``ingest_days``): a day's reader already splits big files
#: over the cores, so more threads only hold more days' text in memory.
DAY_THREADS = min(os.cpu_count() or 1, 2)


@dataclass(frozen=True)
class FileReport:
    """What one source file version gave: the line accounting a person checks first."""

    log_date: dt.date
    source_file: str
    lines: int
    rows: int
    quarantined: int
    sha256: str
    #: How this run got the file: ``new version``, ``unchanged`` or ``from archive`` (see the problems
    #: for why); a refresh: ``new lines``, ``from archive`` (archived by a run that stopped before
    #: bronze) or ``waiting line`` (only a last line still being written).
    archive_state: str
    #: Rows quarantined because they are not on the file's date.
    off_date: int = 0
    headers: int = 0
    blank: int = 0
    #: Whether the reader's fast path read it (a clean file), rather than the careful parser.
    fast_path: bool = False
    #: Bytes of a last line still being written, left for the next refresh (a refresh only).
    pending: int = 0


@dataclass(frozen=True)
class BronzeBatch:
    """Everything bronze writes for a run's days, plus the accounting behind it."""

    packets: pa.Table
    quarantine: pa.Table
    files: list[FileReport]
    newly_archived: int
    days_without_files: list[dt.date]
    #: Each day's source version (its archive manifest generation) the rows were read from.
    generations: Mapping[dt.date, int] = field(default_factory=dict)
    #: ``lines``, ``quarantined``, ``headers``, ``blank`` over every file.
    counts: Mapping[str, int] = field(default_factory=dict)
    #: Landing problems of the run's days.
    problems: list[LandingProblem] = field(default_factory=list)


def ingest_days(
    landing: ObjectStore,
    archive: ObjectStore,
    days: Sequence[dt.date],
    landing_by_day: Mapping[dt.date, list[ObjectInfo]],
    *,
    now: dt.datetime,
    limits: IngestLimits = IngestLimits(),
) -> BronzeBatch:
    """Archive and read every file of ``days``: each day file by file (the order silver relies on),
    the days side by side, their rows in day order.

    A day's work is mostly gzip, SHA-256, Arrow's CSV reader and numpy, which release the GIL, so a
    backfill's days on ``DAY_THREADS`` threads finish in less wall time; each day has its own
    manifest, so they share nothing but the stores.

    Args:
        landing: Where devices write or upload.
        archive: The immutable raw archive; a day's files that left the landing area are read back from it.
        days: The run's days.
        landing_by_day: One flat listing of the landing area, by day (``problems.split_listing``).
        now: Archive time stamp of new versions, which is also every new row's ``ingested_at``.
        limits: Per-file bounds; a file past one is refused and recorded, the others still ingest.
    """
    def one_day(day: dt.date) -> BronzeBatch:
        return _ingest_day(landing, archive, day, landing_by_day.get(day, []), now=now, limits=limits)

    if len(days) < 2:
        return merge_batches([one_day(day) for day in days])
    with ThreadPoolExecutor(max_workers=min(len(days), DAY_THREADS), thread_name_prefix="bronze-day") as pool:
        return merge_batches(list(pool.map(one_day, days)))


def _ingest_day(
    landing: ObjectStore, archive: ObjectStore, day: dt.date, landing_objects: list[ObjectInfo], *,
    now: dt.datetime, limits: IngestLimits,
) -> BronzeBatch:
    """One day of ``ingest_days``."""
    good: list[pa.Table] = []
    bad: list[pa.Table] = []
    files: list[FileReport] = []
    counts: collections.Counter[str] = collections.Counter()
    sources = collect_day(landing, archive, day, landing_objects, now=now, limits=limits)
    problems = list(sources.problems)
    for archived, text in sources.files:
        result = _read(text, archived.source_file, day, 1, stamps_of(archived), limits)
        good.append(result.rows)
        bad.append(result.quarantine)
        counts.update(lines=result.lines_read, quarantined=result.quarantined, headers=result.headers,
                      blank=result.blank)
        files.append(FileReport(day, archived.source_file, result.lines_read, result.good, result.quarantined,
                                archived.sha256, archive_state(archived.source_file, sources), result.off_date,
                                headers=result.headers, blank=result.blank, fast_path=result.fast_path))
        landed = archived.landing
        problems = _with_stakes(problems, archived.source_file, result, sources)
        problems += _read_problems(day, landed.key if landed else archived.source_file,
                                   landed.size if landed else archived.size, result)
    return BronzeBatch(
        packets=_concat(good, BRONZE_PACKETS.schema),
        quarantine=_concat(bad, BRONZE_QUARANTINE.schema),
        files=files,
        newly_archived=len(sources.newly_archived),
        days_without_files=[] if sources.files else [day],
        generations={day: sources.generation},
        counts=dict(counts),
        problems=problems,
    )


def ingest_tails(tails: DayTails, day: dt.date, *, limits: IngestLimits = IngestLimits()) -> BronzeBatch:
    """Read the lines of ``day`` bronze lacks (``archive.collect_tails``): rows to append, not a day to replace."""
    good: list[pa.Table] = []
    bad: list[pa.Table] = []
    files: list[FileReport] = []
    problems = list(tails.problems)
    counts: collections.Counter[str] = collections.Counter()
    for tail in tails.tails:
        source = tail.entry.source_file
        if not tail.text:  # only a last line still being written
            files.append(FileReport(day, source, 0, 0, 0, tail.entry.sha256, _tail_state(tail), pending=tail.pending))
            continue
        result = _read(tail.text, source, day, tail.first_line, tail.stamps, limits)
        good.append(result.rows)
        bad.append(result.quarantine)
        counts.update(lines=result.lines_read, quarantined=result.quarantined, headers=result.headers,
                      blank=result.blank)
        files.append(FileReport(day, source, result.lines_read, result.good, result.quarantined, tail.entry.sha256,
                                _tail_state(tail), result.off_date, headers=result.headers, blank=result.blank,
                                fast_path=result.fast_path, pending=tail.pending))
        landed = tail.entry.landing
        problems += _read_problems(day, landed.key if landed else source, landed.size if landed else tail.entry.size,
                                   result)
    return BronzeBatch(
        packets=_concat(good, BRONZE_PACKETS.schema),
        quarantine=_concat(bad, BRONZE_QUARANTINE.schema),
        files=files,
        newly_archived=sum(t.newly_archived for t in tails.tails),
        days_without_files=[],
        generations={day: tails.generation},
        counts=dict(counts),
        problems=problems,
    )


def merge_batches(batches: Sequence[BronzeBatch]) -> BronzeBatch:
    """Several days' batches as one (each read on its own)."""
    return BronzeBatch(
        packets=_concat([b.packets for b in batches], BRONZE_PACKETS.schema),
        quarantine=_concat([b.quarantine for b in batches], BRONZE_QUARANTINE.schema),
        files=[f for b in batches for f in b.files],
        newly_archived=sum(b.newly_archived for b in batches),
        days_without_files=[d for b in batches for d in b.days_without_files],
        generations={day: g for b in batches for day, g in b.generations.items()},
        counts=dict(sum((collections.Counter(b.counts) for b in batches), collections.Counter())),
        problems=[p for b in batches for p in b.problems],
    )


def _tail_state(tail: Tail) -> str:
    if tail.newly_archived:
        return "new lines"
    return "waiting line" if not tail.text else "from archive"


def _read(text: bytes, source: str, day: dt.date, first_line: int, stamps: tuple[tuple[int, str], ...],
          limits: IngestLimits) -> ReadResult:
    """One file's lines from ``first_line``, each row stamped with when its part was archived."""
    parsed = parse_log_file_name(source)
    result = read_traffic_log_bytes(text, source_file=source, log_date=day,
                                    ingested_at=dt.datetime.fromisoformat(stamps[-1][1]),
                                    file_user=parsed.user if parsed else None,
                                    max_line_bytes=limits.max_line_bytes, first_line=first_line)
    if len(stamps) < 2:
        return result
    return replace(result, rows=_stamped(result.rows, first_line, stamps),
                   quarantine=_stamped(result.quarantine, first_line, stamps))


def _stamped(table: pa.Table, first_line: int, stamps: tuple[tuple[int, str], ...]) -> pa.Table:
    """``table`` with each row's ``ingested_at`` that of the part its line is in (a cut last line: the last part)."""
    ends = first_line + np.cumsum([lines for lines, _ in stamps])
    part = np.minimum(np.searchsorted(ends, table.column("line_number").to_numpy(), side="right"), len(stamps) - 1)
    times = pa.array([dt.datetime.fromisoformat(at) for _, at in stamps], table.schema.field("ingested_at").type)
    index = table.schema.get_field_index("ingested_at")
    return table.set_column(index, table.schema.field(index), times.take(pa.array(part)))


def _read_problems(day: dt.date, key: str, size: int, result: ReadResult) -> list[LandingProblem]:
    """What reading a file (``key`` of ``size`` bytes) says about it as a whole: nothing but headers,
    or mostly off its date."""
    if result.good == 0 and result.quarantined == 0 and result.headers:
        return [LandingProblem(day, key, EMPTY, "header only", size=size)]
    off_date = result.off_date
    if off_date and 2 * off_date > result.good + off_date:
        reasons = result.quarantine.column("reason")
        example = pc.filter(reasons, pc.starts_with(reasons, OFF_DATE_PREFIX))[0].as_py()
        return [LandingProblem(
            day, key, OFF_DATE,
            f"{off_date:,} of {result.good + off_date:,} rows are not on the file's date {day} (e.g. '{example}'): "
            "a renamed file or a wrong device clock? Rename it to its real date, or retract it",
            severity=ERROR, size=size, rows_at_stake=off_date)]
    return []


def _with_stakes(
    problems: list[LandingProblem], source_file: str, result: ReadResult, sources: DaySources
) -> list[LandingProblem]:
    """Fill in the rows and KB at stake of a shrunk or vanished source: its rows after the lines the landing still shows."""
    after = sources.at_stake_after_line.get(source_file)
    if after is None:
        return problems
    at_stake = result.rows.filter(pc.greater(result.rows.column("line_number"), after))
    kb = pc.sum(at_stake.column("kb_bandwidth")).as_py() or 0.0
    return [
        replace(p, rows_at_stake=at_stake.num_rows, kb_at_stake=kb)
        if p.fails and _names_source(p.object_key, source_file) else p
        for p in problems
    ]


def _names_source(key: str, source_file: str) -> bool:
    parsed = parse_log_file_name(key.rsplit("/", 1)[-1])
    return parsed is not None and parsed.source_file == source_file


def archive_state(source_file: str, sources: DaySources) -> str:
    """How this run got the file: a new version, unchanged, or only from the archive."""
    if source_file in sources.newly_archived:
        return "new version"
    if source_file in sources.from_archive_only:
        return "from archive"
    return "unchanged"


def _concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = list(tables)
    return pa.concat_tables(tables) if tables else schema.empty_table()
