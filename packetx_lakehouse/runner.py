"""Run the lakehouse in process over a range of days (demo, benchmarks, tests).

A range runs as ONE run of the ``daily_pipeline`` job, tagged with the partition range exactly
as a backfill under the job's policy is: the same job the sensor, the schedule and backfills
launch, with start-up paid once rather than once per day.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.lib.ingest.landing import group_landing_by_day
from packetx_lakehouse.lib.ingest.problems import LandingProblem
from packetx_lakehouse.lib.storage.objectstore import ObjectStore

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def project_instance(project_dir: Path = Path.cwd()) -> dg.DagsterInstance:
    """The instance the UI reads: ``$DAGSTER_HOME``, else the project's ``dagster.yaml``, else a throw-away one."""
    if os.environ.get("DAGSTER_HOME"):
        instance = dg.DagsterInstance.get()
    elif (project_dir / "dagster.yaml").is_file():
        instance = dg.DagsterInstance.from_config(str(project_dir))
    else:
        return dg.DagsterInstance.ephemeral()
    show_automation_as_running(instance)
    return instance


def show_automation_as_running(instance: dg.DagsterInstance) -> None:
    """Make the job page's "Auto-materialize" tag tell the truth.

    Dagster 1.13 evaluates automation conditions in sensors (here ``automation_condition_sensor``,
    running by default), yet a job page still shows the pre-sensor global daemon switch, which
    reads "Auto-materialize off" until it was ever turned on. The switch does nothing when sensors
    are used; turning it on only corrects the label.
    """
    from dagster._daemon.asset_daemon import (
        get_auto_materialize_paused,
        set_auto_materialize_paused,
    )

    if instance.auto_materialize_use_sensors and get_auto_materialize_paused(instance):
        set_auto_materialize_paused(instance, False)


def landing_days(landing: ObjectStore) -> tuple[list[dt.date], list[LandingProblem]]:
    """The days that have traffic-log files, and what in the landing area is not one (with why)."""
    by_day, problems = group_landing_by_day(landing)
    return sorted(by_day), problems


def materialize_range(
    defs: dg.Definitions,
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: str | None = None,
    raise_on_error: bool = True,
    log_level: str = "INFO",
    on_event: Callable[[dg.DagsterEvent], None] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialise every (selected) asset of ``daily_pipeline`` for the days ``first..last`` in one run.

    ``on_event`` hears each Dagster event as it happens (a command line's progress bar).
    """
    job = defs.resolve_job_def(DAILY_PIPELINE)
    loggers: dict[str, object] = {"console": {"config": {"log_level": log_level}}}
    if on_event is not None:
        job = job.with_logger_defs({**job.loggers, "events": _event_logger(on_event)})
        loggers["events"] = {}
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        asset_selection=sorted(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph()))
        if selection
        else None,
        raise_on_error=raise_on_error,
        run_config={"loggers": loggers},
    )


class _EventHandler(logging.Handler):
    def __init__(self, on_event: Callable[[dg.DagsterEvent], None]) -> None:
        super().__init__(logging.DEBUG)
        self.on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        # Dagster puts the event on each record it logs (``dagster_meta``, see dagster._core.log_manager).
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if event is not None:
            self.on_event(event)


def _event_logger(on_event: Callable[[dg.DagsterEvent], None]) -> dg.LoggerDefinition:
    @dg.logger(description="hands every Dagster event of the run to a callback")
    def events(_init_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("packetx_lakehouse.run_events", logging.DEBUG)
        logger.addHandler(_EventHandler(on_event))
        return logger

    return events
