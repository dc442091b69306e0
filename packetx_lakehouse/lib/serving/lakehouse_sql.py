"""Ad-hoc SQL over the live lakehouse: DuckDB reading every Iceberg table where it lies.

DuckDB's ``iceberg`` (and ``avro``, which it reads manifests with; ``httpfs`` for S3) extensions
are loaded from the files of their pinned wheels, never installed from the network, and the
connection refuses to fetch any. Each Iceberg table becomes a view named like the table
(``packetx_gold.daily_user_bandwidth``), beside the serving database's own ``gold.*`` and ``ops.*``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from packetx_lakehouse.lib.schemas import TableDef


def extension_path(name: str) -> Path:
    """The ``<name>.duckdb_extension`` file the ``duckdb-extension-<name>`` wheel ships for this DuckDB.

    Raises:
        FileNotFoundError: naming the wheel, when it is missing or built for another DuckDB.
    """
    try:
        package = Path(importlib.import_module(f"duckdb_extension_{name}").__file__).parent
    except ImportError as exc:
        raise FileNotFoundError(f"DuckDB extension {name!r} needs the wheel duckdb-extension-{name}") from exc
    path = package / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: duckdb-extension-{name} does not match duckdb {duckdb.__version__}")
    return path


def metadata_locations(catalog: Catalog, tables: Iterable[TableDef]) -> dict[str, str]:
    """``namespace.table`` -> current metadata file, for each table that exists and holds a snapshot."""
    found = {}
    for table_def in tables:
        try:
            table = catalog.load_table(table_def.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            continue
        if table.current_snapshot() is not None:  # DuckDB cannot scan a table with no snapshot yet
            found[table_def.identifier] = table.metadata_location
    return found


@dataclass(frozen=True)
class S3Access:
    """Where DuckDB reads ``s3://`` tables from; credentials come from the caller's environment."""

    region: str
    key_id: str = ""
    secret: str = ""
    session_token: str = ""
    #: An emulator such as ``http://127.0.0.1:5000``; empty for AWS itself.
    endpoint_url: str = ""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lakehouse_connection(
    metadata_locations: Mapping[str, str], serving_path: Path | None = None, s3: S3Access | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per Iceberg table and the serving database attached read-only.

    Args:
        metadata_locations: ``namespace.table`` -> the table's current metadata file.
        serving_path: The serving database; its schemas are shown as views of the same names.
        s3: How to reach tables whose metadata lives on S3.
    """
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    on_s3 = any(location.startswith("s3://") for location in metadata_locations.values())
    for name in ("avro", "iceberg", *(("httpfs",) if on_s3 else ())):
        con.execute(f"LOAD {_quote(str(extension_path(name)))}")
    if on_s3 and s3 is not None:
        con.execute(f"CREATE SECRET lakehouse_s3 ({_s3_secret(s3)})")
    for identifier, location in sorted(metadata_locations.items()):
        namespace, table = identifier.split(".", 1)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
        con.execute(f"CREATE VIEW {namespace}.{table} AS SELECT * FROM iceberg_scan({_quote(location)})")
    if serving_path is not None and serving_path.is_file():
        con.execute(f"ATTACH {_quote(str(serving_path))} AS serving (READ_ONLY)")
        served = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'serving' "
                             "UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'serving' "
                             "AND NOT internal ORDER BY 1, 2").fetchall()
        for schema, table in served:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE VIEW {schema}.{table} AS SELECT * FROM serving.{schema}.{table}")
    return con


def _s3_secret(s3: S3Access) -> str:
    options = {"TYPE": "s3", "REGION": s3.region}
    if s3.key_id:
        options |= {"KEY_ID": s3.key_id, "SECRET": s3.secret}
    if s3.session_token:
        options["SESSION_TOKEN"] = s3.session_token
    if s3.endpoint_url:
        scheme, _, host = s3.endpoint_url.partition("://")
        options |= {"ENDPOINT": host.rstrip("/"), "URL_STYLE": "path", "USE_SSL": str(scheme == "https").lower()}
    return ", ".join(f"{k} {v if k == 'USE_SSL' or k == 'TYPE' else _quote(v)}" for k, v in options.items())
