"""Load gold tables into the DuckDB serving database, replacing whole days or whole tables.

A user opens ``<data dir>/serving/packetx.duckdb`` with the duckdb CLI or Python and queries
``gold.*`` and ``ops.*`` with no other set-up, so the data is copied in (not views over Iceberg,
which would need the catalog and extensions at read time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import pyarrow as pa

#: Which version of each whole table the database holds: an unchanged source is not copied again.
SERVED_VERSIONS = "ops.served_versions"


def _ensure(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    con.register("_incoming", data)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _incoming LIMIT 0")
    finally:
        con.unregister("_incoming")


def columns_differ(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str]) -> bool:
    """Whether ``table`` exists with other columns than ``columns``: days cannot be swapped into it."""
    schema, name = table.split(".")
    found = [row[0] for row in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, name]).fetchall()]
    return bool(found) and found != list(columns)


def replace_days(
    con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, days: Sequence[dt.date], *,
    hours: Sequence[dt.datetime] = (), version: int | None = None,
) -> None:
    """Delete ``days`` from ``table`` (only their ``hours``, when given) and insert ``data``, in one
    transaction (idempotent); ``version``, when given, is recorded with it (see ``served_version``)."""
    for schema in {table.split(".")[0], SERVED_VERSIONS.split(".")[0]}:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SERVED_VERSIONS} (table_name VARCHAR PRIMARY KEY, version BIGINT)")
    _ensure(con, table, data)
    con.register("_incoming", data)
    try:
        con.execute("BEGIN TRANSACTION")
        if hours:
            con.execute(f"DELETE FROM {table} WHERE log_date IN (SELECT unnest(?::DATE[])) "
                        "AND hour_utc IN (SELECT unnest(?::TIMESTAMPTZ[]))", [list(days), list(hours)])
        else:
            con.execute(f"DELETE FROM {table} WHERE log_date IN (SELECT unnest(?::DATE[]))", [list(days)])
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
        if version is not None:
            con.execute(f"DELETE FROM {SERVED_VERSIONS} WHERE table_name = ?", [table])
            con.execute(f"INSERT INTO {SERVED_VERSIONS} VALUES (?, ?)", [table, version])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_incoming")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, *, version: int | None = None) -> None:
    """Swap a whole (small) table in one statement; ``version`` (e.g. the Iceberg snapshot id it
    was read from) is recorded with it, in the same transaction, for :func:`served_version`."""
    for schema in {table.split(".")[0], SERVED_VERSIONS.split(".")[0]}:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SERVED_VERSIONS} (table_name VARCHAR PRIMARY KEY, version BIGINT)")
    con.register("_incoming", data)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _incoming")
        con.execute(f"DELETE FROM {SERVED_VERSIONS} WHERE table_name = ?", [table])
        if version is not None:
            con.execute(f"INSERT INTO {SERVED_VERSIONS} VALUES (?, ?)", [table, version])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_incoming")


def served_version(con: duckdb.DuckDBPyConnection, table: str) -> int | None:
    """The ``version`` ``table`` was last copied with by :func:`replace_table` (None: unknown)."""
    try:
        found = con.execute(f"SELECT version FROM {SERVED_VERSIONS} WHERE table_name = ?", [table]).fetchone()
    except duckdb.CatalogException:  # a database from before versions were recorded
        return None
    return found[0] if found else None
