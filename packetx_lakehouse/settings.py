"""Deployment settings, read from the environment only (never from code edits).

With nothing set, everything is local under ``data/`` (the embedded default). ``PACKETX_ENV=aws``
switches the same resources to S3 + Glue (+ DynamoDB, and a warehouse if a URL is given).
Credentials are never stored here: boto3, s3fs and PyIceberg take them from the standard AWS
chain, so they cannot leak into logs, run config or metadata through this object.

Reading settings never changes the environment. The one step that does, :func:`prepare_environment`
(``.env`` and the legacy credential names), is called explicitly by each entry point.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from packetx_lakehouse.lib.ingest.limits import IngestLimits

#: The day of the real PacketX captures the project ships (``devices/samples``): nothing the demo
#: ingests is older, so a fresh install's partitions start with its data instead of hundreds of
#: empty days. A fixed date, not "N days ago": every process (webserver, daemon, each run) loads
#: the definitions at its own time, and a moving start would make a run launched after midnight
#: disagree with the server that planned it, and push older files out of reach for good. Set
#: PACKETX_START_DATE to the first day of your own captures.
DEFAULT_START_DATE = "2026-11-21"
#: How a run executes its steps: all in the run's process (the default: steps are vectorised and
#: a process per step costs ~10 s), or one process per step.
EXECUTOR_NAMES = ("in_process", "multiprocess")
#: Days one backfill run covers (the daily assets' BackfillPolicy): a month per run on one machine.
DEFAULT_BACKFILL_DAYS_PER_RUN = 31


def _env(name: str, default: str = "") -> str:
    value = os.environ.get(name, "").strip()
    return value if value else default


def _env_number(name: str, default: float) -> float:
    """A number of hours or days, zero or more; a typo or a negative value stops the run."""
    text = _env(name)
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {text!r}")
    return value


#: Lower-case names older PacketX set-ups keep in ``.env``, and the standard names they stand for.
LEGACY_AWS_NAMES = {"aws_access_key_id": "AWS_ACCESS_KEY_ID", "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY"}


def adopt_legacy_aws_credentials(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Copy legacy credential variables to their standard names, unless those are already set.

    Every AWS client here (boto3, s3fs via aiobotocore, PyIceberg's Glue client) then finds them
    through the ordinary credential chain, and the values never pass through Dagster config.
    Returns the standard names that were filled in (never the values).
    """
    adopted = []
    for legacy, standard in LEGACY_AWS_NAMES.items():
        if environ.get(legacy, "").strip() and not environ.get(standard, "").strip():
            environ[standard] = environ[legacy].strip()
            adopted.append(standard)
    return adopted


def load_dotenv_file(path: Path = Path(".env"), environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Read ``.env`` as ``dagster``/``dg`` do for code locations: variables already set win.

    Returns the names that were taken from the file (never the values).
    """
    if not path.is_file():
        return []
    taken = []
    for name, value in dotenv_values(path).items():
        if value is not None and name not in environ:
            environ[name] = value
            taken.append(name)
    return taken


def prepare_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """The one place the process environment is changed: ``.env``, then legacy credential names.

    Entry points call it before reading :class:`Settings` (the CLI, the Dagster code location), so
    every command sees the same configuration and AWS clients find credentials in their usual chain.
    """
    load_dotenv_file(environ=environ)
    adopt_legacy_aws_credentials(environ)


def _positive_int(name: str, default: int) -> int:
    """A positive integer variable (``_`` allowed as in ``268_435_456``); a typo stops the run."""
    text = _env(name)
    if not text:
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number, not {text!r}")
    return value


def parse_device_timezones(spec: str) -> dict[str, str]:
    """Parse ``alice=Europe/Berlin,bob=America/New_York`` into a mapping.

    Raises:
        ValueError: on an entry without ``=``, so a typo stops the run instead of silently
            treating a device as UTC.
    """
    zones: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        user, sep, zone = entry.partition("=")
        if not sep or not user.strip() or not zone.strip():
            raise ValueError(
                f"PACKETX_DEVICE_TIMEZONES entry {entry!r} is not of the form user=Area/City"
            )
        zones[user.strip()] = zone.strip()
    return zones


@dataclass(frozen=True)
class Settings:
    """Everything that differs between a laptop and AWS, in one place."""

    env: str = "local"
    data_dir: Path = Path("data")
    traffic_log_dir: Path = Path("data/traffic_log")
    start_date: str = DEFAULT_START_DATE
    partition_timezone: str = "UTC"
    device_timezones: dict[str, str] = field(default_factory=dict)
    default_device_timezone: str = "UTC"
    s3_bucket: str = ""
    s3_prefix: str = "lakehouse/"
    aws_endpoint_url: str = ""
    aws_region: str = "us-east-1"
    dynamodb_table: str = "daily_aggregate"
    #: May carry a password: kept out of repr (tracebacks, test output).
    warehouse_url: str = field(default="", repr=False)
    warehouse_schema: str = "packetx"
    #: Per-file bounds at the landing edge (``PACKETX_MAX_FILE_BYTES``, ``_LINE_BYTES``, ``_FILE_LINES``).
    ingest_limits: IngestLimits = IngestLimits()
    #: Maintenance (docs/operations.md): time travel kept after a table state is replaced, the
    #: newest snapshots always kept, the age below which unreferenced files are left to a write
    #: in flight, and how long every raw-archive version is kept before only the newest remains.
    snapshot_retention_hours: float = 24
    snapshots_min_kept: int = 1
    orphan_grace_hours: float = 1
    archive_retention_days: float = 3
    #: SQL catalog database (``postgresql://...`` for several hosts); empty: the local SQLite
    #: file, or Glue on AWS. May carry a password: kept out of repr.
    catalog_url: str = field(default="", repr=False)
    #: Iceberg warehouse (``s3://...``, ``file://...`` or a path); empty: the default location.
    iceberg_warehouse: str = ""
    executor: str = "in_process"
    backfill_days_per_run: int = DEFAULT_BACKFILL_DAYS_PER_RUN
    #: Minutes of its active hours a device may go without data before it counts as silent
    #: (a device with longer usual gaps gets twice its usual gap; ``lib/transform/silence.py``).
    silence_minutes: int = 30

    @property
    def is_aws(self) -> bool:
        return self.env == "aws"

    @property
    def iceberg_warehouse_location(self) -> str:
        """Where table files go: the configured warehouse, else S3 on AWS, else under ``data/``."""
        if self.iceberg_warehouse:
            return self.iceberg_warehouse
        return self.s3_warehouse_uri if self.is_aws else str(self.warehouse_dir)

    @property
    def lakehouse_dir(self) -> Path:
        return self.data_dir / "lakehouse"

    @property
    def catalog_path(self) -> Path:
        return self.lakehouse_dir / "catalog.db"

    @property
    def warehouse_dir(self) -> Path:
        return self.lakehouse_dir / "warehouse"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "raw_archive"

    @property
    def serving_path(self) -> Path:
        return self.data_dir / "serving" / "packetx.duckdb"

    @property
    def s3_landing_prefix(self) -> str:
        return f"{self.s3_prefix}raw_data_upload/"

    @property
    def s3_archive_prefix(self) -> str:
        return f"{self.s3_prefix}raw_archive/"

    @property
    def s3_warehouse_uri(self) -> str:
        return f"s3://{self.s3_bucket}/{self.s3_prefix}warehouse"

    @classmethod
    def from_env(cls) -> "Settings":
        env = _env("PACKETX_ENV", "local").lower()
        if env not in ("local", "aws"):
            raise ValueError(f"PACKETX_ENV must be 'local' or 'aws', not {env!r}")
        data_dir = Path(_env("PACKETX_DATA_DIR", "data"))
        start_date = _env("PACKETX_START_DATE", DEFAULT_START_DATE)
        dt.date.fromisoformat(start_date)  # fail early on a malformed date
        prefix = _env("PACKETX_S3_PREFIX", "lakehouse/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        bucket = _env("PACKETX_S3_BUCKET", _env("s3_bucket_name"))
        if env == "aws" and not bucket:
            raise ValueError("PACKETX_ENV=aws needs PACKETX_S3_BUCKET (or s3_bucket_name)")
        executor = _env("PACKETX_EXECUTOR", "in_process").lower()
        if executor not in EXECUTOR_NAMES:
            raise ValueError(f"PACKETX_EXECUTOR must be one of {', '.join(EXECUTOR_NAMES)}, not {executor!r}")
        return cls(
            env=env,
            data_dir=data_dir,
            traffic_log_dir=Path(_env("PACKETX_TRAFFIC_LOG_DIR", str(data_dir / "traffic_log"))),
            start_date=start_date,
            partition_timezone=_env("PACKETX_TIMEZONE", "UTC"),
            device_timezones=parse_device_timezones(_env("PACKETX_DEVICE_TIMEZONES")),
            default_device_timezone=_env("PACKETX_DEFAULT_DEVICE_TIMEZONE", "UTC"),
            s3_bucket=bucket,
            s3_prefix=prefix,
            aws_endpoint_url=_env("AWS_ENDPOINT_URL"),
            aws_region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")),
            dynamodb_table=_env("PACKETX_DYNAMODB_TABLE", "daily_aggregate"),
            warehouse_url=_env("PACKETX_WAREHOUSE_URL"),
            warehouse_schema=_env("PACKETX_WAREHOUSE_SCHEMA", "packetx"),
            ingest_limits=IngestLimits(
                max_file_bytes=_positive_int("PACKETX_MAX_FILE_BYTES", IngestLimits.max_file_bytes),
                max_line_bytes=_positive_int("PACKETX_MAX_LINE_BYTES", IngestLimits.max_line_bytes),
                max_file_lines=_positive_int("PACKETX_MAX_FILE_LINES", IngestLimits.max_file_lines),
            ),
            snapshot_retention_hours=_env_number("PACKETX_SNAPSHOT_RETENTION_HOURS", 24),
            snapshots_min_kept=_positive_int("PACKETX_SNAPSHOTS_MIN_KEPT", 1),
            orphan_grace_hours=_env_number("PACKETX_ORPHAN_GRACE_HOURS", 1),
            archive_retention_days=_env_number("PACKETX_ARCHIVE_RETENTION_DAYS", 3),
            catalog_url=_env("PACKETX_CATALOG_URL"),
            iceberg_warehouse=_env("PACKETX_ICEBERG_WAREHOUSE"),
            executor=executor,
            backfill_days_per_run=_positive_int("PACKETX_BACKFILL_DAYS_PER_RUN", DEFAULT_BACKFILL_DAYS_PER_RUN),
            silence_minutes=_positive_int("PACKETX_SILENCE_MINUTES", 30),
        )
