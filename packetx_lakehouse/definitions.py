"""The one place where every asset, check, sensor, schedule and resource is assembled.

Everything is built from one :class:`Settings` object: the daily partitions, the schedules' time
zone and the resources all come from the same values, read once.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from packetx_lakehouse.dagster_internals import install_claim_wait
from packetx_lakehouse.defs.automation.freshness import freshness_defs
from packetx_lakehouse.defs.automation.jobs import DailyTargets, daily_pipeline_job
from packetx_lakehouse.defs.automation.landing_sensor import landing_sensor
from packetx_lakehouse.defs.automation.schedules import daily_schedule
from packetx_lakehouse.defs.conventions import NETWORK_RETRY
from packetx_lakehouse.defs.gold.anomalies import anomalies_assets
from packetx_lakehouse.defs.gold.dimensions import dimension_assets
from packetx_lakehouse.defs.maintenance.job import maintenance_job, maintenance_schedule
from packetx_lakehouse.defs.operations.history import total_changes_assets
from packetx_lakehouse.defs.operations.silence import silence_assets
from packetx_lakehouse.defs.operations.watch import watch_defs
from packetx_lakehouse.defs.partitions import daily_partitions
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.defs.serving.duckdb import serving_duckdb_assets
from packetx_lakehouse.defs.serving.dynamodb import dynamodb_assets
from packetx_lakehouse.defs.serving.warehouse import warehouse_assets
from packetx_lakehouse.defs.transform import transform_assets
from packetx_lakehouse.lib.transform.silence import SilencePolicy
from packetx_lakehouse.settings import (
    DEFAULT_BACKFILL_DAYS_PER_RUN,
    Settings,
    prepare_environment,
)

#: ``PACKETX_EXECUTOR``: one process per run by default (steps are fast and vectorised, and a
#: process per step costs ~10 s); ``multiprocess`` runs each step in its own process.
EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions for one deployment; tests pass their own settings (temporary data dirs)."""
    partitions = daily_partitions(settings)
    # On AWS every lakehouse step reaches S3 and Glue; local files and SQLite need no retries.
    retry = {"retry_policy": NETWORK_RETRY if settings.is_aws else None}
    assets = [
        transform_assets(partitions, settings.ingest_limits, **retry),
        anomalies_assets(partitions, **retry),
        dimension_assets(partitions, **retry),
        serving_duckdb_assets(partitions, **retry),
    ]
    # Serving targets that exist only where they are configured (see docs/aws.md).
    assets += [dynamodb_assets(partitions)] if settings.is_aws else []
    assets += [warehouse_assets(partitions)] if settings.warehouse_url else []
    if settings.backfill_days_per_run != DEFAULT_BACKFILL_DAYS_PER_RUN:
        # Fewer days per backfill run spread a range over more runs, so several workers share it.
        policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.backfill_days_per_run)
        assets = [a.with_attributes(backfill_policy=policy) if a.partitions_def else a for a in assets]
    freshness = freshness_defs(partitions)
    maintenance = maintenance_job()
    # About now and about commits made: on their own schedule, outside the pipeline's runs.
    operations = [silence_assets(SilencePolicy(threshold_minutes=settings.silence_minutes), **retry),
                  total_changes_assets(**retry)]
    watch = watch_defs(operations, settings.partition_timezone)
    daily = DailyTargets.of(assets, without_checks=[freshness.check])
    return dg.Definitions(
        assets=assets + operations,
        asset_checks=[freshness.check],
        jobs=[daily_pipeline_job(daily), freshness.job, maintenance, watch.job],
        schedules=[daily_schedule(partitions, daily), freshness.schedule,
                   maintenance_schedule(maintenance, settings.partition_timezone), watch.schedule],
        sensors=[
            landing_sensor(partitions, daily),
            # Declared so that it runs by default: Dagster's implicit default sensor starts stopped.
            dg.AutomationConditionSensorDefinition(
                "automation_condition_sensor",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=10,
            ),
        ],
        resources=build_resources(settings),
        executor=EXECUTORS[settings.executor],
    )


def scaffolded_definitions() -> dg.Definitions:
    """Module-level definitions added to the ``defs/`` folder, e.g. by ``dg scaffold defs dagster.asset x.py``.

    Our own ``defs/`` modules hold factories only (built above from the settings), so nothing is
    loaded twice. dg finds the folder through ``[tool.dg]`` in pyproject.toml, i.e. in a checkout;
    an installed wheel has nothing scaffolded.
    """
    project = Path(__file__).resolve().parents[1]
    if not (project / "pyproject.toml").is_file():
        return dg.Definitions()
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


@dg.definitions
def defs() -> dg.Definitions:
    """The code location ``dagster``/``dg`` load: the deployment the environment describes.

    Every process that loads it (the code server, each run launched from it) gets the fix for a
    run waiting for a pool slot, which otherwise busy-waits (``dagster_internals.install_claim_wait``):
    a live fleet has a refresh waiting behind the running one most of the time.
    """
    prepare_environment()
    install_claim_wait()
    return dg.Definitions.merge(build_definitions(Settings.from_env()), scaffolded_definitions())
