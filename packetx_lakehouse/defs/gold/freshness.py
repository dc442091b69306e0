"""Freshness expectation: yesterday's gold partition is materialised by 06:00 (partition zone).

Dagster's built-in time-partition freshness check expects the *last* partition, which here is
today's (the partitions run through today so the growing file can be ingested), so the check
is written out: it looks up yesterday's materialisation in the instance.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS
from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH

DEADLINE_HOUR = 6
_ZONE = DAILY_PARTITIONS.timezone
_KEY = asset_key(GOLD_DAILY_USER_BANDWIDTH)


def expected_partition(now: dt.datetime) -> dt.date:
    """Yesterday once the deadline has passed today; before it, the day before yesterday."""
    local = now.astimezone(ZoneInfo(_ZONE))
    return local.date() - dt.timedelta(days=1 if local.hour >= DEADLINE_HOUR else 2)


@dg.asset_check(asset=_KEY, description=f"yesterday's partition exists by {DEADLINE_HOUR:02d}:00 {_ZONE}")
def yesterday_is_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    day = expected_partition(dt.datetime.now(dt.UTC)).isoformat()
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=_KEY, asset_partitions=[day]), limit=1
    ).records
    return dg.AssetCheckResult(
        passed=bool(records),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"expected_partition": day,
                  "materialized_at": records[0].timestamp if records else "never"},
    )


freshness_job = dg.define_asset_job("freshness_check", selection=dg.AssetSelection.checks(yesterday_is_fresh))
freshness_schedule = dg.ScheduleDefinition(
    job=freshness_job, cron_schedule=f"0 {DEADLINE_HOUR} * * *", execution_timezone=_ZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
