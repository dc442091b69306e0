"""Freshness expectation: yesterday's gold partition is materialised by 06:00 (partition zone).

Dagster's built-in time-partition freshness check expects the *last* partition, which here is
today's (the partitions run through today so the growing file can be ingested), so the check
is written out: it looks up yesterday's materialisation in the instance. A ``FreshnessPolicy``
is not used: it is not partition-aware (any partition's materialisation, e.g. a backfill of last
year, or today's growing file at 01:00, would count as fresh), so it would tell the health view
the opposite of the truth exactly when yesterday is missing. This check's result is what the
asset's health shows instead.

The check is about *now*, not about the days a run writes, so it runs only in its own job, on
its own schedule after the deadline; ``daily_pipeline`` (sensor, schedule, backfills) leaves it
out, and a backfill of old days never evaluates (or fails) it.
"""


import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg

from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH

DEADLINE_HOUR = 6
CHECKED = asset_key(GOLD_DAILY_USER_BANDWIDTH)


def expected_partition(now: dt.datetime, zone: str = "UTC") -> dt.date:
    """Yesterday once the deadline has passed today; before it, the day before yesterday."""
    local = now.astimezone(ZoneInfo(zone))
    return local.date() - dt.timedelta(days=1 if local.hour >= DEADLINE_HOUR else 2)


@dataclass(frozen=True)
class Freshness:
    """The check, and the job and schedule that run it once a day after the deadline."""

    check: dg.AssetChecksDefinition
    job: "dg.UnresolvedAssetJobDefinition"  # not exported by name from dagster
    schedule: dg.ScheduleDefinition


def freshness_defs(partitions: dg.DailyPartitionsDefinition) -> Freshness:
    zone = partitions.timezone

    @dg.asset_check(asset=CHECKED, name="yesterday_is_fresh",
                    description=f"yesterday's partition exists by {DEADLINE_HOUR:02d}:00 {zone}")
    def yesterday_is_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        day = expected_partition(dt.datetime.now(dt.UTC), zone).isoformat()
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CHECKED, asset_partitions=[day]), limit=1
        ).records
        return dg.AssetCheckResult(
            passed=bool(records),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"expected_partition": day,
                      "materialized_at": records[0].timestamp if records else "never"},
        )

    job = dg.define_asset_job("freshness_check", selection=dg.AssetSelection.checks(yesterday_is_fresh),
                              description=f"Checks that yesterday's gold partition exists; runs daily at "
                              f"{DEADLINE_HOUR:02d}:00 {zone}, never inside runs that write data.")
    schedule = dg.ScheduleDefinition(job=job, cron_schedule=f"0 {DEADLINE_HOUR} * * *", execution_timezone=zone,
                                     default_status=dg.DefaultScheduleStatus.RUNNING)
    return Freshness(yesterday_is_fresh, job, schedule)
