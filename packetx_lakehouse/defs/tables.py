"""How every daily step commits a table and reads its inputs.

A step either built a table itself (the data is in memory) or reads it from Iceberg for the
run's days: ``RunTables`` makes that choice explicit, so a layer re-run alone reads exactly what
a whole run would have handed it. It is also where a storage failure gets a message that names
what failed ("writing packetx_silver.packets to s3://...: ..."), not only what a client library
said deep down (an S3 outage otherwise reads "Cannot write to closing transport").

A run may hold one day or a backfill's range; either way each day's materialisation carries
that day's own figures (``context.add_asset_metadata(partition_key=...)``), and only what is
true of the whole commit (table, snapshot, location) is shared.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table

from packetx_lakehouse.dagster_internals import KnownTargets, on_latest_materialization
from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.defs.metadata import iceberg_metadata, partition_metadata
from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    HOURS_SUMMARY,
    DayCounts,
    OnRetry,
    StaleSourceError,
    WriteResult,
    append_rows,
    ensure_table,
    partition_slices,
    read_partitions,
    replace_partitions,
    replace_rows,
    source_generations,
)
from packetx_lakehouse.lib.storage.objectstore import ObjectChangedError

#: Times a step rebuilds from fresh input when its commit finds newer sources, before failing.
STALE_INPUT_ATTEMPTS = 3


def redo_when_stale(step: Callable[..., Any]) -> Callable[..., Any]:
    """Run a step's body again, from fresh input, when a commit finds that another run committed
    newer sources meanwhile (put it under ``@dg.multi_asset``; the body must read its inputs itself).

    A run that stalled (a slow worker, a long pause, SIGSTOP) must not replace the newer data
    another run committed in the meantime: its Iceberg commit is refused (``StaleSourceError``),
    or its archive-manifest write loses the race (``ObjectChangedError``), and the body runs again
    on what is there now, at most ``STALE_INPUT_ATTEMPTS`` times. A generator body's events are
    held back until its attempt ends, so only the last attempt's reach Dagster; an attempt that
    fails otherwise still reports what it did (and committed) before the error.
    """

    def stale(context: dg.AssetExecutionContext, number: int, exc: Exception) -> None:
        context.log.warning(f"{exc}: rebuilding from fresh input (attempt {number + 1} of {STALE_INPUT_ATTEMPTS})")

    if inspect.isgeneratorfunction(step):
        @functools.wraps(step)
        def generator_step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
            for number in range(1, STALE_INPUT_ATTEMPTS + 1):
                events: list[Any] = []
                try:
                    events.extend(step(context, *args, **kwargs))
                except (StaleSourceError, ObjectChangedError) as exc:
                    if number == STALE_INPUT_ATTEMPTS:
                        raise
                    stale(context, number, exc)
                    continue
                except BaseException:
                    yield from _released(context, events)
                    raise
                yield from _released(context, events)
                return

        return generator_step

    @functools.wraps(step)
    def plain_step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        for number in range(1, STALE_INPUT_ATTEMPTS):
            try:
                return step(context, *args, **kwargs)
            except (StaleSourceError, ObjectChangedError) as exc:
                stale(context, number, exc)
        return step(context, *args, **kwargs)

    return plain_step


def _released(context: dg.AssetExecutionContext, events: list[Any]) -> Iterator[Any]:
    """Held-back events, each day's check evaluation targeted once the materialisations yielded
    before it are recorded (it was built while they were held back: ``DayChecks(held_back=True)``)."""
    known: KnownTargets = {}
    for event in events:
        if isinstance(event, dg.AssetCheckEvaluation):
            event = on_latest_materialization(event, context.instance, known)
        elif isinstance(event, dg.MaterializeResult):  # a newer materialisation of its days
            known = {key: target for key, target in known.items() if key[0] != event.asset_key}
        yield event


#: A day's own figures for its materialisation, from that day's rows of the table.
PerDay = Callable[[dt.date, pa.Table], Mapping[str, object]]


def split_days(data: pa.Table, days: Sequence[dt.date], column: str = "log_date") -> dict[dt.date, pa.Table]:
    """``data``'s rows of each of ``days`` (zero-copy slices; an empty table for a day without rows)."""
    parts = {part.column(column)[0].as_py(): part for part in partition_slices(data, [column])}
    empty = data.schema.empty_table()
    return {day: parts.get(day, empty) for day in days}


def log_lost_commits(context: dg.OpExecutionContext | dg.AssetExecutionContext, table_def: TableDef) -> OnRetry:
    """A lost optimistic commit is retried by the write path; say so in the run's log, never silently."""

    def log(attempt: int, error: Exception) -> None:
        context.log.warning(f"{table_def.identifier}: commit attempt {attempt} lost to a concurrent writer "
                            f"({type(error).__name__}: {error}); retrying from the table's fresh metadata")

    return log


def add_day_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey, by_day: Mapping[dt.date, Mapping[str, object]]
) -> None:
    """Put each day's figures on that day's materialisation only (call before yielding the asset)."""
    for day, metadata in by_day.items():
        context.add_asset_metadata(dict(metadata), asset_key=key, partition_key=day.isoformat())


class StorageError(RuntimeError):
    """Reading or writing a lakehouse table failed; the message names the table and where it lives."""


class RunTables:
    """The run's days of each table: what this step committed, else what Iceberg holds.

    Each table's rows come with the source generation of each day they were built from, read from
    the same table metadata, so whatever is built from them carries that version into its commit.
    """

    def __init__(self, catalog: Catalog, days: Sequence[dt.date]) -> None:
        self.catalog = catalog
        self.days = list(days)
        self._loaded: dict[TableDef, Table] = {}
        self._tables: dict[TableDef, pa.Table] = {}
        self._generations: dict[TableDef, dict[dt.date, int]] = {}

    @contextlib.contextmanager
    def _naming(self, action: str, table_def: TableDef, preposition: str) -> Iterator[None]:
        """Re-raise any failure as a :class:`StorageError` that says what was being done, and where."""
        try:
            yield
        except (StaleSourceError, ObjectChangedError):
            raise  # not a storage failure: another run committed newer sources (redo_when_stale)
        except Exception as exc:
            try:
                where = f" {preposition} {self.catalog.load_table(table_def.identifier).location()}"
            except Exception:  # the catalog itself may be what is unreachable
                warehouse = self.catalog.properties.get("warehouse")
                where = f" in catalog {self.catalog.name}" + (f" (warehouse {warehouse})" if warehouse else "")
            raise StorageError(f"{action} {table_def.identifier}{where}: {type(exc).__name__}: {exc}") from exc

    def table(self, table_def: TableDef) -> Table:
        """``table_def``'s Iceberg table, loaded once per step (a catalog round trip and a metadata
        read each time). Its commits keep it current, and a lost commit refreshes it before retrying."""
        if table_def not in self._loaded:
            self._loaded[table_def] = ensure_table(self.catalog, table_def)
        return self._loaded[table_def]

    def get(self, table_def: TableDef, *, undated: bool = False) -> pa.Table:
        """The run's days of ``table_def`` (``undated``: and its rows whose day is null)."""
        if table_def not in self._tables:
            with self._naming("reading", table_def, "from"):
                table = self.table(table_def)
                self._tables[table_def] = read_partitions(table, values=[*self.days, *([None] if undated else [])])
                self._generations[table_def] = source_generations(table, self.days)
        return self._tables[table_def]

    def generations(self, table_def: TableDef) -> dict[dt.date, int]:
        """The source generation of each run day of ``table_def``'s rows, as read or committed."""
        if table_def not in self._generations:
            self.get(table_def)
        return self._generations[table_def]

    def by_day(self, table_def: TableDef) -> dict[dt.date, pa.Table]:
        """The run's rows of ``table_def``, day by day."""
        return split_days(self.get(table_def), self.days)

    def forget(self, table_def: TableDef) -> None:
        """Release a table this step no longer needs (a day of bronze is a large object)."""
        self._tables.pop(table_def, None)

    def commit(
        self,
        context: dg.AssetExecutionContext,
        table_def: TableDef,
        data: pa.Table,
        *,
        generations: Mapping[dt.date, int],
        undated: bool = False,
        counted: DayCounts | None = None,
        per_day: PerDay | None = None,
        report: bool = True,
        **metadata: object,
    ) -> dg.MaterializeResult | None:
        """Replace the run's days of ``table_def`` by ``data`` (one atomic commit) and describe it
        (``report`` False: the step writes it with another table it belongs to, and says nothing).

        ``generations``: the source generation each day's rows were built from (see ``redo_when_stale``).
        ``undated``: also replace the rows whose day is null (what the whole run saw, not one day).
        ``counted``: each day's figures that are not sums of its rows, kept with its totals.
        Each day's materialisation gets its row count and preview, plus ``per_day(day, rows)``;
        ``metadata`` is shared by every day of the commit.

        Raises:
            StaleSourceError: the table holds newer sources for a day than ``generations``.
        """
        with self._naming("writing", table_def, "to"):
            written = replace_partitions(self.table(table_def), data,
                                         values=[*self.days, *([None] if undated else [])],
                                         generations=generations, sums=table_def.totals, counted=counted,
                                         **self._write_options(context, table_def))
        self._tables[table_def] = data
        self._generations[table_def] = dict(generations)
        return self._result(context, table_def, data, written, per_day, metadata) if report else None

    def append(
        self,
        context: dg.AssetExecutionContext,
        table_def: TableDef,
        data: pa.Table,
        *,
        continues: Mapping[dt.date, int],
        generations: Mapping[dt.date, int],
        counted: DayCounts | None = None,
        per_day: PerDay | None = None,
        report: bool = True,
        **metadata: object,
    ) -> dg.MaterializeResult | None:
        """Add a refresh's new rows to the run's days (see ``append_rows``) and describe them
        (``report`` False: say nothing, as ``commit``).

        Each day's materialisation gets the row count and preview of the rows added.

        Raises:
            MovedSourceError: the table does not hold the ``continues`` generation of a day.
        """
        with self._naming("writing", table_def, "to"):
            written = append_rows(self.table(table_def), data, continues=continues, generations=generations,
                                  sums=table_def.totals, counted=counted, **self._write_options(context, table_def))
        self._forget_refreshed(table_def)
        return self._result(context, table_def, data, written, per_day, metadata) if report else None

    def replace_where(
        self,
        context: dg.AssetExecutionContext,
        table_def: TableDef,
        data: pa.Table,
        *,
        where: BooleanExpression,
        replaced: pa.Table,
        continues: Mapping[dt.date, int],
        generations: Mapping[dt.date, int],
        hours: Mapping[dt.date, Sequence[dt.datetime]] | None = None,
        per_day: PerDay | None = None,
        **metadata: object,
    ) -> dg.MaterializeResult:
        """Replace the rows ``where`` matches (``replaced``, as read) by ``data`` (see ``replace_rows``).

        ``hours``: the hours of each day ``where`` replaces, told in the commit's summary
        (``HOURS_SUMMARY``) so that a copy of the table (serving) copies only those.

        Raises:
            MovedSourceError: the table does not hold the ``continues`` generation of a day.
        """
        options = self._write_options(context, table_def)
        if hours:
            options["snapshot_properties"][HOURS_SUMMARY] = json.dumps(
                {day.isoformat(): [h.isoformat() for h in day_hours] for day, day_hours in hours.items()})
        with self._naming("writing", table_def, "to"):
            written = replace_rows(self.table(table_def), data, where=where, replaced=replaced, continues=continues,
                                   generations=generations, sums=table_def.totals, **options)
        self._forget_refreshed(table_def)
        return self._result(context, table_def, data, written, per_day, metadata)

    def read(self, table_def: TableDef, where: BooleanExpression) -> pa.Table:
        """The rows of ``table_def`` that ``where`` matches, as the table holds them now."""
        with self._naming("reading", table_def, "from"):
            return self.table(table_def).scan(row_filter=where).to_arrow()

    def _forget_refreshed(self, table_def: TableDef) -> None:
        """After a refresh's commit the rows held for the run's days are no longer the table's."""
        self._tables.pop(table_def, None)
        self._generations.pop(table_def, None)

    @staticmethod
    def _write_options(context: dg.AssetExecutionContext, table_def: TableDef) -> dict[str, Any]:
        return {"snapshot_properties": {"dagster.run_id": context.run.run_id},
                "on_retry": log_lost_commits(context, table_def)}

    def _result(
        self, context: dg.AssetExecutionContext, table_def: TableDef, data: pa.Table, written: WriteResult,
        per_day: PerDay | None, metadata: Mapping[str, object],
    ) -> dg.MaterializeResult:
        key = asset_key(table_def)
        add_day_metadata(context, key, {
            day: {**partition_metadata(rows), **(per_day(day, rows) if per_day else {})}
            for day, rows in split_days(data, self.days).items()
        })
        return dg.MaterializeResult(asset_key=key, metadata={**iceberg_metadata(table_def.identifier, written), **metadata})
