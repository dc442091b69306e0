"""Materialisation metadata a person can read at a glance, shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.iceberg import WriteResult

PREVIEW_ROWS = 5


def cell(value: object) -> str:
    """One value as a person reads it: KB sums like 60974200.089999996 as 60,974,200.09, shares like
    0.00014027277865215172 as 0.00014 (the input has 6 significant digits; float sums add noise)."""
    if isinstance(value, float) and abs(value) < 1:
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], footer: str = "") -> dg.MetadataValue:
    """A small table as markdown, which the UI renders (no pandas for a handful of rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines) + (f"\n\n{footer}" if footer else ""))


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of what was written, as markdown."""
    head = table.slice(0, rows).to_pylist()
    more = f"… {table.num_rows - rows:,} more rows" if table.num_rows > rows else ("no rows" if not head else "")
    return markdown_table(table.column_names, [[row[c] for c in table.column_names] for row in head], more)


def table_metadata(data: pa.Table) -> dict[str, object]:
    """What one table holds for one day (or, unpartitioned, in all): its row count and first rows."""
    return {"dagster/row_count": data.num_rows, "preview": markdown_preview(data)}


#: Column types as Iceberg (and so DuckDB, Trino, Athena) name them, not Arrow's in-memory names.
_ICEBERG_TYPE_NAMES = {
    pa.large_string(): "string", pa.string(): "string", pa.int64(): "long", pa.float64(): "double",
    pa.bool_(): "boolean", pa.date32(): "date", pa.timestamp("us"): "timestamp",
    pa.timestamp("us", tz="UTC"): "timestamptz",
}


def column_schema(table_def: TableDef) -> dg.TableSchema:
    """The table's columns with their types, nullability and meaning: the asset page's column list."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name,
                _ICEBERG_TYPE_NAMES.get(f.type, str(f.type)),
                description=table_def.column_description(f.name),
                constraints=dg.TableColumnConstraints(nullable=f.nullable, unique=table_def.key == (f.name,)),
            )
            for f in table_def.schema
        ],
        constraints=dg.TableConstraints(other=[
            *([f"one row per ({', '.join(table_def.key)})"] if table_def.key else []),
            f"partitioned by {', '.join(table_def.partition_by)}" if table_def.partition_by else "unpartitioned",
        ]),
    )


def column_lineage(table_def: TableDef, upstream: dg.AssetKey) -> dg.TableColumnLineage:
    """Which columns of the ``upstream`` asset each column is computed from."""
    return dg.TableColumnLineage(deps_by_column={
        column: [dg.TableColumnDep(asset_key=upstream, column_name=source) for source in sources]
        for column, sources in table_def.lineage.items()
    })


def iceberg_metadata(identifier: str, written: WriteResult) -> dict[str, object]:
    """Where an Iceberg write went: the table and the snapshot that holds every day of the commit."""
    return {
        "dagster/table_name": identifier,
        "table": identifier,
        "iceberg/snapshot_id": str(written.snapshot_id),
        "iceberg/location": dg.MetadataValue.path(written.location),
    }
