"""Materialisation metadata a person can read at a glance, shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.lib.iceberg import WriteResult

PREVIEW_ROWS = 5


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows as a markdown table (no pandas: a few rows, formatted directly)."""
    head = table.slice(0, rows).to_pylist()
    columns = table.column_names
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in head]
    if table.num_rows > rows:
        lines.append(f"\n… {table.num_rows - rows:,} more rows")
    return dg.MetadataValue.md("\n".join(lines))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return dg.MetadataValue.md("\n".join(lines))


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
