"""The daily schedule: shortly after midnight, materialise yesterday's partition end to end.

Midnight is in the partitions' time zone (``PACKETX_TIMEZONE``), so "yesterday" is the same day
the partition keys mean. The 15-minute grace lets the devices' last minute of the day land.
"""


import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE, DailyTargets


def daily_schedule(partitions: dg.DailyPartitionsDefinition, targets: DailyTargets) -> dg.ScheduleDefinition:
    zone = partitions.timezone

    @dg.schedule(job_name=DAILY_PIPELINE, cron_schedule="15 0 * * *", execution_timezone=zone,
                 default_status=dg.DefaultScheduleStatus.RUNNING)
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """Yesterday, relative to the tick's own time (so a late or replayed tick picks the right day)."""
        yesterday = context.scheduled_execution_time.astimezone(ZoneInfo(zone)).date() - dt.timedelta(days=1)
        return targets.request(run_key=yesterday.isoformat(), partition_key=yesterday.isoformat())

    return daily_schedule
