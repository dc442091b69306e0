"""Why a user-hour stands out: a new host, one host's volume, a direction, or many hosts at once."""

import datetime as dt

import polars as pl
import pytest

from packetx_lakehouse.lib.transform.explain import (
    DIRECTION,
    MANY_HOSTS,
    NEW_HOST,
    NOT_HIGHER,
    ONE_HOST,
    explain_hour,
)

HOUR = dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)
#: Every day of the week before at 14:00 (and one other hour): two usual hosts, outbound, 100 KB each.
USUAL = [("8.8.8.8", "outbound", 100.0), ("1.1.1.1", "outbound", 100.0)]


def hourly(hour_rows: list[tuple[str, str, float]], week: list[tuple[str, str, float]] = USUAL) -> pl.DataFrame:
    rows = []
    for days_before in range(1, 8):
        for hour in (HOUR - dt.timedelta(days=days_before), HOUR - dt.timedelta(days=days_before, hours=3)):
            rows += [("alice", hour, ip, direction, kb, 10) for ip, direction, kb in week]
    rows += [("alice", HOUR, ip, direction, kb, 30) for ip, direction, kb in hour_rows]
    rows += [("bob", HOUR, "9.9.9.9", "outbound", 1e9, 60)]  # another user: never mixed in
    return pl.DataFrame(rows, schema={"user": pl.String, "hour_utc": pl.Datetime("us", "UTC"), "remote_ip": pl.String,
                                      "direction": pl.String, "kb": pl.Float64, "minutes": pl.Int64}, orient="row")


def test_a_new_host_is_named_with_its_share_of_the_rise():
    found = explain_hour(hourly([*USUAL, ("203.0.113.7", "outbound", 5000.0)]), "alice", HOUR)
    assert (found.kb, found.typical_kb, found.change_kb) == (5200.0, 200.0, 5000.0)
    assert found.what_changed_most == NEW_HOST
    assert found.findings[0] == ("new host 203.0.113.7 (outbound): 4.88 MB, 100% of the rise; never seen in the 7 days "
                                 "before")
    top = found.hosts.row(0, named=True)
    assert (top["remote_ip"], top["new"], top["days_seen"], top["typical_kb"]) == ("203.0.113.7", True, 0, 0.0)
    assert found.hosts.filter(pl.col("remote_ip") == "8.8.8.8")["days_seen"].to_list() == [7]


def test_one_known_hosts_volume():
    found = explain_hour(hourly([("8.8.8.8", "outbound", 4100.0), ("1.1.1.1", "outbound", 100.0)]), "alice", HOUR)
    assert found.what_changed_most == ONE_HOST
    assert found.findings == ["host 8.8.8.8 (outbound): 4.00 MB against a typical 100.0 KB in this hour, 100% of the rise"]


def test_a_direction_that_is_usually_a_small_part():
    lan = [(f"10.0.0.{n}", "internal", 1.0) for n in range(1, 5)]  # known, usually next to nothing
    rows = [*USUAL, *((ip, direction, 150.0) for ip, direction, _ in lan)]  # no one host carries half the rise
    found = explain_hour(hourly(rows, USUAL + lan), "alice", HOUR)
    assert found.what_changed_most == DIRECTION
    assert found.findings == ["internal traffic: 75% of the hour (600.0 KB), usually 2% (4.0 KB)"]
    directions = dict(found.directions.select("direction", "change_kb").iter_rows())
    assert directions == {"internal": 596.0, "outbound": 0.0}


def test_many_hosts_at_once_and_more_active_minutes():
    week = [(f"1.1.1.{n}", "outbound", 10.0) for n in range(10)]
    minutes = pl.DataFrame({"user": ["alice"] * 8,
                            "hour_utc": [HOUR - dt.timedelta(days=d) for d in range(8)],
                            "minutes": [58] + [10] * 7}, schema={"user": pl.String,
                                                                 "hour_utc": pl.Datetime("us", "UTC"),
                                                                 "minutes": pl.Int64})
    found = explain_hour(hourly([(ip, d, kb * 3) for ip, d, kb in week], week), "alice", HOUR, minutes)
    assert found.what_changed_most == MANY_HOSTS
    assert found.findings == ["the rise is spread over 10 hosts; the largest, 1.1.1.0, is 10% of it",
                              "active 58 minutes of the hour, typically 10"]
    assert (found.minutes, found.typical_minutes) == (58, pytest.approx(10.0))


def test_an_hour_at_its_usual_level_says_so():
    found = explain_hour(hourly(USUAL), "alice", HOUR)
    assert (found.what_changed_most, found.findings) == (NOT_HIGHER, ["200.0 KB against a typical 200.0 KB in this hour"])
