"""Export the gold star schema to PostgreSQL or Redshift (both spoken to with psycopg).

- Schema changes are numbered SQL files in ``migrations/``, applied once each, in order, inside
  one transaction, and recorded in ``<schema>.schema_migrations``: re-running is a no-op.
- Loading a run's days is one transaction: the small dimensions are replaced in full (so SCD2
  validity in the warehouse always equals the gold table's) and the days' facts are deleted and
  re-inserted. Re-loading a day therefore changes nothing, and readers never see half a load.
- PostgreSQL gets rows by ``COPY ... FROM STDIN`` (CSV written by Arrow); Redshift, whose COPY
  reads only from S3 and friends, gets multi-row INSERTs.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from packetx_lakehouse.lib.schemas import STAR_DIMENSIONS, STAR_FACT, TableDef

REDSHIFT_PORT = 5439
#: Rows per multi-row INSERT on Redshift (well under its 16 MB statement limit).
INSERT_BATCH = 500


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


@dataclass(frozen=True)
class LoadResult:
    """Rows in each loaded table after the load (facts: only the loaded days)."""

    rows: dict[str, int]


def connection_info(url: str) -> tuple[str, str]:
    """(libpq URL, dialect) for a ``postgresql://`` / ``postgres://`` or ``redshift://`` URL.

    Redshift speaks the PostgreSQL wire protocol, so ``redshift://`` becomes a libpq URL with
    Redshift's default port 5439.
    """
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return url, "postgresql"
    if parts.scheme == "redshift":
        netloc = parts.netloc if parts.port else f"{parts.netloc}:{REDSHIFT_PORT}"
        return urlunsplit(("postgresql", netloc, parts.path, parts.query, parts.fragment)), "redshift"
    raise ValueError("PACKETX_WAREHOUSE_URL must start with postgresql:// or redshift://")


def redacted(url: str) -> str:
    """``scheme://host:port/db``: what may appear in logs and metadata (no user, no password)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def migrations() -> list[Migration]:
    """The bundled ``NNNN_name.sql`` files, in version order."""
    files = sorted(
        (f for f in resources.files("packetx_lakehouse.lib.serving").joinpath("migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    return [Migration(f.name.removesuffix(".sql"), f.read_text()) for f in files]


class Warehouse:
    """One warehouse schema reached through ``url``; connections are opened per operation."""

    def __init__(self, url: str, schema: str = "packetx") -> None:
        self._url, self.dialect = connection_info(url)
        self.schema = schema
        self.location = f"{redacted(url)}#{schema}"

    def connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self._url)
        except psycopg.OperationalError as exc:
            # libpq's message names host and port, never the password; drop the chained URL anyway.
            raise RuntimeError(f"cannot connect to warehouse {self.location}: {exc}") from None

    def _ident(self, table: str) -> sql.Composed:
        return sql.Identifier(self.schema, table)

    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction; return the versions applied now."""
        applied_now: list[str] = []
        with self.connect() as conn, conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (version VARCHAR(128) PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
                .format(self._ident("schema_migrations"))
            )
            # Two processes migrating at once: the second waits here, then finds nothing to do.
            conn.execute(sql.SQL("LOCK TABLE {}").format(self._ident("schema_migrations")))
            done = {row[0] for row in conn.execute(sql.SQL("SELECT version FROM {}").format(self._ident("schema_migrations")))}
            for migration in migrations():
                if migration.version in done:
                    continue
                conn.execute(sql.SQL(migration.sql).format(schema=sql.Identifier(self.schema)))
                conn.execute(
                    sql.SQL("INSERT INTO {} (version, applied_at) VALUES (%s, %s)").format(self._ident("schema_migrations")),
                    (migration.version, dt.datetime.now(dt.UTC)),
                )
                applied_now.append(migration.version)
        return applied_now

    def applied(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY version").format(self._ident("schema_migrations")))
            return [row[0] for row in rows]

    def load(self, days: Sequence[dt.date], fact: pa.Table, dimensions: dict[TableDef, pa.Table]) -> LoadResult:
        """Replace the dimensions and the facts of ``days`` in one transaction.

        Raises:
            ValueError: if ``fact`` holds rows outside ``days`` (they would be duplicated by the
                next load of their own day).
        """
        if not days:
            raise ValueError("no days to load")
        stray = set(fact.column("log_date").to_pylist()) - set(days)
        if stray:
            raise ValueError(f"fact rows for {sorted(stray)} outside the days being loaded")
        tables = [*(t.name for t in STAR_DIMENSIONS), STAR_FACT.name]
        with self.connect() as conn, conn.transaction():
            # Concurrent loads (other days) replace the same dimensions: one at a time.
            conn.execute(sql.SQL("LOCK TABLE {}").format(sql.SQL(", ").join(self._ident(t) for t in tables)))
            for table_def in STAR_DIMENSIONS:
                conn.execute(sql.SQL("DELETE FROM {}").format(self._ident(table_def.name)))
                self._insert(conn, table_def, dimensions[table_def])
            day_list = sql.SQL(", ").join(sql.Literal(day) for day in sorted(set(days)))
            conn.execute(sql.SQL("DELETE FROM {} WHERE log_date IN ({})").format(self._ident(STAR_FACT.name), day_list))
            self._insert(conn, STAR_FACT, fact)
            counts = {t.name: self._count(conn, t.name) for t in STAR_DIMENSIONS}
            counts[STAR_FACT.name] = self._count(conn, STAR_FACT.name, sql.SQL(" WHERE log_date IN ({})").format(day_list))
        return LoadResult(counts)

    def _count(self, conn: psycopg.Connection, table: str, where: sql.Composable = sql.SQL("")) -> int:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}{}").format(self._ident(table), where)).fetchone()[0]

    def _insert(self, conn: psycopg.Connection, table_def: TableDef, data: pa.Table) -> None:
        data = data.select(table_def.schema.names).cast(table_def.schema)
        if not data.num_rows:
            return
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in table_def.schema.names)
        target = self._ident(table_def.name)
        if self.dialect == "postgresql":
            buffer = io.BytesIO()
            pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False))
            with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)) as copy:
                copy.write(buffer.getvalue())
            return
        row_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(table_def.schema.names)))
        rows = [tuple(row.values()) for row in data.to_pylist()]
        with conn.cursor() as cursor:
            for start in range(0, len(rows), INSERT_BATCH):
                batch = rows[start:start + INSERT_BATCH]
                statement = sql.SQL("INSERT INTO {} ({}) VALUES {}").format(
                    target, columns, sql.SQL(", ").join(row_sql for _ in batch)
                )
                cursor.execute(statement, [value for row in batch for value in row])

    def read(self, table: str, order_by: Iterable[str]) -> list[tuple]:
        """All rows of one table, ordered (for checks and tests)."""
        order = sql.SQL(", ").join(sql.Identifier(c) for c in order_by)
        with self.connect() as conn:
            return conn.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(self._ident(table), order)).fetchall()
