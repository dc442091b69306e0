"""The validator behind the hourly check: no user-hour under two days, except across a half-hour zone's midnight."""

import datetime as dt

import pyarrow as pa

from packetx_lakehouse.lib.transform.checks import hours_under_two_days

UTC = dt.UTC


def hourly(*rows: tuple[str, dt.date, dt.datetime]) -> pa.Table:
    users, days, hours = zip(*rows)
    return pa.table({"log_date": pa.array(days, pa.date32()), "user": list(users),
                     "hour_utc": pa.array(hours, pa.timestamp("us", "UTC"))})


def test_an_hour_under_two_days_is_named():
    nov_21, nov_30 = dt.date(2026, 11, 21), dt.date(2026, 11, 30)
    hour = dt.datetime(2026, 11, 21, 9, tzinfo=UTC)
    table = hourly(("alice", nov_21, hour), ("alice", nov_30, hour), ("alice", nov_21, hour),
                   ("bob", nov_21, hour))
    assert hours_under_two_days(table, {}) == ["user alice hour 2026-11-21 09:00 UTC under 2 log_dates: 2026-11-21, 2026-11-30"]


def test_the_hour_spanning_local_midnight_of_a_half_hour_zone_may_hold_two_days():
    # Asia/Kolkata is UTC+05:30: 18:00-19:00 UTC is 23:30-00:30 local.
    d1, d2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
    spanning = dt.datetime(2026, 11, 20, 18, tzinfo=UTC)
    table = hourly(("ravi", d1, spanning), ("ravi", d2, spanning))
    assert hours_under_two_days(table, {"ravi": "Asia/Kolkata"}) == []
    assert len(hours_under_two_days(table, {})) == 1  # in UTC that hour is inside one day
    other = dt.datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert len(hours_under_two_days(hourly(("ravi", d1, other), ("ravi", d2, other)), {"ravi": "Asia/Kolkata"})) == 1
