"""Deployment settings, read from the environment only (never from code edits).

With nothing set, everything is local under ``data/`` (the embedded default). ``PACKETX_ENV=aws``
switches the same resources to S3 + Glue (+ DynamoDB, and a warehouse if a URL is given).
Credentials are never stored here: boto3, s3fs and PyIceberg take them from the standard AWS
chain, so they cannot leak into logs, run config or metadata through this object.

Every variable, its default and its check are declared once, on :class:`Settings`'s fields
(pydantic-settings reads them). Reading settings never changes the environment. The one step
that does, :func:`prepare_environment` (``.env`` and the legacy credential names), is called
explicitly by each entry point.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import load_dotenv
from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from packetx_lakehouse.lib.ingest.limits import IngestLimits

#: The day of the real PacketX captures the project ships (``devices/samples``): nothing the demo
#: ingests is older, so a fresh install's partitions start with its data instead of hundreds of
#: empty days. A fixed date, not "N days ago": every process (webserver, daemon, each run) loads
#: the definitions at its own time, and a moving start would make a run launched after midnight
#: disagree with the server that planned it, and push older files out of reach for good. Set
#: PACKETX_START_DATE to the first day of your own captures.
DEFAULT_START_DATE = "2026-11-21"
#: Days one backfill run covers (the daily assets' BackfillPolicy): a month per run on one machine.
DEFAULT_BACKFILL_DAYS_PER_RUN = 31

#: Variables once read, and what to do instead: a set-up that still sets one stops with this.
RETIRED_VARIABLES = {
    "PACKETX_SNAPSHOTS_MIN_KEPT": "the current snapshot always stays and every write thins a table to a few (docs/operations.md); "
                                  "set how long replaced states stay with PACKETX_SNAPSHOT_RETENTION_HOURS",
}

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


def prepare_environment() -> None:
    """The one place the process environment is changed: ``.env``, then legacy credential names.

    ``.env`` (in the working directory) is read as ``dagster``/``dg`` read it for code locations:
    variables already set win. Entry points call this before reading :class:`Settings` (the CLI,
    the Dagster code location), so every command sees the same configuration and AWS clients
    (which need the credentials in the environment) find them in their usual chain.
    """
    load_dotenv(Path(".env"), override=False)
    adopt_legacy_aws_credentials()


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


def _whole_number(value: Any) -> Any:
    # ``268_435_456`` reads as it does in Python; "1.5" stays a string and is refused.
    return value.replace("_", "") if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


#: A count from the environment: a positive whole number (``_`` allowed as in ``268_435_456``).
PositiveCount = Annotated[int, BeforeValidator(_whole_number), Field(gt=0)]


def _env(name: str, *fallbacks: str) -> Any:
    """The variable(s) a field is read from: its name stays greppable next to its default."""
    return AliasChoices(name, *fallbacks) if fallbacks else name


class Settings(BaseSettings):
    """Everything that differs between a laptop and AWS, in one place.

    ``Settings(...)`` takes only the values given (tests, tools); :meth:`from_env` reads the
    environment, every variable's default being the field's.
    """

    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, env_ignore_empty=True,
                                      str_strip_whitespace=True, extra="ignore")

    env: Annotated[Literal["local", "aws"], BeforeValidator(_lower)] = Field(
        "local", validation_alias=_env("PACKETX_ENV"))
    data_dir: Path = Field(Path("data"), validation_alias=_env("PACKETX_DATA_DIR"))
    #: Unset: ``<data_dir>/traffic_log``.
    traffic_log_dir: Path = Field(None, validation_alias=_env("PACKETX_TRAFFIC_LOG_DIR"))  # type: ignore[assignment]
    start_date: str = Field(DEFAULT_START_DATE, validation_alias=_env("PACKETX_START_DATE"))
    partition_timezone: str = Field("UTC", validation_alias=_env("PACKETX_TIMEZONE"))
    device_timezones: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("PACKETX_DEVICE_TIMEZONES"))
    default_device_timezone: str = Field("UTC", validation_alias=_env("PACKETX_DEFAULT_DEVICE_TIMEZONE"))
    s3_bucket: str = Field("", validation_alias=_env("PACKETX_S3_BUCKET", "s3_bucket_name"))
    s3_prefix: str = Field("lakehouse/", validation_alias=_env("PACKETX_S3_PREFIX"))
    aws_endpoint_url: str = Field("", validation_alias=_env("AWS_ENDPOINT_URL"))
    aws_region: str = Field("us-east-1", validation_alias=_env("AWS_REGION", "AWS_DEFAULT_REGION"))
    dynamodb_table: str = Field("daily_aggregate", validation_alias=_env("PACKETX_DYNAMODB_TABLE"))
    #: May carry a password: kept out of repr (tracebacks, test output).
    warehouse_url: str = Field("", repr=False, validation_alias=_env("PACKETX_WAREHOUSE_URL"))
    warehouse_schema: str = Field("packetx", validation_alias=_env("PACKETX_WAREHOUSE_SCHEMA"))
    #: Per-file bounds at the landing edge; defaults: :class:`IngestLimits`'s.
    max_file_bytes: PositiveCount = Field(IngestLimits.max_file_bytes, validation_alias=_env("PACKETX_MAX_FILE_BYTES"))
    max_line_bytes: PositiveCount = Field(IngestLimits.max_line_bytes, validation_alias=_env("PACKETX_MAX_LINE_BYTES"))
    max_file_lines: PositiveCount = Field(IngestLimits.max_file_lines, validation_alias=_env("PACKETX_MAX_FILE_LINES"))
    #: Maintenance (docs/operations.md): time travel kept after a table state is replaced (the
    #: one snapshot knob: the current state always stays, and the write path keeps at most
    #: ``SNAPSHOTS_KEPT`` per table, lib/storage/iceberg.py), the age below which unreferenced files are left to a write
    #: in flight, and how long every raw-archive version is kept before only the newest remains.
    snapshot_retention_hours: float = Field(24, ge=0, validation_alias=_env("PACKETX_SNAPSHOT_RETENTION_HOURS"))
    orphan_grace_hours: float = Field(1, ge=0, validation_alias=_env("PACKETX_ORPHAN_GRACE_HOURS"))
    archive_retention_days: float = Field(3, ge=0, validation_alias=_env("PACKETX_ARCHIVE_RETENTION_DAYS"))
    #: SQL catalog database (``postgresql://...`` for several hosts); empty: the local SQLite
    #: file, or Glue on AWS. May carry a password: kept out of repr.
    catalog_url: str = Field("", repr=False, validation_alias=_env("PACKETX_CATALOG_URL"))
    #: Iceberg warehouse (``s3://...``, ``file://...`` or a path); empty: the default location.
    iceberg_warehouse: str = Field("", validation_alias=_env("PACKETX_ICEBERG_WAREHOUSE"))
    #: How a run executes its steps: all in the run's process (the default: steps are vectorised
    #: and a process per step costs ~10 s), or one process per step.
    executor: Annotated[Literal["in_process", "multiprocess"], BeforeValidator(_lower)] = Field(
        "in_process", validation_alias=_env("PACKETX_EXECUTOR"))
    backfill_days_per_run: PositiveCount = Field(DEFAULT_BACKFILL_DAYS_PER_RUN,
                                                 validation_alias=_env("PACKETX_BACKFILL_DAYS_PER_RUN"))
    #: Minutes of its active hours a device may go without data before it counts as silent
    #: (a device with longer usual gaps gets twice its usual gap; ``lib/transform/silence.py``).
    silence_minutes: PositiveCount = Field(30, validation_alias=_env("PACKETX_SILENCE_MINUTES"))

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # values given in code only; from_env adds the environment

    @classmethod
    def from_env(cls) -> Settings:
        """The deployment the environment describes (``.env`` is read by :func:`prepare_environment`).

        Raises:
            ValueError: naming the variable, on a value that is not valid for it.
        """
        for name, instead in RETIRED_VARIABLES.items():
            if os.environ.get(name, "").strip():
                raise ValueError(f"{name} is no longer read: {instead}")
        try:
            return cls(**_FromEnvironment().model_dump())
        except ValidationError as error:
            raise ValueError(_explain(error)) from None

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        dt.date.fromisoformat(value)  # fail early on a malformed date
        return value

    @field_validator("device_timezones", mode="before")
    @classmethod
    def _zones(cls, value: Any) -> Any:
        return parse_device_timezones(value) if isinstance(value, str) else value

    @field_validator("s3_prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        return value if not value or value.endswith("/") else value + "/"

    @model_validator(mode="before")
    @classmethod
    def _landing_under_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict):
            given = {k: v for k, v in values.items() if v not in (None, "")}
            if not any(k in given for k in ("traffic_log_dir", "PACKETX_TRAFFIC_LOG_DIR")):
                data_dir = given.get("data_dir", given.get("PACKETX_DATA_DIR", "data"))
                values = {**values, "traffic_log_dir": Path(data_dir) / "traffic_log"}
        return values

    @model_validator(mode="after")
    def _aws_needs_a_bucket(self) -> Settings:
        if self.env == "aws" and not self.s3_bucket:
            raise ValueError("PACKETX_ENV=aws needs PACKETX_S3_BUCKET (or s3_bucket_name)")
        return self

    @property
    def ingest_limits(self) -> IngestLimits:
        return IngestLimits(max_file_bytes=self.max_file_bytes, max_line_bytes=self.max_line_bytes,
                            max_file_lines=self.max_file_lines)

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
    def dagster_home(self) -> Path:
        """The local Dagster instance of this lakehouse (runs, events, schedules): beside its data, so
        another data directory is another lakehouse, UI state included (``packetx-lakehouse ui``)."""
        return self.data_dir / "dagster"

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


class _FromEnvironment(Settings):
    """:class:`Settings` read from the process environment (its variables are the fields' aliases)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings,)


#: What a value must be, by pydantic's error type (every whole number here is a count, every
#: other number a length of time).
_MUST_BE = {
    "int_parsing": "must be a positive whole number",
    "greater_than": "must be a positive whole number",
    "float_parsing": "must be a number >= 0",
    "greater_than_equal": "must be a number >= 0",
}


def _explain(error: ValidationError) -> str:
    """Each problem as "VARIABLE must be ..., not 'value'", naming the variable as the user set it."""
    lines = []
    for problem in error.errors():
        if not problem["loc"]:  # a rule across variables: its message names them
            lines.append(problem["msg"].removeprefix("Value error, "))
            continue
        # Read from the environment, a field's location is the variable's name.
        name, kind = problem["loc"][0], problem["type"]
        if kind == "literal_error":
            must = f"must be {problem['ctx']['expected']}"
        else:
            must = _MUST_BE.get(kind, f"is not valid ({problem['msg'].removeprefix('Value error, ')})")
        lines.append(f"{name} {must}, not {problem['input']!r}")
    return "; ".join(lines)
