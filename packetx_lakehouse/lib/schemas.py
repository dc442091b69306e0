"""The one home of every table schema in the lakehouse.

Arrow schemas are what the transforms produce; Iceberg schemas and partition specs are derived
from them here so that a column is never declared twice. All timestamps are microseconds
(Iceberg's precision); floats are float64 throughout so PyIceberg's exact type match holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
    #: Columns whose name means something else here than in ``COLUMN_GLOSSARY``.
    column_notes: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Columns whose per-day sums every commit keeps in the table's metadata, beside the row count
    #: (``lib/storage/iceberg.py``): what conservation checks read instead of scanning a day.
    totals: tuple[str, ...] = field(default=(), compare=False)
    #: The table the columns are computed from, and which of its columns feed each one.
    derived_from: "TableDef | None" = field(default=None, compare=False)
    lineage: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"

    def column_description(self, column: str) -> str:
        """What ``column`` holds, for people (the UI's column list, the docs); "" if unknown."""
        return self.column_notes.get(column) or COLUMN_GLOSSARY.get(column, "")


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema(list(fields))


def _f(name: str, type_: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)



#: What each column means, by name: written once for every table where the name means the same
#: thing (``TableDef.column_notes`` holds the exceptions). Shown as the column descriptions of
#: every asset in the Dagster UI before anything has run.
COLUMN_GLOSSARY: dict[str, str] = {
    # lineage and partitioning
    "log_date": "The date in the traffic-log file name (the device's local day): the daily partition key.",
    "user": "The device's user, as PacketX writes it (equals the user in the file name).",
    "source_file": "The landing file the row was read from (its name as landed, e.g. alice-2026-11-20.csv).",
    "line_number": "1-based line of the row in that file: with source_file, the row's identity.",
    "ingested_at": "When bronze read the file version this row comes from (UTC).",
    # bronze, as PacketX wrote it
    "time_stamp": "The capture minute in the device's local time, as written (no zone).",
    "source_ip": "The first IP of the pair as PacketX wrote it (the text-larger end, not the sender).",
    "destination_ip": "The second IP of the pair as PacketX wrote it (not necessarily the receiver).",
    "kb_bandwidth": "KB the pair exchanged in that minute, both directions summed, as written.",
    "total_kb_bandwidth": "The device's total KB in that minute, repeated on every row of the minute, as written.",
    "raw_line": "The line as read (bytes that are not UTF-8 shown as backslash escapes).",
    "reason": "Why the line could not be parsed, e.g. \"bad Source IP '999.1.2.3'\" or \"expected 6 fields, found 4\".",
    # silver
    "ts_local": "The capture minute in the device's local time (bronze time_stamp).",
    "ts_utc": "The capture minute in UTC, read in the device's configured time zone.",
    "device_ip": "The user-day's device address: its private IP in the most rows (what direction is judged by).",
    "local_ip": "The private end of the pair (the device's side); null when neither end is private.",
    "remote_ip": "The other end of the pair: the host the local side talked to.",
    "local_is_private": "Whether the pair has a private end (private, loopback or link-local address).",
    "remote_is_private": "Whether the remote end is private too (both ends private: internal traffic).",
    "direction": "outbound (device <-> public host), inbound (public host <-> another private address), "
                 "internal (both private) or unknown (neither private).",
    "kb": "KB of the pair in that minute (both directions; PacketX cannot tell them apart).",
    "total_kb": "The device's total KB in that minute, as PacketX reported it.",
    "is_restart_replay": "True on rows a restarted PacketX re-emitted from its reloaded file: kept for audit, "
                         "never counted in gold.",
    # gold aggregates
    "hour_utc": "Start of the UTC hour.",
    "minutes": "Distinct minutes of the hour with traffic.",
    "inbound_kb": "KB of the day's inbound rows (a public host and a private address other than the device).",
    "outbound_kb": "KB of the day's outbound rows (the device and a public host).",
    "internal_kb": "KB of the day's internal rows (both ends private).",
    "unknown_kb": "KB of the day's rows with no private end.",
    "distinct_remote_hosts": "Distinct remote IPs the user's counted rows mention that day.",
    "peak_minute_utc": "The UTC minute with the most KB summed over the user's pairs (earliest on ties).",
    "peak_minute_kb": "KB summed over the user's pairs in the peak minute.",
    "rows": "Silver rows counted (restart replays excluded).",
    "rank": "1 = the public host with the most KB that user-day (ties: the smaller IP text).",
    "share": "The host's KB as a fraction of the user-day's KB with all public hosts (0..1).",
    "baseline_median_kb": "Median KB of the user's active hours in the 7 days before.",
    "baseline_mad_kb": "Median absolute deviation of those hours' KB (0 when over half are identical).",
    "robust_z": "0.6745 x (kb - median) / MAD (mean absolute deviation x 1.2533 when the MAD is 0).",
    "baseline_hours": "How many active hours the baseline has (at least 24 to be judged).",
    "ip": "An IP address as it appears in the data (IPv4 or IPv6 text).",
    # star schema
    "user_key": "Surrogate key of one user version (stable hash of user, local IP and valid_from).",
    "user_id": "Durable key of the user across versions (stable hash of the user name).",
    "valid_from": "UTC hour this version starts.",
    "valid_to": "UTC hour the next version starts; null for the current version.",
    "is_current": "True on the user's newest version (exactly one per user).",
    "version": "1, 2, ... per user, in time order.",
    "ip_key": "Surrogate key of the address (stable hash of its text).",
    "ip_version": "4 or 6; null when the text is not an IP address.",
    "is_private": "Whether the address is on the device side (private, loopback or link-local).",
    "scope": "private, loopback, link_local, multicast, unspecified, reserved, public or invalid.",
    "direction_key": "Surrogate key of the direction (1..4, fixed).",
    "description": "What the direction means.",
    "date_key": "The UTC hour as yyyymmddhh (e.g. 2026112014): the fact's join key to date_dim.",
    "hour_start_utc": "Start of the UTC hour.",
    "date": "UTC date of the hour.",
    "hour": "UTC hour of day, 0-23.",
    "day_of_week": "ISO weekday, 1 = Monday .. 7 = Sunday.",
    "day_name": "Weekday name (Monday .. Sunday).",
    "month": "Month, 1-12.",
    "year": "Calendar year.",
    "is_weekend": "True on Saturday and Sunday.",
    "local_ip_key": "ip_dim key of local_ip; null when the row has no private end.",
    "remote_ip_key": "ip_dim key of remote_ip.",
}

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
    column_notes={
        "log_date": "The day in the file's name; null when the name has no valid day (a bad name, a link, "
                    "a sub-folder).",
        "object_key": "The landing object as listed: a file name, or a key under the S3 landing prefix.",
        "kind": "The kind of problem, to group by: skipped, bad name, refused, empty, cut short, shorter "
                "copy, shrunk, gone, retracted, off date.",
        "reason": "What went wrong, in words a person can act on (e.g. \"invalid date 2026-13-45\").",
        "severity": "error when data already ingested is contradicted (shrunk, gone, off date), else warning.",
        "size": "The object's size in bytes when it was listed (null when unknown).",
        "rows_at_stake": "Ingested rows the problem puts in doubt (a shrunk or vanished file), else null.",
        "kb_at_stake": "Ingested KB the problem puts in doubt, else null.",
        "first_seen": "When a run first recorded this problem (UTC).",
        "last_seen": "When a run last recorded this problem (UTC).",
    },
    description=(
        "Landing files that were not ingested as they are, with the precise reason: refused (over "
        "a size bound, named .gz but not gzip, corrupt gzip, binary data, lone-CR line ends), empty "
        "or header only, badly named, skipped (links, sub-folders, hidden entries), shrunk or gone "
        "since ingested, retracted, or mostly off their date. log_date is null when the file has no valid day."
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
    derived_from=BRONZE_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "ts_local": ("time_stamp",), "ts_utc": ("time_stamp", "user"),
        "source_ip": ("source_ip",), "destination_ip": ("destination_ip",),
        **dict.fromkeys(("device_ip", "local_ip", "remote_ip", "local_is_private", "remote_is_private", "direction"),
                        ("source_ip", "destination_ip")),
        "kb": ("kb_bandwidth",), "total_kb": ("total_kb_bandwidth",),
        "is_restart_replay": ("time_stamp", "source_ip", "destination_ip", "kb_bandwidth"),
        "source_file": ("source_file",), "line_number": ("line_number",),
    },
)

#: One row per user-day and IP pair (a tshark conversation), summed from that user-day's silver
#: rows. The day's totals, top hosts and IP lists are summed from it, and it is the state a
#: refresh extends silver from (each pair's last row, the device IP's votes) without re-reading
#: the day: ``lib/transform/silver.py``.
SILVER_CONVERSATIONS = TableDef(
    SILVER_NAMESPACE,
    "conversations",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("source_ip", STRING, False),
        _f("destination_ip", STRING, False),
        _f("device_ip", STRING),
        _f("local_ip", STRING),
        _f("remote_ip", STRING, False),
        _f("local_is_private", pa.bool_(), False),
        _f("remote_is_private", pa.bool_(), False),
        _f("direction", STRING, False),
        _f("rows", pa.int64(), False),
        _f("live_rows", pa.int64(), False),
        _f("live_kb", pa.float64(), False),
        _f("duplicates", pa.int64(), False),
        _f("first_ts_local", TS, False),
        _f("max_ts_local", TS, False),
        _f("last_ts_local", TS, False),
        _f("last_second_pass", pa.bool_(), False),
        _f("last_kb", pa.float64(), False),
    ),
    key=("log_date", "user", "source_ip", "destination_ip"),
    description=(
        "One row per user, day and IP pair (a tshark conversation): its orientation around the device "
        "IP, its silver rows, counted rows and KB (restart replays left out), exact duplicates removed, "
        "and its first, latest and last minute. The day's totals, top hosts and IP lists are summed "
        "from it, and a refresh extends silver from it without re-reading the day."
    ),
    column_notes={
        "rows": "Silver rows of the pair (restart replays included, exact duplicates not).",
        "live_rows": "Silver rows of the pair that count (restart replays excluded).",
        "live_kb": "KB of the pair's counted rows (exact micro-KB sum).",
        "duplicates": "Exact duplicate lines of the pair removed on the way to silver.",
        "first_ts_local": "The pair's earliest minute, in the device's local time.",
        "max_ts_local": "The pair's latest minute, in the device's local time.",
        "last_ts_local": "The minute of the pair's last row in file order (what a restart replay repeats).",
        "last_second_pass": "Whether that last row was in the second pass of a repeated (DST fall-back) hour.",
        "last_kb": "KB of the pair's last row in file order (what a restart replay repeats).",
    },
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "source_ip": ("source_ip",),
        "destination_ip": ("destination_ip",),
        **{name: (name,) for name in ("device_ip", "local_ip", "remote_ip", "local_is_private", "remote_is_private",
                                      "direction")},
        "rows": ("line_number",), "live_rows": ("is_restart_replay",), "live_kb": ("kb", "is_restart_replay"),
        "duplicates": ("line_number",), "first_ts_local": ("ts_local",), "max_ts_local": ("ts_local",),
        "last_ts_local": ("ts_local", "line_number"), "last_second_pass": ("ts_local", "ts_utc", "line_number"),
        "last_kb": ("kb", "line_number"),
    },
)

DIRECTIONS = ("inbound", "outbound", "internal", "unknown")

# --- gold ---------------------------------------------------------------------------------
# Aggregates exclude restart replays. Dimensions are unpartitioned and rebuilt in full from their
# inputs, so their content does not depend on the order in which days were loaded.

#: The fact's cells with their text keys and a minute mask: every hourly gold table of a UTC hour is
#: derived from its cells alone, so a refresh recomputes only the hours its new rows touch.
GOLD_HOURLY_CELLS = TableDef(
    GOLD_NAMESPACE,
    "hourly_cells",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("hour_utc", TS_UTC, False),
        _f("local_ip", STRING),
        _f("remote_ip", STRING, False),
        _f("direction", STRING, False),
        _f("local_is_private", pa.bool_(), False),
        _f("remote_is_private", pa.bool_(), False),
        _f("kb", pa.float64(), False),
        _f("rows", pa.int64(), False),
        _f("minute_mask", pa.int64(), False),
    ),
    key=("log_date", "user", "hour_utc", "local_ip", "remote_ip", "direction"),
    totals=("kb", "rows"),
    description=(
        "Counted silver rows summed per user, UTC hour, local and remote IP and direction, with the "
        "minutes of the hour they fall in: what hourly_bandwidth, packets_fact and user_ip_hourly are "
        "derived from, hour by hour, so that a refresh recomputes only the hours it touches."
    ),
    column_notes={
        "kb": "KB of the counted rows in this cell (exact micro-KB sum).",
        "rows": "Counted silver rows in this cell (restart replays excluded).",
        "minute_mask": "Bit m is set when minute m of the hour has a counted row in this cell.",
    },
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "hour_utc": ("ts_utc",),
        **{name: (name,) for name in ("local_ip", "remote_ip", "direction", "local_is_private", "remote_is_private")},
        "kb": ("kb", "is_restart_replay"), "rows": ("is_restart_replay",),
        "minute_mask": ("ts_utc", "is_restart_replay"),
    },
)

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
    totals=("kb",),
    description="KB and minutes seen per user, UTC hour, remote IP and direction.",
    column_notes={"kb": "KB of the user's counted rows with this remote and direction in the hour."},
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "hour_utc": ("ts_utc",), "remote_ip": ("remote_ip",),
        "direction": ("direction",), "kb": ("kb", "is_restart_replay"), "minutes": ("ts_utc", "is_restart_replay"),
    },
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
    column_notes={"total_kb": "KB of all the user's counted rows that day (every direction)."},
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "total_kb": ("kb", "is_restart_replay"),
        **{f"{d}_kb": ("kb", "direction", "is_restart_replay") for d in ("inbound", "outbound", "internal", "unknown")},
        "distinct_remote_hosts": ("remote_ip", "is_restart_replay"),
        "peak_minute_utc": ("ts_utc", "kb", "is_restart_replay"), "peak_minute_kb": ("ts_utc", "kb", "is_restart_replay"),
        "rows": ("is_restart_replay",),
    },
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
    column_notes={"kb": "KB the user exchanged with this host that day.",
                  "remote_ip": "A public host (scope public) the user talked to."},
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "rank": ("kb", "remote_ip"),
        "remote_ip": ("remote_ip", "remote_is_private"), "kb": ("kb", "is_restart_replay"),
        "share": ("kb", "remote_ip", "remote_is_private", "is_restart_replay"),
    },
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
    column_notes={"kb": "The user-hour's KB (every remote and direction)."},
    derived_from=GOLD_HOURLY_BANDWIDTH,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "hour_utc": ("hour_utc",), "kb": ("kb",),
        **dict.fromkeys(("baseline_median_kb", "baseline_mad_kb", "robust_z", "baseline_hours"),
                        ("log_date", "hour_utc", "kb")),
    },
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
    column_notes={"local_ip": "The user's device IP in that hour: the private address in the most rows.",
                  "rows": "Counted rows of the hour with local_ip at one end: the evidence for it."},
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "hour_utc": ("ts_utc",),
        **dict.fromkeys(("local_ip", "rows"), ("local_ip", "remote_ip", "local_is_private", "remote_is_private",
                                               "is_restart_replay")),
    },
)

#: Every user-hour's activity, summed from the fact's cells of that hour alone (so it can be kept
#: up to date hour by hour): the small table device silence is learnt from.
GOLD_USER_HOURLY = TableDef(
    GOLD_NAMESPACE,
    "user_hourly",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("hour_utc", TS_UTC, False),
        _f("kb", pa.float64(), False),
        _f("rows", pa.int64(), False),
        _f("minutes", pa.int64(), False),
        _f("minute_mask", pa.int64(), False),
        _f("remote_hosts", pa.int64(), False),
        _f("first_minute_utc", TS_UTC, False),
        _f("last_minute_utc", TS_UTC, False),
    ),
    key=("log_date", "user", "hour_utc"),
    totals=("kb", "rows"),
    description=(
        "Per user and UTC hour: KB, counted rows, active minutes and which minutes they were (a bit "
        "mask), distinct remote hosts, first and last minute seen. The small table device silence "
        "is learnt from."
    ),
    column_notes={
        "kb": "KB of the user's counted rows in the hour (every remote and direction).",
        "minutes": "Distinct minutes of the hour with a counted row (the bits set in minute_mask).",
        "minute_mask": "Bit m (0-59) is set when minute m of the hour has a counted row: OR the masks of one "
                       "hour to merge them, bit_count(minute_mask) = minutes.",
        "remote_hosts": "Distinct remote IPs of the hour's counted rows.",
        "first_minute_utc": "The hour's first minute with a counted row (UTC).",
        "last_minute_utc": "The hour's last minute with a counted row (UTC).",
    },
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "user": ("user",), "hour_utc": ("ts_utc",), "kb": ("kb", "is_restart_replay"),
        "rows": ("is_restart_replay",),
        **dict.fromkeys(("minutes", "minute_mask", "first_minute_utc", "last_minute_utc"),
                        ("ts_utc", "is_restart_replay")),
        "remote_hosts": ("remote_ip", "is_restart_replay"),
    },
)

#: Every address a day's counted rows mention: the small table ``ip_dim`` is rebuilt from.
GOLD_DAILY_IPS = TableDef(
    GOLD_NAMESPACE,
    "daily_ips",
    _schema(_f("log_date", pa.date32(), False), _f("ip", STRING, False)),
    key=("log_date", "ip"),
    description="Every IP address seen on a day: the input ip_dim is rebuilt from.",
    derived_from=SILVER_PACKETS,
    lineage={"log_date": ("log_date",), "ip": ("source_ip", "destination_ip", "is_restart_replay")},
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
    column_notes={"local_ip": "The device IP during this version."},
    derived_from=GOLD_USER_IP_HOURLY,
    lineage={
        "user_key": ("user", "local_ip", "hour_utc"), "user_id": ("user",), "user": ("user",),
        "local_ip": ("local_ip", "rows"), "valid_from": ("hour_utc",), "valid_to": ("hour_utc",),
        "is_current": ("hour_utc",), "version": ("local_ip", "hour_utc"),
    },
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
    derived_from=GOLD_DAILY_IPS,
    lineage=dict.fromkeys(("ip_key", "ip", "ip_version", "is_private", "scope"), ("ip",)),
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

#: The hourly grain of the original PacketX-Lakehouse warehouse fact: one row per user, UTC hour,
#: local and remote address and direction, over the counted (non-replay) silver rows; the minute
#: grain, with every row's lineage, stays in silver. ``local_ip_key`` is part of the grain so an
#: address change inside an hour keeps its rows apart. The user is referenced by its durable
#: ``user_id`` plus ``hour_utc`` (point in time within ``users_dim`` validity, whose versions start
#: on whole hours), never by a version's surrogate key, so loading days out of order cannot leave a
#: fact pointing at a superseded version.
GOLD_PACKETS_FACT = TableDef(
    GOLD_NAMESPACE,
    "packets_fact",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("date_key", pa.int64(), False),
        _f("hour_utc", TS_UTC, False),
        _f("user_id", pa.int64(), False),
        _f("local_ip_key", pa.int64()),
        _f("remote_ip_key", pa.int64(), False),
        _f("direction_key", pa.int64(), False),
        _f("kb", pa.float64(), False),
        _f("minutes", pa.int64(), False),
        _f("rows", pa.int64(), False),
    ),
    key=("log_date", "user_id", "hour_utc", "local_ip_key", "remote_ip_key", "direction_key"),
    totals=("kb", "rows"),
    description=(
        "Star-schema fact at the hourly grain: KB, active minutes and counted silver rows per user, UTC "
        "hour, local and remote IP and direction, keyed to the dimensions (users by durable user_id + "
        "point in time)."
    ),
    column_notes={
        "hour_utc": "Start of the UTC hour: with user_id, finds the users_dim version valid then.",
        "kb": "KB of the counted rows in this cell: sums to silver's KB excluding restart replays.",
        "minutes": "Distinct minutes of the hour with a counted row in this cell (not additive across cells: "
                   "one minute can hold several remotes).",
        "rows": "Silver rows summed into this cell (restart replays excluded): sums to silver's counted rows.",
    },
    derived_from=SILVER_PACKETS,
    lineage={
        "log_date": ("log_date",), "date_key": ("ts_utc",), "hour_utc": ("ts_utc",), "user_id": ("user",),
        "local_ip_key": ("local_ip",), "remote_ip_key": ("remote_ip",), "direction_key": ("direction",),
        "kb": ("kb", "is_restart_replay"), "minutes": ("ts_utc", "is_restart_replay"),
        "rows": ("is_restart_replay",),
    },
)

# --- operations: the fleet and the lakehouse's own history ---------------------------------
# Small unpartitioned tables rebuilt on their own schedule from small gold tables, never in the
# pipeline's runs: they are about *now* (which devices are silent) or about earlier commits.

#: Every device's state at the last evaluation: what the dashboard's device panel lists.
DEVICE_STATUS = TableDef(
    GOLD_NAMESPACE,
    "device_status",
    _schema(
        _f("user", STRING, False),
        _f("status", STRING, False),
        _f("last_seen_utc", TS_UTC, False),
        _f("silent_since", TS_UTC),
        _f("missed_minutes", pa.int64()),
        _f("allowed_minutes", pa.int64()),
        _f("usual_gap_minutes", pa.int64()),
        _f("active_hours", STRING),
        _f("timezone", STRING, False),
        _f("history_days", pa.int64(), False),
        _f("seen_minutes_today", pa.int64(), False),
        _f("expected_minutes_today", pa.int64()),
        _f("evaluated_at", TS_UTC, False),
    ),
    partition_by=(),
    key=("user",),
    description=(
        "Every device that sent data in the last two weeks, judged against its own history: sending, "
        "silent (past its allowance inside its active hours), asleep (outside them), irregular (no "
        "regular hours) or learning (under 3 days of history), with its last minute seen."
    ),
    column_notes={
        "user": "The device (its user name in the file names).",
        "status": "silent, sending, asleep, irregular or learning (see the table's description).",
        "last_seen_utc": "The last minute with a counted row from the device (UTC).",
        "silent_since": "When a silent device's silence began: the minute after its last one seen.",
        "missed_minutes": "Minutes of its active hours since its last minute seen.",
        "allowed_minutes": "Active-hour minutes it may go without data: max(PACKETX_SILENCE_MINUTES, 2 x its usual "
                           "gap).",
        "usual_gap_minutes": "The 99th percentile of its gaps between minutes, counting active-hour minutes only.",
        "active_hours": "Local hours it sent in on at least half of its days, e.g. 07:00-23:00.",
        "timezone": "The device's zone (PACKETX_DEVICE_TIMEZONES): its hours and days are local to it.",
        "history_days": "Days its expectation was learnt from: its first to its last day seen in the last two weeks.",
        "seen_minutes_today": "Minutes it sent in today (its local day) so far.",
        "expected_minutes_today": "Minutes it usually sends from its local midnight to now.",
        "evaluated_at": "When the devices were judged (UTC).",
    },
)

#: Silences longer than a device's allowance: the one going on, and those that ended lately.
DEVICE_SILENCE = TableDef(
    GOLD_NAMESPACE,
    "device_silence",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("silent_from", TS_UTC, False),
        _f("silent_to", TS_UTC),
        _f("ongoing", pa.bool_(), False),
        _f("reason", STRING, False),
        _f("missed_minutes", pa.int64(), False),
        _f("allowed_minutes", pa.int64(), False),
        _f("expected_minutes", pa.int64(), False),
        _f("seen_minutes", pa.int64(), False),
        _f("evaluated_at", TS_UTC, False),
    ),
    partition_by=(),
    key=("user", "silent_from"),
    description=(
        "Each time a device that should have been sending was silent past its allowance, today and "
        "yesterday: from, to (empty while it lasts), why (no file today, file stopped growing, gap inside "
        "the day, gap across days) and its expected vs seen minutes."
    ),
    column_notes={
        "log_date": "The device's local day the silence began on.",
        "user": "The device (its user name in the file names).",
        "silent_from": "The first minute without data (UTC).",
        "silent_to": "The minute data came again (UTC); empty while the silence lasts.",
        "ongoing": "True while the device is still silent.",
        "reason": "no file today (silent and nothing today), file stopped growing (silent after sending today), "
                  "gap inside the day, or gap across days (both ended).",
        "missed_minutes": "Minutes of the device's active hours inside the silence.",
        "allowed_minutes": "Active-hour minutes the device may go without data.",
        "expected_minutes": "Minutes the device usually sends from its local midnight of log_date to the silence's end.",
        "seen_minutes": "Minutes it did send over the same span.",
        "evaluated_at": "When the devices were judged (UTC).",
    },
)

#: Each change of a user-day's gold total: when, which run, which file, how much (condensed, see
#: ``lib/transform/total_changes.py``): "why did Tuesday's total change?" after Iceberg's own
#: snapshots of that time are gone.
DAILY_TOTAL_CHANGES = TableDef(
    GOLD_NAMESPACE,
    "daily_total_changes",
    _schema(
        _f("log_date", pa.date32(), False),
        _f("user", STRING, False),
        _f("first_changed_at", TS_UTC, False),
        _f("changed_at", TS_UTC, False),
        _f("updates", pa.int64(), False),
        _f("run_id", STRING),
        _f("snapshot_id", pa.int64(), False),
        _f("kind", STRING, False),
        _f("files", STRING, False),
        _f("source_generation_before", pa.int64()),
        _f("source_generation", pa.int64(), False),
        _f("kb_before", pa.float64()),
        _f("kb_after", pa.float64(), False),
        _f("delta_kb", pa.float64(), False),
        _f("rows_before", pa.int64()),
        _f("rows_after", pa.int64(), False),
    ),
    key=("log_date", "user", "changed_at"),
    description=(
        "Every change of a day's gold totals (daily_user_bandwidth), user by user: when, by which run, "
        "from which file (new, grown, retracted...) and by how much. A user-day's continued growth is one "
        "row and it keeps at most 24, so a day refreshed every minute has a short history, kept as long "
        "as the day."
    ),
    column_notes={
        "log_date": "The day whose total changed.",
        "user": "The user (device) whose part of the day's total changed.",
        "first_changed_at": "The first commit this row covers (UTC): rows of continued growth merge.",
        "changed_at": "The last commit this row covers (UTC).",
        "updates": "Recorded changes merged into this row.",
        "run_id": "The Dagster run of the last commit (the UI shows it at /runs/<run_id>).",
        "snapshot_id": "The daily_user_bandwidth snapshot of the last commit (readable while Iceberg keeps it: "
                       "packetx-lakehouse sql --as-of <snapshot_id>).",
        "kind": "first recorded, new file, file grew, file retracted, retraction undone, rebuilt from the same "
                "file, several changes, or file changed (details no longer kept).",
        "files": "How the user's file of the day changed, e.g. 'alice-2026-11-24.csv grew 1,200 -> 1,440 lines'.",
        "source_generation_before": "The day's source version (raw-archive manifest generation) before.",
        "source_generation": "The day's source version after.",
        "kb_before": "The user-day's KB before; empty when first recorded.",
        "kb_after": "The user-day's KB after (0: its rows are gone).",
        "delta_kb": "kb_after - kb_before: the change of the day's total.",
        "rows_before": "The user-day's counted rows before.",
        "rows_after": "The user-day's counted rows after.",
    },
)

# --- the one registry of tables ----------------------------------------------------------

#: What one read of a day's bronze produces (the reader writes them in one step).
BRONZE_TABLES: tuple[TableDef, ...] = (BRONZE_PACKETS, BRONZE_QUARANTINE, LANDING_PROBLEMS)
#: The per-day gold tables built from one read of the day's silver rows.
GOLD_DAILY_TABLES: tuple[TableDef, ...] = (
    GOLD_HOURLY_CELLS, GOLD_HOURLY_BANDWIDTH, GOLD_DAILY_USER_BANDWIDTH, GOLD_TOP_EXTERNAL_HOSTS,
    GOLD_USER_IP_HOURLY, GOLD_DAILY_IPS, GOLD_PACKETS_FACT, GOLD_USER_HOURLY,
)  # fmt: skip
#: The per-day gold tables keyed by UTC hour, derived from the hour's cells alone: a refresh
#: replaces the hours it touches.
GOLD_HOURLY_TABLES: tuple[TableDef, ...] = (
    GOLD_HOURLY_CELLS, GOLD_HOURLY_BANDWIDTH, GOLD_USER_IP_HOURLY, GOLD_PACKETS_FACT, GOLD_USER_HOURLY,
)  # fmt: skip
#: The star schema's dimensions, rebuilt in full; every consumer (DuckDB, warehouse) copies these.
STAR_DIMENSIONS: tuple[TableDef, ...] = (GOLD_DATE_DIM, GOLD_IP_DIM, GOLD_USERS_DIM, GOLD_DIRECTION_DIM)
STAR_FACT = GOLD_PACKETS_FACT
#: Gold tables a person queries day by day: what serving copies per day (plus the fact).
GOLD_SERVED_DAILY: tuple[TableDef, ...] = (
    GOLD_HOURLY_BANDWIDTH, GOLD_DAILY_USER_BANDWIDTH, GOLD_TOP_EXTERNAL_HOSTS, GOLD_TRAFFIC_ANOMALIES, STAR_FACT,
)  # fmt: skip
#: Built outside the pipeline's runs, on their own schedule (``defs/operations``).
OPERATIONS_TABLES: tuple[TableDef, ...] = (DEVICE_STATUS, DEVICE_SILENCE, DAILY_TOTAL_CHANGES)
#: Every Iceberg table, by layer, in the order data flows.
TABLES_BY_LAYER: dict[str, tuple[TableDef, ...]] = {
    "bronze": BRONZE_TABLES,
    "silver": (SILVER_PACKETS, SILVER_CONVERSATIONS),
    "gold": (*GOLD_DAILY_TABLES, GOLD_TRAFFIC_ANOMALIES, *STAR_DIMENSIONS),
    "operations": OPERATIONS_TABLES,
}
#: The table whose newest partition says how fresh each layer is (dashboard, ops.partitions).
FRESHNESS_TABLES: dict[str, TableDef] = {
    "bronze": BRONZE_PACKETS, "silver": SILVER_PACKETS, "gold": GOLD_DAILY_USER_BANDWIDTH,
}
