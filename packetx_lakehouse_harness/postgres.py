"""Throw-away PostgreSQL databases on the machine's server (PACKETX_TEST_PG_URL names its admin database)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql

PG_ADMIN_URL = os.environ.get("PACKETX_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


@contextlib.contextmanager
def fresh_database(prefix: str = "packetx_test") -> Iterator[str]:
    """A new database, dropped (connections and all) on exit: its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with _admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
