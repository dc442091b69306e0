"""How every daily step commits a table and reads its inputs.

A step either built a table itself (the data is in memory) or reads it from Iceberg for the
run's days: ``RunTables`` makes that choice explicit, so a layer re-run alone reads exactly what
a whole run would have handed it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

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


class RunTables:
    """The run's days of each table: what this step committed, else what Iceberg holds."""

    def __init__(self, catalog: Catalog, days: Sequence[dt.date]) -> None:
        self.catalog = catalog
        self.days = list(days)
        self._tables: dict[TableDef, pa.Table] = {}

    def get(self, table_def: TableDef) -> pa.Table:
        if table_def not in self._tables:
            self._tables[table_def] = read_partitions(ensure_table(self.catalog, table_def), values=self.days)
        return self._tables[table_def]

    def forget(self, table_def: TableDef) -> None:
        """Release a table this step no longer needs (a day of bronze is a large object)."""
        self._tables.pop(table_def, None)

    def commit(
        self, context: dg.AssetExecutionContext, table_def: TableDef, data: pa.Table, **metadata: object
    ) -> dg.MaterializeResult:
        """Replace the run's days of ``table_def`` by ``data`` (one atomic commit) and describe it."""
        written = replace_partitions(ensure_table(self.catalog, table_def), data, values=self.days,
                                     snapshot_properties={"dagster.run_id": context.run.run_id})
        self._tables[table_def] = data
        return dg.MaterializeResult(
            asset_key=asset_key(table_def),
            metadata={**iceberg_metadata(table_def.identifier, written, data), **metadata},
        )
