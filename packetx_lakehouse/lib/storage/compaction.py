"""Compaction: the small files a day refreshed minute by minute leaves, rewritten into few.

A live refresh appends a file per commit to bronze and silver, and replaces the current hour's
file in the hourly gold tables: a day refreshed every minute ends with hundreds of small files in
each partition, and scans and commits slow down as they pile up. Maintenance compacts them:

- a closed day (before ``closed_before``) is rewritten into as few files as its size needs,
  ``MAX_FILES_CLOSED`` at most whatever its size, its rows sorted by the table's key, so a
  month scans as fast as if each day had been written once;
- the open day's small files (below ``SMALL_FILE_BYTES``) are merged into one, except, in a table
  kept by the hour, files holding the current hour: the next refresh replaces that hour, and it
  must keep finding it in a small file of its own, not inside a big one it would have to rewrite.

A compaction commit changes no row, no generation and no total: it says so in its summary
(``CHANGES_SUMMARY`` empty), so readers of a table's changes pass over it. It loses to any
concurrent commit (the next pass tries again), and a file it replaced stays on storage until
maintenance deletes unreferenced files past the safety window, so a reader that planned on it
still finds it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from packetx_lakehouse.lib.storage.iceberg import rewrite_files

#: Files of the open day below this size are merged by each pass.
SMALL_FILE_BYTES = 16 << 20
#: A closed day with more files than this in a partition is rewritten.
MAX_FILES_CLOSED = 4


@dataclass(frozen=True)
class Compaction:
    """What one pass did to a table."""

    partitions: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    #: Partitions a concurrent commit changed first (the next pass compacts them).
    lost: int = 0


def compact_table(table: Table, *, now: dt.datetime, closed_before: dt.date, hour_column: str | None = None,
                  sort_by: tuple[str, ...] = ()) -> Compaction:
    """Compact ``table``'s partitions (see the module docstring); one commit per partition rewritten.

    Args:
        now: The current time: which UTC hour is still being written.
        closed_before: The first day still open: earlier days are complete.
        hour_column: The table's UTC hour column, if it is kept by the hour (files holding the
            current hour are left as they are on the open day).
        sort_by: How the rewritten rows are ordered (the table's key: locality for later scans).
    """
    result = Compaction()
    current_hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    for day, files in sorted(_files_by_partition(table).items(), key=lambda item: str(item[0])):
        candidates = _candidates(table, day, files, closed_before, hour_column, current_hour)
        if not candidates:
            continue
        try:
            closed = (day_of := _day_of(table, day)) is not None and day_of < closed_before
            rows = rewrite_files(table, candidates, sort_by=sort_by, max_files=MAX_FILES_CLOSED if closed else None)
        except CommitFailedException:
            result = _plus(result, lost=1)
            table = table.refresh()
            continue
        table = table.refresh()
        result = _plus(result, partitions=1, files_before=len(candidates), rows=rows,
                       files_after=len(_files_by_partition(table).get(day, [])) - (len(files) - len(candidates)))
    return result


def _plus(result: Compaction, **more: int) -> Compaction:
    return Compaction(**{name: getattr(result, name) + more.get(name, 0) for name in Compaction.__dataclass_fields__})


def _files_by_partition(table: Table) -> dict[tuple, list[DataFile]]:
    snapshot = table.current_snapshot()
    found: dict[tuple, list[DataFile]] = defaultdict(list)
    if snapshot is None:
        return found
    for task in table.scan().plan_files():
        found[tuple(task.file.partition)].append(task.file)
    return found


def _candidates(table: Table, partition: tuple, files: list[DataFile], closed_before: dt.date,
                hour_column: str | None, current_hour: dt.datetime) -> list[DataFile]:
    day = _day_of(table, partition)
    if day is not None and day < closed_before:
        return files if len(files) > MAX_FILES_CLOSED else []
    small = [f for f in files if f.file_size_in_bytes < SMALL_FILE_BYTES]
    if hour_column is not None:
        field = table.schema().find_field(hour_column)
        small = [f for f in small if (last := f.upper_bounds.get(field.field_id)) is not None
                 and _as_time(from_bytes(field.field_type, last)) < current_hour]
    return small if len(small) > 1 else []


def _day_of(table: Table, partition: tuple) -> dt.date | None:
    source = table.schema().find_field("log_date").field_id
    for position, field in enumerate(table.spec().fields):
        if field.source_id == source:
            value = partition[position]
            return None if value is None else dt.date(1970, 1, 1) + dt.timedelta(days=value)
    return None


def _as_time(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
