import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.defs.partitions import daily_partitions
from packetx_lakehouse.settings import Settings

DAILY_PARTITIONS = daily_partitions(Settings())
daily_schedule = build_definitions(Settings()).resolve_schedule_def("daily_schedule")
ROWS = "alice,2026-11-20 23:59,8.8.8.8,192.168.1.20,210,210\n"


def test_schedule_is_daily_after_midnight_in_the_partition_time_zone():
    assert daily_schedule.cron_schedule == "15 0 * * *"
    assert daily_schedule.execution_timezone == DAILY_PARTITIONS.timezone == "UTC"
    assert daily_schedule.job_name == DAILY_PIPELINE
    assert daily_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_a_tick_requests_yesterday_in_the_partition_time_zone():
    # 00:15 in Auckland is still the previous morning in UTC: yesterday is the partitions' yesterday.
    auckland = dt.datetime(2026, 11, 21, 0, 15, tzinfo=ZoneInfo("Pacific/Auckland"))
    for tick_time, expected in ((dt.datetime(2026, 11, 21, 0, 15, tzinfo=dt.UTC), "2026-11-20"), (auckland, "2026-11-19")):
        request = daily_schedule(dg.build_schedule_context(scheduled_execution_time=tick_time))
        assert (request.partition_key, request.run_key) == (expected, expected)


def test_a_tick_materialises_yesterday_through_gold(lakehouse):
    lakehouse.write_log("alice-2026-11-20.csv", ROWS * 1 + ROWS.replace("23:59", "23:58"))
    request = daily_schedule(
        dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 21, 0, 15, tzinfo=dt.UTC))
    )
    job = lakehouse.defs.resolve_job_def(DAILY_PIPELINE)
    result = job.execute_in_process(partition_key=request.partition_key, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"packetx_raw/packets", "packetx_silver/packets", "packetx_gold/daily_user_bandwidth"} <= materialized
    daily = lakehouse.catalog().load_table("packetx_gold.daily_user_bandwidth").scan().to_arrow()
    assert daily.select(["log_date", "user"]).to_pylist() == [{"log_date": dt.date(2026, 11, 20), "user": "alice"}]
