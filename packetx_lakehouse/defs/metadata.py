"""Materialisation metadata a person can read at a glance, shared by every layer.

Metadata lands in the Dagster event log on every run, and the values come from files anyone can
drop in the landing area: every cell is cut to a few dozen characters and every table to a few
rows, so a hostile line costs bytes, not megabytes, per run.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa

from packetx_lakehouse.lib.schemas import TableDef
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


def readable(value: object) -> str:
    """One value as a person reads it: KB sums like 60974200.089999996 as 60,974,200.09, shares like
    0.00014027277865215172 as 0.00014 (the input has 6 significant digits; float sums add noise)."""
    if isinstance(value, float) and abs(value) < 1:
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], footer: str = "") -> dg.MetadataValue:
    """A small table as markdown, which the UI renders (no pandas for a handful of rows).

    Cells are cut to ``MAX_CELL_CHARS`` and the table to ``MAX_TABLE_ROWS`` rows.
    """
    def cell(value: object) -> str:
        return shorten(readable(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    more = [f"… {len(rows) - MAX_TABLE_ROWS:,} more rows"] if len(rows) > MAX_TABLE_ROWS else []
    notes = [note for note in (*more, footer) if note]
    return dg.MetadataValue.md("\n".join(lines) + "".join(f"\n\n{note}" for note in notes))


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """The first rows of what was written, as markdown."""
    head = table.slice(0, rows).to_pylist()
    more = f"… {table.num_rows - rows:,} more rows" if table.num_rows > rows else ("no rows" if not head else "")
    return markdown_table(table.column_names, [[row[c] for c in table.column_names] for row in head], more)


def table_metadata(data: pa.Table) -> dict[str, object]:
    """What an unpartitioned table holds in all: its row count and first rows."""
    return {"dagster/row_count": data.num_rows, "preview": markdown_preview(data)}


def partition_metadata(data: pa.Table) -> dict[str, object]:
    """What one day partition holds: the UI shows it as "Partition row count" beside the table's
    "Row count" (:func:`iceberg_metadata`), so a day's 3,698 rows never pass for the table's 26,143."""
    return {"dagster/partition_row_count": data.num_rows, "preview": markdown_preview(data)}


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
    """Where an Iceberg write went: the table, the snapshot that holds every day of the commit, and
    the rows the whole table holds after it."""
    return {
        "dagster/table_name": identifier,
        "table": identifier,
        **({"dagster/row_count": written.total_rows} if written.total_rows is not None else {}),
        "iceberg/snapshot_id": str(written.snapshot_id),
        "iceberg/location": dg.MetadataValue.path(written.location),
    }
