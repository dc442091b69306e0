"""The daily schedule: shortly after midnight, materialise yesterday's partition end to end.

Midnight is in the partitions' time zone (``PACKETX_TIMEZONE``), so "yesterday" is the same day
the partition keys mean. The 15-minute grace lets the devices' last minute of the day land.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from packetx_lakehouse.defs.jobs import DAILY_PIPELINE
from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS


@dg.schedule(
    job_name=DAILY_PIPELINE,
    cron_schedule="15 0 * * *",
    execution_timezone=DAILY_PARTITIONS.timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday, relative to the tick's own time (so a late or replayed tick picks the right day)."""
    today = context.scheduled_execution_time.astimezone(ZoneInfo(DAILY_PARTITIONS.timezone)).date()
    yesterday = today - dt.timedelta(days=1)
    return dg.RunRequest(run_key=yesterday.isoformat(), partition_key=yesterday.isoformat())
