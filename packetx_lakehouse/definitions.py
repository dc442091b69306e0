"""The one place where every asset, check, sensor, schedule and resource is assembled.

Everything is built from one :class:`Settings` object: the daily partitions, the schedules' time
zone and the resources all come from the same values, read once.
"""

from __future__ import annotations

import dagster as dg

from packetx_lakehouse.defs.automation.freshness import freshness_defs
from packetx_lakehouse.defs.automation.jobs import daily_pipeline_job
from packetx_lakehouse.defs.automation.landing_sensor import landing_sensor
from packetx_lakehouse.defs.automation.schedules import daily_schedule
from packetx_lakehouse.defs.bronze.assets import bronze_assets
from packetx_lakehouse.defs.gold.anomalies import anomalies_assets
from packetx_lakehouse.defs.gold.dimensions import dimension_assets
from packetx_lakehouse.defs.partitions import daily_partitions
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.defs.serving.duckdb import serving_duckdb_assets
from packetx_lakehouse.defs.serving.dynamodb import dynamodb_assets
from packetx_lakehouse.defs.serving.warehouse import warehouse_assets
from packetx_lakehouse.defs.transform import transform_assets
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
    assets = [
        bronze_assets(partitions),
        transform_assets(partitions),
        anomalies_assets(partitions),
        dimension_assets(partitions),
        serving_duckdb_assets(partitions),
    ]
    # Serving targets that exist only where they are configured (see docs/aws.md).
    assets += [dynamodb_assets(partitions)] if settings.is_aws else []
    assets += [warehouse_assets(partitions)] if settings.warehouse_url else []
    if settings.backfill_days_per_run != DEFAULT_BACKFILL_DAYS_PER_RUN:
        # Fewer days per backfill run spread a range over more runs, so several workers share it.
        policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.backfill_days_per_run)
        assets = [a.with_attributes(backfill_policy=policy) if a.partitions_def else a for a in assets]
    freshness = freshness_defs(partitions)
    return dg.Definitions(
        assets=assets,
        asset_checks=[freshness.check],
        jobs=[daily_pipeline_job(assets), freshness.job],
        schedules=[daily_schedule(partitions), freshness.schedule],
        sensors=[
            landing_sensor(partitions),
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


@dg.definitions
def defs() -> dg.Definitions:
    """The code location ``dagster``/``dg`` load: the deployment the environment describes."""
    prepare_environment()
    return build_definitions(Settings.from_env())
