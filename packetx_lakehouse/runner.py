"""Run the lakehouse's assets in process over a range of days (demo, benchmarks, tests).

A range runs as ONE Dagster run tagged with the partition range, exactly as a backfill with a
single-run policy would, so start-up is paid once rather than once per day.
"""

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from packetx_lakehouse.lib.archive import group_landing_by_day
from packetx_lakehouse.lib.objectstore import ObjectStore

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def project_instance() -> dg.DagsterInstance:
    """The instance the UI reads: ``$DAGSTER_HOME``, else the project root's ``dagster.yaml``."""
    if not os.environ.get("DAGSTER_HOME") and Path("dagster.yaml").is_file():
        os.environ["DAGSTER_HOME"] = str(Path.cwd())
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def landing_days(landing: ObjectStore) -> tuple[list[dt.date], list[str]]:
    """The days that have traffic-log files, and the keys that break the naming contract."""
    by_day, ignored = group_landing_by_day(landing)
    return sorted(by_day), ignored


def materialize_range(
    defs: dg.Definitions,
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: str | None = None,
    raise_on_error: bool = True,
    log_level: str = "INFO",
) -> dg.ExecuteInProcessResult:
    """Materialise every (selected) asset for the days ``first..last`` in one run."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        asset_selection=sorted(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph()))
        if selection
        else None,
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
