"""Materialisation metadata a person can read at a glance, shared by every layer.

Metadata lands in the Dagster event log on every run, and the values come from files anyone can
drop in the landing area: every cell is cut to a few dozen characters and every table to a few
rows, so a hostile line costs bytes, not megabytes, per run.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.lib.storage.iceberg import WriteResult

PREVIEW_ROWS = 5
#: Characters of one markdown cell or one listed problem shown in metadata.
MAX_CELL_CHARS = 80
#: Rows of a markdown table shown in metadata; the rest are counted.
MAX_TABLE_ROWS = 20


def shorten(value: object, limit: int = MAX_CELL_CHARS) -> str:
    """``str(value)`` on one line, control characters escaped, cut to ``limit`` characters (marked)."""
    text = str(value)
    cut = len(text) > limit
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return text + (f"…[+{len(str(value)) - limit:,} chars]" if cut else "")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], footer: str = "") -> dg.MetadataValue:
    """A small table as markdown, which the UI renders (no pandas for a handful of rows).

    Cells are cut to ``MAX_CELL_CHARS`` and the table to ``MAX_TABLE_ROWS`` rows.
    """
    def cell(value: object) -> str:
        return shorten(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    more = [f"… {len(rows) - MAX_TABLE_ROWS:,} more rows"] if len(rows) > MAX_TABLE_ROWS else []
    notes = [note for note in (*more, footer) if note]
    return dg.MetadataValue.md("\n".join(lines) + "".join(f"\n\n{note}" for note in notes))


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
