"""The dashboard's SQL: pure functions of a DuckDB connection and filters, returning Polars frames.

Every aggregation runs inside DuckDB so the page stays fast on months of data; Python only
receives the few rows a chart or table shows. Nothing here imports Streamlit, so the queries are
tested against a real serving database built by the pipeline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from packetx_lakehouse.lib.schemas import (
    DAILY_TOTAL_CHANGES,
    DEVICE_STATUS,
    GOLD_NAMESPACE,
    GOLD_SERVED_DAILY,
    GOLD_USER_HOURLY,
    STAR_DIMENSIONS,
)
from packetx_lakehouse.lib.serving.lakehouse_sql import S3Access, TableView, lakehouse_connection
from packetx_lakehouse.lib.transform.explain import Explanation, explain_hour, window
from packetx_lakehouse.lib.transform.silence import STATUS_ORDER

#: The tables the page cannot do without; anything missing means "no data yet".
REQUIRED_TABLES = ("gold.daily_user_bandwidth", "gold.hourly_bandwidth", "gold.users_dim", "ops.partitions")
#: Iceberg tables the page reads beside the serving copy (small ones, or as of an earlier time).
LAKEHOUSE_TABLES = (DEVICE_STATUS, DAILY_TOTAL_CHANGES, GOLD_USER_HOURLY)
#: The serving copy's gold tables: as of an earlier time, the page reads these from Iceberg instead.
SERVED_GOLD = (*GOLD_SERVED_DAILY, *STAR_DIMENSIONS)


class ServingUnavailable(Exception):
    """The serving database cannot be read now; ``str()`` is a message for a person."""


class NoDataYet(ServingUnavailable):
    """Nothing has been served yet (no database, missing tables, or no rows)."""


class ServingBusy(ServingUnavailable):
    """A pipeline run holds DuckDB's single-writer lock; a retry in a moment will succeed."""


@dataclass(frozen=True)
class Filters:
    """What the page's widgets select: an inclusive day range and users (empty = everyone)."""

    first: dt.date
    last: dt.date
    users: tuple[str, ...] = ()

    def where(self, date_column: str = "log_date") -> tuple[str, list[object]]:
        """A SQL predicate and its parameters, shared so every panel filters identically."""
        sql = f"{date_column} BETWEEN ? AND ?"
        params: list[object] = [self.first, self.last]
        if self.users:
            sql += " AND user IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(self.users))
        return sql, params


@contextlib.contextmanager
def connect(
    database: Path, lakehouse: Mapping[str, str | TableView] | None = None, *, gold_from_lakehouse: bool = False,
    s3: S3Access | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the serving database read-only for one batch of queries, and close it.

    Holding no connection between page runs lets the pipeline take the writer lock; while it
    holds it, this raises :class:`ServingBusy` instead of DuckDB's lock error.

    Args:
        lakehouse: Iceberg tables to read beside it (``lakehouse_sql``: ``packetx_gold.*`` views).
        gold_from_lakehouse: Read ``gold.*`` from those Iceberg views instead of the serving copy
            (the page as of an earlier time: the copy has no history).
        s3: How to reach Iceberg tables on S3.
    """
    if not database.is_file():
        raise NoDataYet(f"no serving database at {database}")
    try:
        if lakehouse is None:
            con = duckdb.connect(str(database), read_only=True)
        else:
            con = lakehouse_connection(lakehouse, database, s3)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise ServingBusy("the pipeline is writing the serving database") from exc
        raise
    try:
        con.execute("SET TimeZone = 'UTC'")  # hours are shown and linked in UTC, whatever the host's zone
        if gold_from_lakehouse:
            for table_def in SERVED_GOLD:
                if _table_exists(con, f"{GOLD_NAMESPACE}.{table_def.name}"):
                    con.execute(f"CREATE OR REPLACE VIEW gold.{table_def.name} AS "
                                f"SELECT * FROM {GOLD_NAMESPACE}.{table_def.name}")
        missing = [t for t in REQUIRED_TABLES if not _table_exists(con, t)]
        if missing:
            raise NoDataYet(f"{database} has no {', '.join(missing)} yet")
        yield con
    finally:
        con.close()


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                            "AND table_name = ?", [schema, name]).fetchone()[0])


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> pl.DataFrame:
    return con.execute(sql, list(params)).pl()


def date_bounds(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """First and last served day, or ``None`` when gold holds no rows."""
    first, last = con.execute("SELECT min(log_date), max(log_date) FROM gold.daily_user_bandwidth").fetchone()
    return (first, last) if first is not None else None


def users(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT DISTINCT user FROM gold.daily_user_bandwidth ORDER BY user")
            .fetchall()]


def total_kb_by_user(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    """KB per user over the range, largest first: the headline numbers."""
    where, params = filters.where()
    return _frame(con, f"""
        SELECT user, sum(total_kb) AS total_kb, sum(inbound_kb) AS inbound_kb, sum(outbound_kb) AS outbound_kb,
               sum(internal_kb) AS internal_kb, count(*) AS days
        FROM gold.daily_user_bandwidth WHERE {where} GROUP BY user ORDER BY total_kb DESC, user""", params)


def hourly_by_direction(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    """KB per user, UTC hour and direction: the stacked bandwidth-over-time chart."""
    where, params = filters.where()
    return _frame(con, f"""
        SELECT user, hour_utc, direction, sum(kb) AS kb
        FROM gold.hourly_bandwidth WHERE {where}
        GROUP BY ALL ORDER BY user, hour_utc, direction""", params)


def daily_totals(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    where, params = filters.where()
    return _frame(con, f"""
        SELECT log_date, user, total_kb, inbound_kb, outbound_kb, internal_kb, unknown_kb,
               distinct_remote_hosts, peak_minute_utc, peak_minute_kb
        FROM gold.daily_user_bandwidth WHERE {where} ORDER BY log_date, user""", params)


def top_external_hosts(con: duckdb.DuckDBPyConnection, filters: Filters, limit: int = 10) -> pl.DataFrame:
    """Public remote hosts by KB over the whole range.

    Summed from ``hourly_bandwidth`` rather than ``top_external_hosts``, whose per-day top-N
    would undercount a host that is steady but never in any single day's top.
    """
    where, params = filters.where("h.log_date")
    return _frame(con, f"""
        SELECT h.remote_ip, sum(h.kb) AS kb, count(DISTINCT h.user) AS users,
               sum(h.kb) / sum(sum(h.kb)) OVER () AS share
        FROM gold.hourly_bandwidth h JOIN gold.ip_dim i ON i.ip = h.remote_ip
        WHERE i.scope = 'public' AND {where}
        GROUP BY h.remote_ip ORDER BY kb DESC, h.remote_ip LIMIT ?""", [*params, limit])


def anomalies(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    where, params = filters.where()
    return _frame(con, f"""
        SELECT user, hour_utc, kb, baseline_median_kb, robust_z, baseline_hours
        FROM gold.traffic_anomalies WHERE {where} ORDER BY robust_z DESC, hour_utc""", params)


def ip_history(con: duckdb.DuckDBPyConnection, selected: Sequence[str] = ()) -> pl.DataFrame:
    """Each user's local-IP versions from the SCD2 dimension, newest last."""
    params: list[object] = []
    where = ""
    if selected:
        where, params = "WHERE user IN (SELECT unnest(?::VARCHAR[]))", [list(selected)]
    return _frame(con, f"""
        SELECT user, version, local_ip, valid_from, valid_to, is_current
        FROM gold.users_dim {where} ORDER BY user, version""", params)


def freshness(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The newest partition per layer, with its rows and how many days the layer holds."""
    return _frame(con, """
        SELECT layer, table_name, max(log_date) AS newest_partition, arg_max(rows, log_date) AS rows_newest_day,
               count(*) AS days
        FROM ops.partitions GROUP BY layer, table_name
        ORDER BY CASE layer WHEN 'bronze' THEN 1 WHEN 'silver' THEN 2 WHEN 'gold' THEN 3 ELSE 4 END""")


def quarantine_by_day(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    """Quarantined lines per day and reason (quarantine is per file, not per user, so the user
    filter does not apply)."""
    if not _table_exists(con, "ops.quarantine"):
        return pl.DataFrame(schema={"log_date": pl.Date, "reason": pl.String, "lines": pl.Int64})
    return _frame(con, """
        SELECT log_date, reason, count(*) AS lines
        FROM ops.quarantine WHERE log_date BETWEEN ? AND ?
        GROUP BY ALL ORDER BY log_date, lines DESC, reason""", [filters.first, filters.last])


def landing_problems(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame:
    """Files not ingested as they are: the range's days, plus those with no day (bad names, links),
    failing ones first. Per file, not per user, so the user filter does not apply."""
    if not _table_exists(con, "ops.landing_problems"):
        return pl.DataFrame(schema={"log_date": pl.Date, "object_key": pl.String, "severity": pl.String,
                                    "kind": pl.String, "reason": pl.String, "rows_at_stake": pl.Int64,
                                    "first_seen": pl.Datetime("us", "UTC")})
    return _frame(con, """
        SELECT log_date, object_key, severity, kind, reason, rows_at_stake, first_seen
        FROM ops.landing_problems WHERE log_date IS NULL OR log_date BETWEEN ? AND ?
        ORDER BY severity = 'error' DESC, log_date NULLS FIRST, object_key, reason""", [filters.first, filters.last])


def anomaly(con: duckdb.DuckDBPyConnection, user: str, hour_utc: dt.datetime, gold: str = "gold") -> dict | None:
    """The ``traffic_anomalies`` row of one user-hour, if it was flagged."""
    found = _frame(con, f"SELECT * FROM {gold}.traffic_anomalies WHERE user = ? AND hour_utc = ?", [user, hour_utc])
    return found.row(0, named=True) if found.height else None


def explanation(
    con: duckdb.DuckDBPyConnection, user: str, hour_utc: dt.datetime, *, gold: str = "gold",
    user_hourly: str = GOLD_USER_HOURLY.identifier,
) -> Explanation:
    """One user-hour's hosts, directions and minutes against the same hour of the 7 days before."""
    first, last = window(hour_utc)
    hourly = _frame(con, f"""
        SELECT user, hour_utc, remote_ip, direction, kb, minutes FROM {gold}.hourly_bandwidth
        WHERE user = ? AND hour_utc BETWEEN ? AND ?""", [user, first, last])
    minutes = None
    if _table_exists(con, user_hourly):
        minutes = _frame(con, f"SELECT user, hour_utc, minutes FROM {user_hourly} WHERE user = ? AND hour_utc "
                              "BETWEEN ? AND ?", [user, first, last])
    return explain_hour(hourly, user, hour_utc, minutes)


def device_status(con: duckdb.DuckDBPyConnection) -> pl.DataFrame | None:
    """Every device and its last minute seen, silent ones first (None: never evaluated yet)."""
    if not _table_exists(con, DEVICE_STATUS.identifier):
        return None
    rank = " ".join(f"WHEN '{status}' THEN {n}" for n, status in enumerate(STATUS_ORDER))
    return _frame(con, f"""
        SELECT user, status, last_seen_utc, silent_since, missed_minutes, allowed_minutes, active_hours,
               seen_minutes_today, expected_minutes_today, evaluated_at
        FROM {DEVICE_STATUS.identifier} ORDER BY CASE status {rank} ELSE 99 END, last_seen_utc, user""")


def total_changes(con: duckdb.DuckDBPyConnection, filters: Filters) -> pl.DataFrame | None:
    """Changes of the range's daily totals after each user-day was first built (None: none recorded yet)."""
    if not _table_exists(con, DAILY_TOTAL_CHANGES.identifier):
        return None
    where, params = filters.where()
    return _frame(con, f"""
        SELECT log_date, changed_at, user, kind, files, delta_kb, kb_after, run_id, updates
        FROM {DAILY_TOTAL_CHANGES.identifier} WHERE {where}
        QUALIFY row_number() OVER (PARTITION BY log_date, user ORDER BY changed_at) > 1
        ORDER BY log_date DESC, changed_at DESC, user""", params)
