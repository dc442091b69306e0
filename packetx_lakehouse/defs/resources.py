"""Resources that hide where the lakehouse lives: local files or AWS, chosen by environment.

The ``*_resource(settings)`` functions are the one place that maps the deployment settings to
resources (so no default is restated here: every one lives on :class:`Settings`); assets only
ever see these resources, so the same asset code runs against SQLite + files and against Glue +
S3. Code outside a run (the CLI, the demo, tests, benchmarks) asks for what it needs by type,
through the same functions: :func:`open_catalog`, :func:`landing_store`, :func:`archive_store`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from botocore.config import Config
from dagster_aws.s3 import S3Resource
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr
from pyiceberg.catalog import Catalog

from packetx_lakehouse.lib.ingest.retention import ArchiveRetention
from packetx_lakehouse.lib.serving.sql_warehouse import Warehouse
from packetx_lakehouse.lib.storage.iceberg import (
    CATALOG_NAME,
    glue_catalog,
    local_catalog,
    location_uri,
    sql_catalog,
)
from packetx_lakehouse.lib.storage.maintenance import MaintenancePolicy
from packetx_lakehouse.lib.storage.objectstore import (
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
)
from packetx_lakehouse.settings import Settings

WAREHOUSE_URL_VAR = "PACKETX_WAREHOUSE_URL"
CATALOG_URL_VAR = "PACKETX_CATALOG_URL"


def s3_resource(region: str, endpoint_url: str) -> S3Resource:
    """dagster-aws's S3 client resource: the AWS credential chain, an emulator endpoint if given, and
    boto3's retry handler (5 attempts) for throttling and dropped connections."""
    return S3Resource(region_name=region, endpoint_url=endpoint_url or None)


class IcebergCatalogResource(dg.ConfigurableResource):
    """The Iceberg catalog: PyIceberg SQL catalog (SQLite file, or the database at ``url``) or Glue."""

    kind: str = "sql"
    catalog_name: str = CATALOG_NAME
    #: SQL catalog database URL (e.g. PostgreSQL shared by several hosts); empty: ``sqlite_path``.
    url: str = ""
    sqlite_path: str = ""
    #: A path, or a ``file://`` / ``s3://`` URI.
    warehouse: str
    #: AWS region and endpoint (Glue, or S3 under a SQL catalog); empty on a laptop.
    region: str = ""
    endpoint_url: str = ""

    _catalog: Catalog | None = PrivateAttr(default=None)

    def load(self) -> Catalog:
        """Load once per process: catalog construction opens connections we want to reuse."""
        if self._catalog is None:
            if self.kind == "glue":
                self._catalog = glue_catalog(self.warehouse, self.region, self.endpoint_url, self.catalog_name)
            elif self.url:
                # Outside a run (the demo, tests) Dagster has not resolved an EnvVar field yet.
                url = self.url.get_value() if isinstance(self.url, dg.EnvVar) else self.url
                self._catalog = sql_catalog(url, location_uri(self.warehouse), name=self.catalog_name,
                                            region=self.region, endpoint_url=self.endpoint_url)
            else:
                self._catalog = local_catalog(Path(self.sqlite_path), Path(self.warehouse), self.catalog_name)
        return self._catalog


class ObjectStoreResource(dg.ConfigurableResource):
    """A local directory (``root``) or, when ``s3_bucket`` is set, an S3 prefix.

    The S3 client is dagster-aws's (``s3_resource``). It is built here rather than nested as a
    resource field: a nested resource makes this one a context-managed resource, which sensors
    evaluated in tests (``build_sensor_context``) would then have to open and close.
    """

    root: str = ""
    s3_bucket: str = ""
    s3_prefix: str = ""
    region: str = ""
    endpoint_url: str = ""

    def store(self) -> ObjectStore:
        if self.s3_bucket:
            return S3ObjectStore(s3_resource(self.region, self.endpoint_url).get_client(), self.s3_bucket,
                                 self.s3_prefix)
        return LocalObjectStore(self.root)


class MaintenanceResource(dg.ConfigurableResource):
    """Retention of snapshots, unreferenced files and raw-archive versions (docs/operations.md)."""

    snapshot_retention_hours: float
    orphan_grace_hours: float
    archive_retention_days: float

    def policy(self) -> MaintenancePolicy:
        return MaintenancePolicy(snapshot_max_age=dt.timedelta(hours=self.snapshot_retention_hours),
                                 orphan_grace=dt.timedelta(hours=self.orphan_grace_hours))

    def archive_retention(self) -> ArchiveRetention:
        return ArchiveRetention(keep_all_for=dt.timedelta(days=self.archive_retention_days))


class DeviceTimezonesResource(dg.ConfigurableResource):
    """Time zone of each capturing device; PacketX writes local minutes without a zone."""

    zones: dict[str, str]
    default: str


class DynamoDBResource(dg.ConfigurableResource):
    """The DynamoDB serving table (AWS only); credentials from the AWS chain."""

    table: str
    region: str
    endpoint_url: str = ""

    def client(self) -> Any:
        # Standard retry mode backs off on throttling errors raised by any call, not only batches.
        config = Config(retries={"mode": "standard", "max_attempts": 10})
        return boto3.client("dynamodb", region_name=self.region, endpoint_url=self.endpoint_url or None, config=config)


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL or Redshift warehouse the star schema is exported to."""

    url: str
    schema_name: str

    def warehouse(self) -> Warehouse:
        return Warehouse(self.url, self.schema_name)


def _secret(variable: str, value: str) -> str | dg.EnvVar:
    """A URL that may carry a password: through EnvVar the UI shows the variable's name, never the value."""
    return dg.EnvVar(variable) if os.environ.get(variable, "").strip() == value else value


def catalog_resource(settings: Settings) -> IcebergCatalogResource:
    """The catalog the settings name: a SQL catalog at a URL, Glue on AWS, else the local SQLite file."""
    if settings.catalog_url:
        return IcebergCatalogResource(url=_secret(CATALOG_URL_VAR, settings.catalog_url),
                                      warehouse=settings.iceberg_warehouse_location, **_aws(settings))
    if settings.is_aws:
        return IcebergCatalogResource(kind="glue", warehouse=settings.iceberg_warehouse_location, **_aws(settings))
    return IcebergCatalogResource(sqlite_path=str(settings.catalog_path), warehouse=settings.iceberg_warehouse_location)


def landing_resource(settings: Settings) -> ObjectStoreResource:
    """Where devices put their traffic logs: the landing directory, or the S3 landing prefix."""
    if settings.is_aws:
        return ObjectStoreResource(s3_bucket=settings.s3_bucket, s3_prefix=settings.s3_landing_prefix,
                                   **_aws(settings))
    return ObjectStoreResource(root=str(settings.traffic_log_dir))


def archive_resource(settings: Settings) -> ObjectStoreResource:
    """The raw archive: a local directory, or an S3 prefix."""
    if settings.is_aws:
        return ObjectStoreResource(s3_bucket=settings.s3_bucket, s3_prefix=settings.s3_archive_prefix,
                                   **_aws(settings))
    return ObjectStoreResource(root=str(settings.archive_dir))


def maintenance_resource(settings: Settings) -> MaintenanceResource:
    return MaintenanceResource(
        snapshot_retention_hours=settings.snapshot_retention_hours,
        orphan_grace_hours=settings.orphan_grace_hours,
        archive_retention_days=settings.archive_retention_days,
    )


def open_catalog(settings: Settings) -> Catalog:
    """The Iceberg catalog, outside a run (CLI, demo, tests, benchmarks)."""
    return catalog_resource(settings).load()


def landing_store(settings: Settings) -> ObjectStore:
    """The landing area, outside a run."""
    return landing_resource(settings).store()


def archive_store(settings: Settings) -> ObjectStore:
    """The raw archive, outside a run."""
    return archive_resource(settings).store()


def _aws(settings: Settings) -> dict[str, str]:
    return {"region": settings.aws_region, "endpoint_url": settings.aws_endpoint_url}


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """All resources for one deployment, under the keys the assets ask for."""
    resources: dict[str, dg.ConfigurableResource] = {
        "iceberg": catalog_resource(settings),
        "landing": landing_resource(settings),
        "raw_archive": archive_resource(settings),
        "device_timezones": DeviceTimezonesResource(
            zones=settings.device_timezones, default=settings.default_device_timezone
        ),
        "duckdb": DuckDBResource(database=str(settings.serving_path)),
        "maintenance": maintenance_resource(settings),
    }
    if settings.is_aws:
        resources["dynamodb"] = DynamoDBResource(table=settings.dynamodb_table, **_aws(settings))
    if settings.warehouse_url:
        resources["warehouse"] = WarehouseResource(
            url=_secret(WAREHOUSE_URL_VAR, settings.warehouse_url),
            schema_name=settings.warehouse_schema,
        )
    return resources
