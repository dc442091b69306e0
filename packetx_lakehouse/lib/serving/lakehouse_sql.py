"""Ad-hoc SQL over the live lakehouse: DuckDB reading every Iceberg table where it lies.

DuckDB's ``iceberg`` (and ``avro``, which it reads manifests with; ``httpfs`` for S3) extensions
are loaded from the files of their pinned wheels, never installed from the network, and the
connection refuses to fetch any. Each Iceberg table becomes a view named like the table
(``packetx_gold.daily_user_bandwidth``), beside the serving database's own ``gold.*`` and ``ops.*``.
As of an earlier time, each view reads the snapshot that was current then (``iceberg_scan``'s
``snapshot_from_id``), and a table whose state then is not kept raises why when a query uses it.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from packetx_lakehouse.lib.schemas import TableDef
from packetx_lakehouse.lib.storage.time_travel import AsOf, Resolved, resolve


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
class TableView:
    """How a view reads an Iceberg table: its current state, one snapshot, or no rows at all."""

    location: str
    snapshot_id: int | None = None
    #: The table's columns when the state read has no rows (it was not written yet).
    empty: pa.Schema | None = None
    #: Why the state asked for cannot be read: a query that uses the view fails with this.
    unreachable: str | None = None


def views_as_of(
    catalog: Catalog, tables: Iterable[TableDef], as_of: AsOf, now: dt.datetime
) -> tuple[Resolved, dict[str, TableView]]:
    """Every existing table of ``tables`` as it was at ``as_of`` (see ``lib/storage/time_travel.py``).

    Raises:
        AsOfOutOfReach: when not one table keeps its state of then.
    """
    loaded = {}
    for table_def in tables:
        try:
            loaded[table_def.identifier] = catalog.load_table(table_def.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            continue
    resolved = resolve(loaded, as_of, now)
    views = {}
    for identifier, table in loaded.items():
        schema = table.schema().as_arrow()
        state = resolved.states.get(identifier)
        if state is None:
            views[identifier] = TableView(table.metadata_location, empty=schema,
                                          unreachable=resolved.out_of_reach[identifier])
        elif state.snapshot_id is None:
            views[identifier] = TableView(table.metadata_location, empty=schema)
        else:
            views[identifier] = TableView(table.metadata_location, snapshot_id=state.snapshot_id)
    return resolved, views


@dataclass(frozen=True)
class S3Access:
    """Where DuckDB reads ``s3://`` tables from; credentials come from the caller's environment."""

    region: str
    key_id: str = ""
    secret: str = ""
    session_token: str = ""
    #: An emulator such as ``http://127.0.0.1:5000``; empty for AWS itself.
    endpoint_url: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], region: str, endpoint_url: str = "") -> "S3Access":
        """The standard AWS variables of ``environ`` (never logged, never in settings)."""
        return cls(region=region, key_id=environ.get("AWS_ACCESS_KEY_ID", ""),
                   secret=environ.get("AWS_SECRET_ACCESS_KEY", ""), session_token=environ.get("AWS_SESSION_TOKEN", ""),
                   endpoint_url=endpoint_url)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def lakehouse_connection(
    metadata_locations: Mapping[str, str | TableView], serving_path: Path | None = None, s3: S3Access | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per Iceberg table and the serving database attached read-only.

    Args:
        metadata_locations: ``namespace.table`` -> the table's current metadata file, or how to read it
            (:class:`TableView`: one snapshot, no rows, or not at all).
        serving_path: The serving database; its schemas are shown as views of the same names.
        s3: How to reach tables whose metadata lives on S3.
    """
    views = {identifier: view if isinstance(view, TableView) else TableView(view)
             for identifier, view in metadata_locations.items()}
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    on_s3 = any(view.location.startswith("s3://") for view in views.values())
    for name in ("avro", "iceberg", *(("httpfs",) if on_s3 else ())):
        con.execute(f"LOAD {_quote(str(extension_path(name)))}")
    if on_s3 and s3 is not None:
        con.execute(f"CREATE SECRET lakehouse_s3 ({_s3_secret(s3)})")
    for identifier, view in sorted(views.items()):
        namespace, table = identifier.split(".", 1)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {namespace}")
        _create_view(con, f"{namespace}.{table}", view)
    if serving_path is not None and serving_path.is_file():
        con.execute(f"ATTACH {_quote(str(serving_path))} AS serving (READ_ONLY)")
        served = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'serving' "
                             "UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'serving' "
                             "AND NOT internal ORDER BY 1, 2").fetchall()
        for schema, table in served:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            con.execute(f"CREATE VIEW {schema}.{table} AS SELECT * FROM serving.{schema}.{table}")
    return con


def _create_view(con: duckdb.DuckDBPyConnection, name: str, view: TableView) -> None:
    if view.empty is None:
        pinned = f", snapshot_from_id = {view.snapshot_id}" if view.snapshot_id is not None else ""
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM iceberg_scan({_quote(view.location)}{pinned})")
        return
    # No rows then, or no state kept: a table of the right columns (so queries bind), raising when read.
    empty = f"_empty.{name.replace('.', '__')}"
    con.execute("CREATE SCHEMA IF NOT EXISTS _empty")
    con.register("_columns", view.empty.empty_table())
    try:
        con.execute(f"CREATE TABLE {empty} AS SELECT * FROM _columns")
    finally:
        con.unregister("_columns")
    if view.unreachable:  # one row of nulls, so that the error is raised whatever the query filters
        con.execute(f"CREATE VIEW {name} AS SELECT e.* FROM range(1) LEFT JOIN {empty} AS e ON true "
                    f"WHERE error({_quote(view.unreachable)})")
    else:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM {empty}")


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
