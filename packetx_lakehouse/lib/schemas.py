"""The one home of every table schema in the lakehouse.

Arrow schemas are what the transforms produce; Iceberg schemas and partition specs are derived
from them here so that a column is never declared twice. All timestamps are microseconds
(Iceberg's precision); floats are float64 throughout so PyIceberg's exact type match holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

RAW_NAMESPACE = "packetx_raw"
SILVER_NAMESPACE = "packetx_silver"
GOLD_NAMESPACE = "packetx_gold"

#: The header PacketX writes once when it creates a day's file.
CSV_HEADER = "User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth"
CSV_COLUMNS = CSV_HEADER.split(",")

TS = pa.timestamp("us")
#: What PyIceberg scans return and Polars exports: declaring it avoids a full copy of every text
#: column each time a table passes between a transform, Iceberg and the next layer.
STRING = pa.large_string()
TS_UTC = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableDef:
    """A lakehouse table: where it lives, its columns and how it is partitioned."""

    namespace: str
    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...] = ("log_date",)
    #: Columns that identify one row at the table's grain (checked by asset checks).
    key: tuple[str, ...] = ()
    #: What the table holds, for people: the asset's description in the UI.
    description: str = ""

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields))


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


# --- bronze -------------------------------------------------------------------------------

#: Every parseable row, as the producer wrote it, plus lineage. ``log_date`` is the date in the
#: file name, i.e. the Dagster partition key; partitioning on it (not on the timestamp) makes a
#: day's overwrite exact even when a device's local midnight is not UTC midnight.
BRONZE_PACKETS = TableDef(
    RAW_NAMESPACE,
    "packets",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("time_stamp", TS, False),
        _f("source_ip", STRING, False),
        _f("destination_ip", STRING, False),
        _f("kb_bandwidth", pa.float64(), False),
        _f("total_kb_bandwidth", pa.float64(), False),
        _f("source_file", STRING, False),
        _f("line_number", pa.int64(), False),
        _f("ingested_at", TS_UTC, False),
    ),
    key=("source_file", "line_number"),
    description=(
        "Every parseable PacketX row as the producer wrote it, plus lineage (source file, line "
        "number, ingest time). Partitioned by log_date."
    ),
)

#: Every line that could not be parsed, with the reason; nothing is ever dropped silently.
BRONZE_QUARANTINE = TableDef(
    RAW_NAMESPACE,
    "quarantine",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("source_file", STRING, False),
        _f("line_number", pa.int64(), False),
        _f("raw_line", STRING, False),
        _f("reason", STRING, False),
        _f("ingested_at", TS_UTC, False),
    ),
    key=("source_file", "line_number"),
    description="Every line that could not be parsed, with file, line number, raw text and reason.",
)

#: Landing objects not ingested as they are, with the precise reason (see ``lib/ingest/problems.py``).
#: ``log_date`` is null for what has no day: a badly named file, a link or a sub-folder.
LANDING_PROBLEMS = TableDef(
    RAW_NAMESPACE,
    "landing_problems",
    _schema(
        _f("log_date", pa.date32()),
        _f("object_key", STRING, False),
        _f("kind", STRING, False),
        _f("reason", STRING, False),
        _f("severity", STRING, False),
        _f("size", pa.int64()),
        _f("rows_at_stake", pa.int64()),
        _f("kb_at_stake", pa.float64()),
        _f("first_seen", TS_UTC, False),
        _f("last_seen", TS_UTC, False),
    ),
    key=("log_date", "object_key", "reason"),
    description=(
        "Landing files that were not ingested as they are, with the precise reason: refused (over "
        "a size bound, corrupt gzip, lone-CR line ends), empty or header only, badly named, skipped "
        "(links, sub-folders, hidden entries), shrunk or gone since ingested, retracted, or mostly "
        "off their date. log_date is null when the file has no valid day."
    ),
)

# --- silver -------------------------------------------------------------------------------

#: Typed, deduplicated rows in UTC, oriented around the device. ``device_ip`` is the private IP the
#: orientation used (kept so every ``direction`` can be audited). Restart replays stay, flagged, so
#: the layer still accounts for every bronze row; the lineage pair is the key because PacketX may
#: legitimately write one pair twice in a minute (and a DST fall-back repeats local minutes).
SILVER_PACKETS = TableDef(
    SILVER_NAMESPACE,
    "packets",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("ts_local", TS, False),
        _f("ts_utc", TS_UTC, False),
        _f("source_ip", STRING, False),
        _f("destination_ip", STRING, False),
        _f("device_ip", STRING),
        _f("local_ip", STRING),
        _f("remote_ip", STRING, False),
        _f("local_is_private", pa.bool_(), False),
        _f("remote_is_private", pa.bool_(), False),
        _f("direction", STRING, False),
        _f("kb", pa.float64(), False),
        _f("total_kb", pa.float64(), False),
        _f("is_restart_replay", pa.bool_(), False),
        _f("source_file", STRING, False),
        _f("line_number", pa.int64(), False),
    ),
    partition_by=("log_date", "user"),
    key=("source_file", "line_number"),
    description=(
        "Typed, validated, deduplicated PacketX rows in UTC, partitioned by day and user. Direction "
        "is derived around the user's device IP (PacketX orders each pair as text, so its 'source' is "
        "not the sender); restart replays are kept but flagged so gold never counts them."
    ),
)

DIRECTIONS = ("inbound", "outbound", "internal", "unknown")

# --- gold ---------------------------------------------------------------------------------
# Aggregates exclude restart replays. Dimensions are unpartitioned and rebuilt in full from their
# inputs, so their content does not depend on the order in which days were loaded.

GOLD_HOURLY_BANDWIDTH = TableDef(
    GOLD_NAMESPACE,
    "hourly_bandwidth",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("hour_utc", TS_UTC, False),
        _f("remote_ip", STRING, False),
        _f("direction", STRING, False),
        _f("kb", pa.float64(), False),
        _f("minutes", pa.int64(), False),
    ),
    key=("log_date", "user", "hour_utc", "remote_ip", "direction"),
    description="KB and minutes seen per user, UTC hour, remote IP and direction.",
)

GOLD_DAILY_USER_BANDWIDTH = TableDef(
    GOLD_NAMESPACE,
    "daily_user_bandwidth",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("total_kb", pa.float64(), False),
        _f("inbound_kb", pa.float64(), False),
        _f("outbound_kb", pa.float64(), False),
        _f("internal_kb", pa.float64(), False),
        _f("unknown_kb", pa.float64(), False),
        _f("distinct_remote_hosts", pa.int64(), False),
        _f("peak_minute_utc", TS_UTC, False),
        _f("peak_minute_kb", pa.float64(), False),
        _f("rows", pa.int64(), False),
    ),
    key=("log_date", "user"),
    description=(
        "Per user and day: total / inbound / outbound / internal / unknown KB, distinct remote hosts "
        "and the peak minute."
    ),
)

GOLD_TOP_EXTERNAL_HOSTS = TableDef(
    GOLD_NAMESPACE,
    "top_external_hosts",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("rank", pa.int64(), False),
        _f("remote_ip", STRING, False),
        _f("kb", pa.float64(), False),
        _f("share", pa.float64(), False),
    ),
    key=("log_date", "user", "rank"),
    description="Per user and day, the top public remote IPs by KB, with rank and share.",
)

GOLD_TRAFFIC_ANOMALIES = TableDef(
    GOLD_NAMESPACE,
    "traffic_anomalies",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("hour_utc", TS_UTC, False),
        _f("kb", pa.float64(), False),
        _f("baseline_median_kb", pa.float64(), False),
        _f("baseline_mad_kb", pa.float64(), False),
        _f("robust_z", pa.float64(), False),
        _f("baseline_hours", pa.int64(), False),
    ),
    key=("log_date", "user", "hour_utc"),
    description=(
        "User-hours whose KB is far above that user's trailing 7-day baseline (robust z-score on "
        "median and MAD), with the score and the baseline. A day loaded late also re-scores the 7 "
        "days after it, whose baseline it is part of."
    ),
)

#: The device IP of every user-hour: the small table ``users_dim`` is rebuilt from.
GOLD_USER_IP_HOURLY = TableDef(
    GOLD_NAMESPACE,
    "user_ip_hourly",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("hour_utc", TS_UTC, False),
        _f("local_ip", STRING, False),
        _f("rows", pa.int64(), False),
    ),
    key=("log_date", "user", "hour_utc"),
    description="The user's device IP in every UTC hour: the input users_dim is rebuilt from.",
)

#: Every address a day's counted rows mention: the small table ``ip_dim`` is rebuilt from.
GOLD_DAILY_IPS = TableDef(
    GOLD_NAMESPACE,
    "daily_ips",
    _schema(_f("log_date", pa.date32(), False), _f("ip", STRING, False)),
    key=("log_date", "ip"),
    description="Every IP address seen on a day: the input ip_dim is rebuilt from.",
)

#: SCD type 2 on the device IP; ``user_id`` is the durable key facts carry.
GOLD_USERS_DIM = TableDef(
    GOLD_NAMESPACE,
    "users_dim",
    _schema(
        _f("user_key", pa.int64(), False),
        _f("user_id", pa.int64(), False),
        _f("user", STRING, False),
        _f("local_ip", STRING, False),
        _f("valid_from", TS_UTC, False),
        _f("valid_to", TS_UTC),
        _f("is_current", pa.bool_(), False),
        _f("version", pa.int64(), False),
    ),
    partition_by=(),
    key=("user_key",),
    description=(
        "Users as a slowly changing dimension (type 2) on the device's local IP: one version per run "
        "of hours with the same IP, contiguous validity, exactly one current row per user."
    ),
)

GOLD_IP_DIM = TableDef(
    GOLD_NAMESPACE,
    "ip_dim",
    _schema(
        _f("ip_key", pa.int64(), False),
        _f("ip", STRING, False),
        _f("ip_version", pa.int64()),
        _f("is_private", pa.bool_(), False),
        _f("scope", STRING, False),
    ),
    partition_by=(),
    key=("ip_key",),
    description="Every IP address seen, with a stable surrogate key, version, scope and private flag.",
)

GOLD_DIRECTION_DIM = TableDef(
    GOLD_NAMESPACE,
    "direction_dim",
    _schema(
        _f("direction_key", pa.int64(), False),
        _f("direction", STRING, False),
        _f("description", STRING, False),
    ),
    partition_by=(),
    key=("direction_key",),
    description="The four traffic directions and what each means.",
)

#: Hour grain, so a fact's ``date_key`` (yyyymmddhh of its UTC time) is a plain equality join.
GOLD_DATE_DIM = TableDef(
    GOLD_NAMESPACE,
    "date_dim",
    _schema(
        _f("date_key", pa.int64(), False),
        _f("hour_start_utc", TS_UTC, False),
        _f("date", pa.date32(), False),
        _f("hour", pa.int64(), False),
        _f("day_of_week", pa.int64(), False),
        _f("day_name", STRING, False),
        _f("month", pa.int64(), False),
        _f("year", pa.int64(), False),
        _f("is_weekend", pa.bool_(), False),
    ),
    partition_by=(),
    key=("date_key",),
    description="Calendar at hour grain (UTC) covering every partition from the start date to tomorrow.",
)

#: One row per non-replay silver row. The user is referenced by its durable ``user_id`` plus
#: ``ts_utc`` (point in time within ``users_dim`` validity), never by a version's surrogate key, so
#: loading days out of order cannot leave a fact pointing at a superseded version.
GOLD_PACKETS_FACT = TableDef(
    GOLD_NAMESPACE,
    "packets_fact",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("date_key", pa.int64(), False),
        _f("user_id", pa.int64(), False),
        _f("local_ip_key", pa.int64()),
        _f("remote_ip_key", pa.int64(), False),
        _f("direction_key", pa.int64(), False),
        _f("ts_utc", TS_UTC, False),
        _f("kb", pa.float64(), False),
        _f("source_file", STRING, False),
        _f("line_number", pa.int64(), False),
    ),
    key=("source_file", "line_number"),
    description=(
        "Star-schema fact: one row per counted silver row, keyed to the dimensions (users by durable "
        "user_id + point in time)."
    ),
)

# --- the one registry of tables ----------------------------------------------------------

#: What one read of a day's bronze produces (the reader writes them in one step).
BRONZE_TABLES: tuple[TableDef, ...] = (BRONZE_PACKETS, BRONZE_QUARANTINE, LANDING_PROBLEMS)
#: Bronze tables with one row per line of a file version (``source_file``, ``ingested_at``): what
#: archive retention asks to learn which versions the current bronze was built from.
BRONZE_LINE_TABLES: tuple[TableDef, ...] = (BRONZE_PACKETS, BRONZE_QUARANTINE)
#: The per-day gold tables built from one read of the day's silver rows.
GOLD_DAILY_TABLES: tuple[TableDef, ...] = (
    GOLD_HOURLY_BANDWIDTH, GOLD_DAILY_USER_BANDWIDTH, GOLD_TOP_EXTERNAL_HOSTS, GOLD_USER_IP_HOURLY,
    GOLD_DAILY_IPS, GOLD_PACKETS_FACT,
)  # fmt: skip
#: The star schema's dimensions, rebuilt in full; every consumer (DuckDB, warehouse) copies these.
STAR_DIMENSIONS: tuple[TableDef, ...] = (GOLD_DATE_DIM, GOLD_IP_DIM, GOLD_USERS_DIM, GOLD_DIRECTION_DIM)
STAR_FACT = GOLD_PACKETS_FACT
#: Gold tables a person queries day by day: what serving copies per day (plus the fact).
GOLD_SERVED_DAILY: tuple[TableDef, ...] = (
    GOLD_HOURLY_BANDWIDTH, GOLD_DAILY_USER_BANDWIDTH, GOLD_TOP_EXTERNAL_HOSTS, GOLD_TRAFFIC_ANOMALIES, STAR_FACT,
)  # fmt: skip
#: Every Iceberg table, by layer, in the order data flows.
TABLES_BY_LAYER: dict[str, tuple[TableDef, ...]] = {
    "bronze": BRONZE_TABLES,
    "silver": (SILVER_PACKETS,),
    "gold": (*GOLD_DAILY_TABLES, GOLD_TRAFFIC_ANOMALIES, *STAR_DIMENSIONS),
}
#: The table whose newest partition says how fresh each layer is (dashboard, ops.partitions).
FRESHNESS_TABLES: dict[str, TableDef] = {
    "bronze": BRONZE_PACKETS, "silver": SILVER_PACKETS, "gold": GOLD_DAILY_USER_BANDWIDTH,
}
