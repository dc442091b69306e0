"""The landing sensor: a day's pipeline runs when one of its traffic-log files is new or grew.

It reads the ``landing`` resource, so the same sensor watches the local ``traffic_log``
directory or the S3 upload prefix, and the ``raw_archive`` resource, whose day manifests say
which landing objects were ingested already: switched on over an ingested area (or after losing
its cursor) it requests nothing for them. Each landing problem (a bad name, a link, a
sub-folder...) is reported once, not on every tick. It is STOPPED by default: turning it on is the
user's choice (Automation tab), and a fresh checkout should not start ingesting whatever sits in
``data/``.
"""


import datetime as dt

import dagster as dg

from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE, DailyTargets
from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
from packetx_lakehouse.defs.partitions import check_partition_key
from packetx_lakehouse.defs.resources import ObjectStoreResource
from packetx_lakehouse.lib.ingest.archive import load_manifest
from packetx_lakehouse.lib.ingest.landing import (
    diff_landing,
    dump_cursor,
    group_landing_by_day,
    load_cursor,
)

#: A tick every 5 s keeps file -> gold within ~30 s (a run costs ~7 s to start); a listing is cheap.
LANDING_SENSOR_INTERVAL_SECONDS = 5
#: Days requested per tick; after days offline the rest follow on the next ticks, oldest first.
MAX_DAYS_PER_TICK = 5


#: The sensor's runs refresh their day with the lines its files gained (``defs/transform.py``).
REFRESH = {REFRESH_TAG: NEW_LINES}
#: A refresh of a day in one of these states holds the day's next one back.
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def days_in_flight(instance: dg.DagsterInstance) -> set[dt.date]:
    """Days with a refresh of the daily pipeline queued or running: what they gain waits for it.

    A day is refreshed by one run at a time, back to back, each taking in everything its devices
    wrote since the one before: a fleet of devices costs a run per cycle, not a run per file, and
    no refresh waits for the writers' pool behind another of the same day.
    """
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=DAILY_PIPELINE, statuses=IN_FLIGHT, tags=REFRESH))
    return {dt.date.fromisoformat(run.tags["dagster/partition"]) for run in runs if "dagster/partition" in run.tags}


def landing_sensor(partitions: dg.DailyPartitionsDefinition, targets: DailyTargets) -> dg.SensorDefinition:
    @dg.sensor(job_name=DAILY_PIPELINE, minimum_interval_seconds=LANDING_SENSOR_INTERVAL_SECONDS,
               default_status=dg.DefaultSensorStatus.STOPPED)
    def landing_sensor(
        context: dg.SensorEvaluationContext, landing: ObjectStoreResource, raw_archive: ObjectStoreResource
    ) -> dg.SensorResult:
        """Request the day partition of every new or grown traffic-log file."""
        store, archive = landing.store(), raw_archive.store()
        by_day, problems = group_landing_by_day(store)
        diff = diff_landing(
            load_cursor(context.cursor),
            by_day,
            problems,
            lambda day, what: check_partition_key(partitions, day, what),
            MAX_DAYS_PER_TICK,
            archived=lambda day: load_manifest(archive, day).seen,
            busy=days_in_flight(context.instance),
        )
        for message in diff.messages:
            context.log.warning(message)
        return dg.SensorResult(
            run_requests=[targets.request(run_key=r.run_key, partition_key=r.partition_key, tags=REFRESH)
                          for r in diff.requests],
            cursor=dump_cursor(diff.cursor),
            skip_reason=None if diff.requests else f"No new or grown traffic-log files in {store.describe('')}",
        )

    return landing_sensor
