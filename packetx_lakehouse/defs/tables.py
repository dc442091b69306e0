"""How every daily step commits a table and reads its inputs.

A step either built a table itself (the data is in memory) or reads it from Iceberg for the
run's days: ``RunTables`` makes that choice explicit, so a layer re-run alone reads exactly what
a whole run would have handed it. It is also where a storage failure gets a message that names
what failed ("writing packetx_silver.packets to s3://...: ..."), not only what a client library
said deep down (an S3 outage otherwise reads "Cannot write to closing transport").
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog

from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.defs.metadata import iceberg_metadata
from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import (
    ensure_table,
    read_partitions,
    replace_partitions,
)


class StorageError(RuntimeError):
    """Reading or writing a lakehouse table failed; the message names the table and where it lives."""


class RunTables:
    """The run's days of each table: what this step committed, else what Iceberg holds."""

    def __init__(self, catalog: Catalog, days: Sequence[dt.date]) -> None:
        self.catalog = catalog
        self.days = list(days)
        self._tables: dict[TableDef, pa.Table] = {}

    @contextlib.contextmanager
    def _naming(self, action: str, table_def: TableDef, preposition: str) -> Iterator[None]:
        """Re-raise any failure as a :class:`StorageError` that says what was being done, and where."""
        try:
            yield
        except Exception as exc:
            try:
                where = f" {preposition} {self.catalog.load_table(table_def.identifier).location()}"
            except Exception:  # the catalog itself may be what is unreachable
                warehouse = self.catalog.properties.get("warehouse")
                where = f" in catalog {self.catalog.name}" + (f" (warehouse {warehouse})" if warehouse else "")
            raise StorageError(f"{action} {table_def.identifier}{where}: {type(exc).__name__}: {exc}") from exc

    def get(self, table_def: TableDef, *, undated: bool = False) -> pa.Table:
        """The run's days of ``table_def`` (``undated``: and its rows whose day is null)."""
        if table_def not in self._tables:
            with self._naming("reading", table_def, "from"):
                self._tables[table_def] = read_partitions(ensure_table(self.catalog, table_def),
                                                          values=[*self.days, *([None] if undated else [])])
        return self._tables[table_def]

    def forget(self, table_def: TableDef) -> None:
        """Release a table this step no longer needs (a day of bronze is a large object)."""
        self._tables.pop(table_def, None)

    def commit(
        self,
        context: dg.AssetExecutionContext,
        table_def: TableDef,
        data: pa.Table,
        *,
        undated: bool = False,
        **metadata: object,
    ) -> dg.MaterializeResult:
        """Replace the run's days of ``table_def`` by ``data`` (one atomic commit) and describe it.

        ``undated``: also replace the rows whose day is null (what the whole run saw, not one day).
        """
        with self._naming("writing", table_def, "to"):
            written = replace_partitions(ensure_table(self.catalog, table_def), data,
                                         values=[*self.days, *([None] if undated else [])],
                                         snapshot_properties={"dagster.run_id": context.run.run_id})
        self._tables[table_def] = data
        return dg.MaterializeResult(
            asset_key=asset_key(table_def),
            metadata={**iceberg_metadata(table_def.identifier, written, data), **metadata},
        )
