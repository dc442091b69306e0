"""The dashboard's SQL against a serving database the pipeline built (see conftest)."""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from packetx_lakehouse.dashboard import queries
from packetx_lakehouse.dashboard.queries import Filters, NoDataYet, ServingBusy
from packetx_lakehouse.lib.schemas import DIRECTIONS
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.demo import print_answers
from packetx_lakehouse.lib.serving.lakehouse_sql import metadata_locations, views_as_of
from packetx_lakehouse.lib.storage.time_travel import AsOf, kept_states
from packetx_lakehouse_tests.dashboard.conftest import (
    BAD_NAME,
    DAYS,
    EMPTY_DEVICE,
    FIRST_DAY,
    IP_CHANGE,
    JUDGED_AT,
    LAST_DAY,
    SILENT_DEVICE,
    STOPPED,
)

EVERYTHING = Filters(FIRST_DAY, LAST_DAY)


@pytest.fixture
def con(served):
    with queries.connect(served.serving_path) as connection:
        yield connection


@pytest.fixture
def lake_con(served):
    """The page's connection: the serving copy, and the small Iceberg tables beside it."""
    catalog = open_catalog(served)
    with queries.connect(served.serving_path, metadata_locations(catalog, queries.LAKEHOUSE_TABLES)) as connection:
        yield connection


def gold_total(con, where: str = "true", params: list | None = None) -> float:
    return con.execute(f"SELECT sum(total_kb) FROM gold.daily_user_bandwidth WHERE {where}", params or []).fetchone()[0]


def test_bounds_and_users_come_from_gold(con):
    assert queries.date_bounds(con) == (FIRST_DAY, LAST_DAY)
    assert queries.users(con) == ["alice", "bob-smith", "carol"]


def test_totals_by_user_follow_the_day_and_user_filters(con):
    everything = queries.total_kb_by_user(con, EVERYTHING)
    assert everything["total_kb"].sum() == pytest.approx(gold_total(con))
    assert everything["total_kb"].is_sorted(descending=True)

    filters = Filters(FIRST_DAY + dt.timedelta(days=2), FIRST_DAY + dt.timedelta(days=3), ("carol",))
    carol = queries.total_kb_by_user(con, filters)
    assert carol["user"].to_list() == ["carol"] and carol["days"].to_list() == [2]
    assert carol["total_kb"][0] == pytest.approx(
        gold_total(con, "user = 'carol' AND log_date BETWEEN ? AND ?", [filters.first, filters.last]))


def test_hourly_directions_add_up_to_the_daily_totals(con):
    hourly = queries.hourly_by_direction(con, EVERYTHING)
    assert set(hourly["direction"]) <= set(DIRECTIONS)
    assert hourly.select("user", "hour_utc", "direction").is_duplicated().sum() == 0
    by_user = dict(hourly.group_by("user").agg(pl.col("kb").sum()).iter_rows())
    daily = dict(queries.total_kb_by_user(con, EVERYTHING).select("user", "total_kb").iter_rows())
    assert by_user.keys() == daily.keys()
    assert all(by_user[u] == pytest.approx(daily[u]) for u in daily)


def test_daily_totals_are_one_row_per_user_day(con):
    daily = queries.daily_totals(con, Filters(FIRST_DAY, FIRST_DAY, ("alice", "carol")))
    assert daily.select("log_date", "user").rows() == [(FIRST_DAY, "alice"), (FIRST_DAY, "carol")]


def test_top_external_hosts_are_public_ranked_and_cover_the_range(con):
    hosts = queries.top_external_hosts(con, EVERYTHING, limit=5)
    assert hosts.height == 5 and hosts["kb"].is_sorted(descending=True)
    scopes = con.execute("SELECT DISTINCT scope FROM gold.ip_dim WHERE ip IN (SELECT unnest(?::VARCHAR[]))",
                         [hosts["remote_ip"].to_list()]).fetchall()
    assert scopes == [("public",)]
    assert 0 < hosts["share"].sum() <= 1


def test_an_anomaly_links_to_an_hour_whose_explanation_adds_up(lake_con):
    found = queries.anomalies(lake_con, EVERYTHING)
    assert found.height > 0 and found["robust_z"].is_sorted(descending=True)
    top = found.row(0, named=True)
    explained = queries.explanation(lake_con, top["user"], top["hour_utc"])
    assert explained.kb == pytest.approx(top["kb"]) == pytest.approx(explained.hosts["kb"].sum())
    assert explained.change_kb > 0 and explained.findings
    minutes = lake_con.execute("SELECT minutes FROM packetx_gold.user_hourly WHERE user = ? AND hour_utc = ?",
                               [top["user"], top["hour_utc"]]).fetchone()[0]
    assert explained.minutes == minutes
    assert queries.anomaly(lake_con, top["user"], top["hour_utc"])["robust_z"] == top["robust_z"]
    assert queries.anomalies(lake_con, Filters(FIRST_DAY, FIRST_DAY)).is_empty()  # no baseline on day one


def test_devices_are_listed_silent_first_with_their_last_minute(lake_con):
    devices = queries.device_status(lake_con)
    assert devices["user"].to_list()[0] == SILENT_DEVICE and devices["status"][0] == "silent"
    assert devices["silent_since"][0] <= dt.datetime.combine(LAST_DAY, STOPPED, dt.UTC)
    assert set(devices["status"][1:]) <= {"sending", "asleep", "irregular"}
    assert devices["evaluated_at"].to_list() == [JUDGED_AT] * 3


def test_changes_to_daily_totals_after_they_were_built(lake_con):
    changes = queries.total_changes(lake_con, EVERYTHING)
    [row] = changes.to_dicts()
    assert (row["log_date"], row["user"], row["kind"]) == (LAST_DAY, SILENT_DEVICE, "file grew")
    assert row["files"].startswith(f"{SILENT_DEVICE}-{LAST_DAY}.csv grew ") and row["delta_kb"] > 0
    assert queries.total_changes(lake_con, Filters(FIRST_DAY, LAST_DAY - dt.timedelta(days=1))).is_empty()


def test_not_yet_judged_or_recorded_reads_as_none(con):
    assert queries.device_status(con) is None and queries.total_changes(con, EVERYTHING) is None


def test_as_of_the_first_run_gold_reads_as_it_was_then(served, lake_con):
    catalog = open_catalog(served)
    daily = catalog.load_table("packetx_gold.daily_user_bandwidth")
    earlier = kept_states(daily)[1]
    then = daily.scan(snapshot_id=earlier.snapshot_id).to_arrow()
    _, views = views_as_of(catalog, (*queries.SERVED_GOLD, *queries.LAKEHOUSE_TABLES), AsOf(snapshot_id=earlier.snapshot_id),
                           dt.datetime.now(dt.UTC))
    with queries.connect(served.serving_path, views, gold_from_lakehouse=True) as past:
        totals = dict(queries.total_kb_by_user(past, EVERYTHING).select("user", "total_kb").iter_rows())
        assert queries.freshness(past).height == 3  # ops.* is still the serving copy's
    now = dict(queries.total_kb_by_user(lake_con, EVERYTHING).select("user", "total_kb").iter_rows())
    assert totals == pytest.approx({user: sum(kb for u, kb in zip(then["user"].to_pylist(), then["total_kb"].to_pylist())
                                              if u == user) for user in now})
    assert totals[SILENT_DEVICE] < now[SILENT_DEVICE]
    assert {u: totals[u] for u in now if u != SILENT_DEVICE} == pytest.approx(
        {u: kb for u, kb in now.items() if u != SILENT_DEVICE})


def test_ip_history_shows_each_users_versions(con):
    history = queries.ip_history(con, ("alice",))
    assert history["version"].to_list() == [1, 2]
    assert history["valid_from"][1].date() == IP_CHANGE["alice"]
    assert history["is_current"].to_list() == [False, True]
    assert set(queries.ip_history(con)["user"]) == {"alice", "bob-smith", "carol"}


def test_freshness_gives_the_newest_partition_of_every_layer(con):
    fresh = queries.freshness(con)
    assert fresh["layer"].to_list() == ["bronze", "silver", "gold"]
    assert set(fresh["newest_partition"]) == {LAST_DAY}
    assert set(fresh["days"]) == {DAYS}


def test_quarantine_counts_lines_per_day_and_reason(con):
    by_day = queries.quarantine_by_day(con, Filters(FIRST_DAY, FIRST_DAY + dt.timedelta(days=1)))
    assert set(by_day["log_date"]) == {FIRST_DAY, FIRST_DAY + dt.timedelta(days=1)}
    expected = con.execute("SELECT count(*) FROM ops.quarantine WHERE log_date <= ?",
                           [FIRST_DAY + dt.timedelta(days=1)]).fetchone()[0]
    assert by_day["lines"].sum() == expected > 0


def test_landing_problems_show_the_ranges_days_and_those_without_a_day(con):
    problems = queries.landing_problems(con, EVERYTHING)
    assert problems.select("log_date", "object_key", "kind", "reason").rows() == [
        (None, BAD_NAME, "bad name", "invalid date 2026-13-45"),
        (FIRST_DAY, f"{EMPTY_DEVICE}-{FIRST_DAY}.csv", "empty", "empty file"),
    ]
    later = queries.landing_problems(con, Filters(FIRST_DAY + dt.timedelta(days=1), LAST_DAY))
    assert later["object_key"].to_list() == [BAD_NAME]


def test_no_database_or_no_tables_is_no_data_yet(tmp_path: Path):
    with pytest.raises(NoDataYet), queries.connect(tmp_path / "missing.duckdb"):
        pass
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(NoDataYet, match="gold.daily_user_bandwidth"), queries.connect(empty):
        pass


def test_a_writer_holding_the_database_reads_as_busy(tmp_path: Path):
    database = tmp_path / "locked.duckdb"
    duckdb.connect(str(database)).close()
    # DuckDB's lock is per process: only another process can stand in for a running pipeline.
    writer = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
         "sys.stdin.read()", str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        with pytest.raises(ServingBusy), queries.connect(database):
            pass
    finally:
        writer.stdin.close()
        writer.wait(timeout=30)


def test_the_demo_summary_prints_the_dashboards_top_hosts_which_are_silvers_sums(served, con, capsys):
    """The demo once summed the per-user-day top-N table: a host outside some day's top lost that day's KB."""
    print_answers(served.serving_path)
    printed = capsys.readouterr().out.split("Top external hosts:\n")[1].split("\n\n")[0].splitlines()[1:]
    shown = {ip: (float(mb), int(users)) for ip, mb, users in (line.split() for line in printed)}
    silver = pl.from_arrow(open_catalog(served).load_table("packetx_silver.packets").scan().to_arrow()).filter(
        ~pl.col("is_restart_replay") & ~pl.col("remote_is_private"))
    truth = silver.group_by("remote_ip").agg(mb=(pl.col("kb").sum() / 1024).round(1), users=pl.col("user").n_unique())
    assert len(shown) == 5
    assert shown == {row["remote_ip"]: (row["mb"], row["users"]) for row in truth.iter_rows(named=True)
                     if row["remote_ip"] in shown}
    dashboard = queries.top_external_hosts(con, EVERYTHING, limit=5)
    assert list(shown) == dashboard["remote_ip"].to_list()
