"""Materialisation metadata a person can read at a glance, shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.lib.storage.iceberg import WriteResult

PREVIEW_ROWS = 5


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], footer: str = "") -> dg.MetadataValue:
    """A small table as markdown, which the UI renders (no pandas for a handful of rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines) + (f"\n\n{footer}" if footer else ""))


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of what was written, as markdown."""
    head = table.slice(0, rows).to_pylist()
    more = f"… {table.num_rows - rows:,} more rows" if table.num_rows > rows else ""
    return markdown_table(table.column_names, [[row[c] for c in table.column_names] for row in head], more)


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The Arrow schema as Dagster's column list, shown on the asset's page."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type), constraints=dg.TableColumnConstraints(
        nullable=f.nullable)) for f in schema])


def iceberg_metadata(identifier: str, written: WriteResult, data: pa.Table) -> dict[str, object]:
    """Row count, snapshot and location of an Iceberg write, plus a preview of what was written."""
    return {
        "dagster/row_count": written.rows,
        "dagster/table_name": identifier,
        "dagster/column_schema": column_schema(data.schema),
        "table": identifier,
        "iceberg/snapshot_id": str(written.snapshot_id),
        "iceberg/location": dg.MetadataValue.path(written.location),
        "preview": markdown_preview(data),
    }
