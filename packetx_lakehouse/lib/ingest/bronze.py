"""Landing files -> bronze: archive each day's files, then read every line into rows or quarantine.

The archive comes first, so what bronze holds is always exactly what the archive can replay.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from packetx_lakehouse.lib.ingest.archive import DaySources, collect_day
from packetx_lakehouse.lib.ingest.reader import read_traffic_log_bytes
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, BRONZE_QUARANTINE
from packetx_lakehouse.lib.storage.objectstore import ObjectInfo, ObjectStore


@dataclass(frozen=True)
class FileReport:
    """What one source file version gave: the line accounting a person checks first."""

    log_date: dt.date
    source_file: str
    lines: int
    rows: int
    quarantined: int
    sha256: str
    #: How this run got the file: ``new version``, ``unchanged`` or ``from archive (gone from landing)``.
    archive_state: str
    headers: int = 0
    blank: int = 0


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


def ingest_days(
    landing: ObjectStore,
    archive: ObjectStore,
    days: Sequence[dt.date],
    landing_by_day: Mapping[dt.date, list[ObjectInfo]],
    *,
    now: dt.datetime,
) -> BronzeBatch:
    """Archive and read every file of ``days``, day by day and file by file (the order silver relies on).

    Args:
        landing: Where devices write or upload.
        archive: The immutable raw archive; a day's files that left the landing area are read back from it.
        days: The run's days.
        landing_by_day: One listing of the landing area (``group_landing_by_day``).
        now: Archive time stamp of new versions, which is also every new row's ``ingested_at``.
    """
    good: list[pa.Table] = []
    bad: list[pa.Table] = []
    files: list[FileReport] = []
    newly_archived = 0
    missing: list[dt.date] = []
    generations: dict[dt.date, int] = {}
    counts: collections.Counter[str] = collections.Counter()
    for day in days:
        sources = collect_day(landing, archive, day, landing_by_day.get(day, []), now=now)
        newly_archived += len(sources.newly_archived)
        generations[day] = sources.generation
        if not sources.files:
            missing.append(day)
        for archived, text in sources.files:
            result = read_traffic_log_bytes(text, source_file=archived.source_file, log_date=day,
                                            ingested_at=dt.datetime.fromisoformat(archived.archived_at))
            good.append(result.rows)
            bad.append(result.quarantine)
            counts.update(lines=result.lines_read, quarantined=result.quarantined, headers=result.headers,
                          blank=result.blank)
            files.append(FileReport(day, archived.source_file, result.lines_read, result.good, result.quarantined,
                                    archived.sha256, archive_state(archived.source_file, sources),
                                    headers=result.headers, blank=result.blank))
    return BronzeBatch(
        packets=_concat(good, BRONZE_PACKETS.schema),
        quarantine=_concat(bad, BRONZE_QUARANTINE.schema),
        files=files,
        newly_archived=newly_archived,
        days_without_files=missing,
        generations=generations,
        counts=dict(counts),
    )


def archive_state(source_file: str, sources: DaySources) -> str:
    """How this run got the file: a new version, unchanged, or only from the archive."""
    if source_file in sources.newly_archived:
        return "new version"
    if source_file in sources.from_archive_only:
        return "from archive (gone from landing)"
    return "unchanged"


def _concat(tables: Iterable[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = list(tables)
    return pa.concat_tables(tables) if tables else schema.empty_table()
