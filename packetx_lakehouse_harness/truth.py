"""What the tables must hold, computed from the landing files themselves (not from the pipeline)."""

from __future__ import annotations

import collections
import datetime as dt

import duckdb
import pyarrow as pa

from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    BRONZE_QUARANTINE,
    GOLD_DAILY_USER_BANDWIDTH,
    TABLES_BY_LAYER,
)
from packetx_lakehouse.lib.storage.iceberg import ensure_table
from packetx_lakehouse.settings import Settings


def scan(settings: Settings, table_def) -> pa.Table:
    return ensure_table(open_catalog(settings), table_def).scan().to_arrow()


def assert_tables_match_files(settings: Settings) -> None:
    """Bronze + quarantine hold every data line of every landing file exactly once, and gold's
    daily KB per user equals the sum of the file's KB column over the lines not quarantined."""
    bronze, quarantine = scan(settings, BRONZE_PACKETS), scan(settings, BRONZE_QUARANTINE)
    gold = scan(settings, GOLD_DAILY_USER_BANDWIDTH)
    quarantined = set(zip(quarantine.column("source_file").to_pylist(), quarantine.column("line_number").to_pylist()))
    lines: collections.Counter[str] = collections.Counter()
    kb: collections.Counter[tuple[dt.date, str]] = collections.Counter()
    for path in sorted(settings.traffic_log_dir.glob("*.csv")):
        parsed = parse_log_file_name(path.name)
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            line = line.rstrip(b"\r")
            if not line or line.startswith(b"User,"):
                continue
            lines[path.name] += 1
            if (path.name, number) not in quarantined:
                kb[parsed.date, parsed.user] += float(line.split(b",")[4])
    stored = collections.Counter(bronze.column("source_file").to_pylist())
    stored.update(quarantine.column("source_file").to_pylist())
    assert stored == lines, f"bronze + quarantine per file {dict(stored)} != lines per file {dict(lines)}"
    lines_stored = list(zip(bronze.column("source_file").to_pylist(), bronze.column("line_number").to_pylist()))
    assert len(set(lines_stored)) == len(lines_stored), "a line is in bronze twice"
    totals = {(row["log_date"], row["user"]): row["total_kb"] for row in gold.to_pylist()}
    assert totals.keys() == kb.keys()
    for key, expected in kb.items():
        assert abs(totals[key] - expected) <= 1e-6 * max(1.0, expected), (key, totals[key], expected)


#: Columns that record when a copy was made, not what it holds: two lakehouses built from the
#: same files differ there and nowhere else.
WHEN_COLUMNS = ("ingested_at", "first_seen", "last_seen")


def table_digests(settings: Settings) -> dict[str, tuple[int, int]]:
    """Every bronze, silver and gold table's row count and an order-independent digest of its rows
    (the sum of DuckDB's row hashes), without the WHEN_COLUMNS: equal for lakehouses with equal
    tables, cheap for big ones. The operations tables are left out: they record what happened
    when (devices seen, totals changed), not what the files hold."""
    catalog = open_catalog(settings)
    digests = {}
    for table_def in (t for layer, tables in TABLES_BY_LAYER.items() if layer != "operations" for t in tables):
        rows = ensure_table(catalog, table_def).scan().to_arrow()
        rows = rows.drop_columns([c for c in WHEN_COLUMNS if c in rows.column_names])
        count, digest = duckdb.sql("SELECT count(*), sum(hash(r)) FROM rows r").fetchone()
        digests[table_def.identifier] = (count, int(digest or 0))
    return digests
