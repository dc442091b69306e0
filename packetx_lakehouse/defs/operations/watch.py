"""The ``fleet_watch`` job: device silence and the history of gold totals, every few minutes.

Both are about *now* and about commits already made, so, like the freshness check, they stay out
of ``daily_pipeline`` (whose runs, backfills of old days included, would evaluate them for
nothing) and run on their own schedule; each run reads small tables only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

WATCH_JOB = "fleet_watch"
#: Every ten minutes: a device past its allowance is named within ten minutes, and cleared as fast.
WATCH_CRON = "*/10 * * * *"


@dataclass(frozen=True)
class Watch:
    job: "dg.UnresolvedAssetJobDefinition"  # not exported by name from dagster
    schedule: dg.ScheduleDefinition


def watch_defs(assets: Sequence[dg.AssetsDefinition], zone: str) -> Watch:
    """The job over ``assets`` (with their checks) and its schedule, running by default."""
    job = dg.define_asset_job(WATCH_JOB, selection=dg.AssetSelection.assets(*assets),
                              description="Judges every device against its own history (device_status, "
                              "device_silence and the devices_sending check) and records the changes of each "
                              "day's gold totals (daily_total_changes); every ten minutes, on small tables only.")
    schedule = dg.ScheduleDefinition(job=job, cron_schedule=WATCH_CRON, execution_timezone=zone,
                                     default_status=dg.DefaultScheduleStatus.RUNNING)
    return Watch(job, schedule)
