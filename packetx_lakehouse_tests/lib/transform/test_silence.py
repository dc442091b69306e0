"""Device silence, learnt from each device's own user-hours: servers, sleeping laptops, sparse devices."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable, Iterable

import pyarrow as pa
import pytest

from packetx_lakehouse.lib.schemas import DEVICE_SILENCE, DEVICE_STATUS
from packetx_lakehouse.lib.transform.silence import (
    ASLEEP,
    GAP_ACROSS_DAYS,
    GAP_IN_DAY,
    IRREGULAR,
    LEARNING,
    NO_FILE_TODAY,
    SENDING,
    SILENT,
    STOPPED_GROWING,
    SilencePolicy,
    describe_hours,
    evaluate_silence,
)

TODAY = dt.date(2026, 11, 15)
DAYS = [TODAY - dt.timedelta(days=n) for n in range(14, -1, -1)]


def at(day: dt.date, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), dt.UTC)


def minutes(days: Iterable[dt.date], keep: Callable[[dt.datetime], bool] = lambda _: True,
            zone: dt.tzinfo = dt.UTC) -> list[dt.datetime]:
    """Every minute of ``days`` (local to ``zone``) that ``keep`` keeps, as UTC instants."""
    found = []
    for day in days:
        start = dt.datetime.combine(day, dt.time(), zone)
        for n in range(1440):
            local = start + dt.timedelta(minutes=n)
            if keep(local):
                found.append(local.astimezone(dt.UTC))
    return found


def user_hourly(devices: dict[str, list[dt.datetime]]) -> pa.Table:
    """``user_hourly``'s columns the silence reads, from each device's minutes seen."""
    masks: dict[tuple[str, dt.datetime], int] = defaultdict(int)
    for user, seen in devices.items():
        for minute in seen:
            masks[(user, minute.replace(minute=0))] |= 1 << minute.minute
    keys = sorted(masks)
    return pa.table({
        "log_date": pa.array([hour.date() for _, hour in keys], pa.date32()),
        "user": [user for user, _ in keys],
        "hour_utc": pa.array([hour for _, hour in keys], pa.timestamp("us", "UTC")),
        "minute_mask": pa.array([masks[k] for k in keys], pa.int64()),
    })


def until(moment: dt.datetime) -> Callable[[dt.datetime], bool]:
    return lambda minute: minute < moment


def awake(first: int, end: int) -> Callable[[dt.datetime], bool]:
    return lambda minute: first <= minute.hour < end


def status_of(report, user: str) -> dict:
    return next(row for row in report.status.to_pylist() if row["user"] == user)


def test_a_server_that_stops_at_1407_is_silent_once_past_the_threshold_and_named_with_since_when():
    hours = user_hourly({"server": minutes(DAYS, until(at(TODAY, 14, 7)))})
    quiet = evaluate_silence(hours, at(TODAY, 14, 30))
    assert status_of(quiet, "server")["status"] == SENDING and quiet.silent == []
    assert quiet.silences.num_rows == 0

    report = evaluate_silence(hours, at(TODAY, 15, 0))
    assert report.status.schema == DEVICE_STATUS.schema and report.silences.schema == DEVICE_SILENCE.schema
    row = status_of(report, "server")
    assert (row["status"], row["silent_since"], row["last_seen_utc"]) == (SILENT, at(TODAY, 14, 7), at(TODAY, 14, 6))
    assert (row["missed_minutes"], row["allowed_minutes"], row["usual_gap_minutes"]) == (53, 30, 1)
    assert (row["active_hours"], row["history_days"], row["seen_minutes_today"]) == ("all day", 14, 14 * 60 + 7)
    assert row["expected_minutes_today"] == 15 * 60
    assert report.problems() == [
        "server: silent since 2026-11-15 14:07 UTC (53 minutes of its active hours without data; 30 allowed)"]
    [silence] = report.silences.to_pylist()
    assert silence | {"evaluated_at": None} == {
        "log_date": TODAY, "user": "server", "silent_from": at(TODAY, 14, 7), "silent_to": None, "ongoing": True,
        "reason": STOPPED_GROWING, "missed_minutes": 53, "allowed_minutes": 30, "expected_minutes": 15 * 60,
        "seen_minutes": 14 * 60 + 7, "evaluated_at": None}


def test_the_alarm_clears_by_itself_when_the_device_resumes_and_the_gap_stays_on_record():
    back = at(TODAY, 16, 30)
    hours = user_hourly({"server": minutes(DAYS, lambda m: not at(TODAY, 14, 7) <= m < back)})
    report = evaluate_silence(hours, at(TODAY, 16, 45))
    assert status_of(report, "server")["status"] == SENDING and report.problems() == []
    [gap] = report.silences.to_pylist()
    assert (gap["silent_from"], gap["silent_to"], gap["ongoing"], gap["reason"], gap["missed_minutes"]) == (
        at(TODAY, 14, 7), back, False, GAP_IN_DAY, 143)


def test_a_laptop_asleep_at_night_is_no_alarm_but_one_that_did_not_wake_up_is():
    laptop = minutes(DAYS[:-1], awake(7, 23))
    hours = user_hourly({"laptop": laptop + minutes([TODAY], awake(7, 23))})
    night = evaluate_silence(hours, at(TODAY + dt.timedelta(days=1), 3, 0))
    row = status_of(night, "laptop")
    assert (row["status"], row["active_hours"], row["missed_minutes"]) == (ASLEEP, "07:00-23:00", 0)
    assert night.problems() == [] and night.silences.num_rows == 0

    # The same laptop did not wake up today: silent from its last minute of yesterday.
    report = evaluate_silence(user_hourly({"laptop": laptop}), at(TODAY, 7, 45))
    row = status_of(report, "laptop")
    assert (row["status"], row["silent_since"], row["missed_minutes"]) == (SILENT, at(TODAY, 0, 0) - dt.timedelta(
        minutes=60), 45)
    [silence] = report.silences.to_pylist()
    assert (silence["reason"], silence["log_date"], silence["seen_minutes"]) == (NO_FILE_TODAY, DAYS[-2], 16 * 60)


def test_hours_are_the_devices_own_local_hours():
    tokyo = dt.timezone(dt.timedelta(hours=9))  # no DST: the same hours every day
    seen = minutes(DAYS, awake(7, 23), zone=tokyo)
    report = evaluate_silence(user_hourly({"kenji": seen}), at(TODAY, 15, 0), zones={"kenji": "Asia/Tokyo"})
    row = status_of(report, "kenji")  # 15:00 UTC is midnight in Tokyo
    assert (row["status"], row["active_hours"], row["timezone"]) == (ASLEEP, "07:00-23:00", "Asia/Tokyo")
    assert describe_hours([h >= 22 or h < 6 for h in range(24)]) == "22:00-06:00"


def test_a_sparse_device_gets_an_allowance_from_its_own_gaps():
    rng = random.Random(7)
    seen = sorted(m for day in DAYS for m in rng.sample(minutes([day]), 60))  # 60 random minutes a day
    hours = user_hourly({"sparse": [m for m in seen if m < at(TODAY, 12)]})
    row = status_of(evaluate_silence(hours, at(TODAY, 12, 0) + dt.timedelta(minutes=90)), "sparse")
    assert row["status"] == SENDING
    assert row["usual_gap_minutes"] > 60 and row["allowed_minutes"] == 2 * row["usual_gap_minutes"]


def test_devices_are_learnt_only_after_three_days_and_irregular_ones_are_never_alarms():
    rng = random.Random(1)
    report = evaluate_silence(user_hourly({
        "new": minutes(DAYS[-3:], until(at(TODAY, 1))),  # first seen the day before yesterday
        "rare": [m for day in DAYS[:-1] for m in rng.sample(minutes([day]), 5)],
    }), at(TODAY, 15))
    assert (status_of(report, "new")["status"], status_of(report, "new")["history_days"]) == (LEARNING, 2)
    assert (status_of(report, "rare")["status"], status_of(report, "rare")["active_hours"]) == (IRREGULAR,
                                                                                                 "none regular")
    assert report.problems() == []


def test_a_dead_device_stays_silent_until_it_leaves_the_history_window():
    dead = minutes(DAYS[:-5], until(at(DAYS[-6], 9)))  # stopped five days ago at 09:00
    alive = minutes(DAYS)
    report = evaluate_silence(user_hourly({"dead": dead, "alive": alive}), at(TODAY, 12))
    [silence] = report.silences.to_pylist()
    assert (silence["user"], silence["silent_from"], silence["reason"]) == ("dead", at(DAYS[-6], 9), NO_FILE_TODAY)
    assert status_of(report, "dead")["history_days"] == 10
    three_weeks_on = evaluate_silence(user_hourly({"dead": dead, "alive": minutes(DAYS + [TODAY + dt.timedelta(
        days=n) for n in range(1, 15)])}), at(TODAY + dt.timedelta(days=14), 12))
    assert [row["user"] for row in three_weeks_on.status.to_pylist()] == ["alive"]


def test_a_gap_across_days_that_ended_is_listed_and_everyone_silent_is_hinted_at():
    off = (at(DAYS[-2], 20), at(TODAY, 6))
    hours = user_hourly({
        "a": minutes(DAYS, lambda m: not off[0] <= m < off[1]),
        "b": minutes(DAYS, until(at(TODAY, 10))),
        "c": minutes(DAYS, until(at(TODAY, 10, 30))),
    })
    report = evaluate_silence(hours, at(TODAY, 11), policy=SilencePolicy(threshold_minutes=20))
    gaps = {(row["user"], row["reason"]) for row in report.silences.to_pylist()}
    assert gaps == {("a", GAP_ACROSS_DAYS), ("b", STOPPED_GROWING), ("c", STOPPED_GROWING)}
    assert [row["status"] for row in report.status.to_pylist()] == [SILENT, SILENT, SENDING]
    assert report.problems()[0].startswith("b: silent since 2026-11-15 10:00 UTC")
    # When every judged device is silent, the pipeline is the likelier culprit: said first.
    fleet = user_hourly({"b": minutes(DAYS, until(at(TODAY, 10))), "c": minutes(DAYS, until(at(TODAY, 10, 30)))})
    assert evaluate_silence(fleet, at(TODAY, 14), policy=SilencePolicy(threshold_minutes=20)).problems()[:2] == [
        "every device is silent, since 2026-11-15 10:00 UTC at the earliest: is data still arriving (landing area, "
        "landing_sensor, pipeline runs)?",
        "b: silent since 2026-11-15 10:00 UTC (240 minutes of its active hours without data; 20 allowed)"]


def test_nothing_to_judge_gives_empty_tables_of_the_exact_schema():
    report = evaluate_silence(user_hourly({}), at(TODAY, 12))
    assert report.status == DEVICE_STATUS.schema.empty_table()
    assert report.silences == DEVICE_SILENCE.schema.empty_table()
    assert report.problems() == []


@pytest.mark.parametrize("bad", [dict(threshold_minutes=0), dict(history_days=2), dict(active_share=0),
                                 dict(gap_factor=0.5)])
def test_impossible_policies_are_refused(bad):
    with pytest.raises(ValueError):
        SilencePolicy(**bad)
