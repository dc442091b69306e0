"""How every daily step commits a table and reads its inputs.

A step either built a table itself (the data is in memory) or reads it from Iceberg for the
run's days: ``RunTables`` makes that choice explicit, so a layer re-run alone reads exactly what
a whole run would have handed it.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog

from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.defs.metadata import iceberg_metadata
from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    StaleSourceError,
    ensure_table,
    read_partitions,
    replace_partitions,
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
    on what is there now, at most ``STALE_INPUT_ATTEMPTS`` times. Only the last attempt's events
    reach Dagster.
    """

    def attempts(context: dg.AssetExecutionContext, run_once: Callable[[], Any]) -> Any:
        for number in range(1, STALE_INPUT_ATTEMPTS):
            try:
                return run_once()
            except (StaleSourceError, ObjectChangedError) as exc:
                context.log.warning(f"{exc}: rebuilding from fresh input (attempt {number + 1} of "
                                    f"{STALE_INPUT_ATTEMPTS})")
        return run_once()

    if inspect.isgeneratorfunction(step):
        @functools.wraps(step)
        def generator_step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator[Any]:
            yield from attempts(context, lambda: list(step(context, *args, **kwargs)))

        return generator_step

    @functools.wraps(step)
    def plain_step(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        return attempts(context, lambda: step(context, *args, **kwargs))

    return plain_step


class RunTables:
    """The run's days of each table: what this step committed, else what Iceberg holds.

    Each table's rows come with the source generation of each day they were built from, read from
    the same table metadata, so whatever is built from them carries that version into its commit.
    """

    def __init__(self, catalog: Catalog, days: Sequence[dt.date]) -> None:
        self.catalog = catalog
        self.days = list(days)
        self._tables: dict[TableDef, pa.Table] = {}
        self._generations: dict[TableDef, dict[dt.date, int]] = {}

    def get(self, table_def: TableDef) -> pa.Table:
        if table_def not in self._tables:
            table = ensure_table(self.catalog, table_def)
            self._tables[table_def] = read_partitions(table, values=self.days)
            self._generations[table_def] = source_generations(table, self.days)
        return self._tables[table_def]

    def generations(self, table_def: TableDef) -> dict[dt.date, int]:
        """The source generation of each run day of ``table_def``'s rows, as read or committed."""
        if table_def not in self._generations:
            self.get(table_def)
        return self._generations[table_def]

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
        **metadata: object,
    ) -> dg.MaterializeResult:
        """Replace the run's days of ``table_def`` by ``data`` (one atomic commit) and describe it.

        Raises:
            StaleSourceError: the table holds newer sources for a day than ``generations``.
        """
        written = replace_partitions(ensure_table(self.catalog, table_def), data, values=self.days,
                                     generations=generations,
                                     snapshot_properties={"dagster.run_id": context.run.run_id})
        self._tables[table_def] = data
        self._generations[table_def] = dict(generations)
        return dg.MaterializeResult(
            asset_key=asset_key(table_def),
            metadata={**iceberg_metadata(table_def.identifier, written, data), **metadata},
        )
