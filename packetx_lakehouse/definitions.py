"""The one place where every asset, check, sensor, schedule and resource is assembled."""

from __future__ import annotations

import dagster as dg

from packetx_lakehouse.defs.bronze.assets import bronze
from packetx_lakehouse.defs.gold.assets import GOLD_ASSETS, GOLD_CHECKS
from packetx_lakehouse.defs.gold.freshness import freshness_job, freshness_schedule, yesterday_is_fresh
from packetx_lakehouse.defs.jobs import daily_pipeline_job
from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.defs.schedules.daily import daily_schedule
from packetx_lakehouse.defs.sensors.landing import landing_sensor
from packetx_lakehouse.defs.serving.duckdb import serving_duckdb
from packetx_lakehouse.defs.serving.dynamodb import dynamodb_daily_aggregate
from packetx_lakehouse.defs.serving.warehouse import warehouse_star_schema
from packetx_lakehouse.defs.silver.assets import silver_packets
from packetx_lakehouse.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Definitions for one deployment; tests pass their own settings (temporary data dirs)."""
    settings = settings or Settings.from_env()
    # The daily partitions are built once, at import, from the environment (assets are module
    # level); settings that disagree with them would be silently ignored, so refuse them.
    if (settings.start_date, settings.partition_timezone) != (
        DAILY_PARTITIONS.start.date().isoformat(),
        DAILY_PARTITIONS.timezone,
    ):
        raise ValueError(
            "start date and partition time zone come from PACKETX_START_DATE / PACKETX_TIMEZONE at import; "
            f"got {settings.start_date} {settings.partition_timezone}, partitions use "
            f"{DAILY_PARTITIONS.start.date()} {DAILY_PARTITIONS.timezone}"
        )
    assets = [bronze, silver_packets, *GOLD_ASSETS, serving_duckdb]
    # Serving targets that exist only where they are configured (see docs/aws.md).
    assets += [dynamodb_daily_aggregate] if settings.is_aws else []
    assets += [warehouse_star_schema] if settings.warehouse_url else []
    return dg.Definitions(
        assets=assets,
        asset_checks=[*GOLD_CHECKS, yesterday_is_fresh],
        jobs=[daily_pipeline_job(assets), freshness_job],
        schedules=[daily_schedule, freshness_schedule],
        sensors=[
            landing_sensor,
            # Declared so that it runs by default: Dagster's implicit default sensor starts stopped.
            dg.AutomationConditionSensorDefinition(
                "automation_condition_sensor",
                target=dg.AssetSelection.all(),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=10,
            ),
        ],
        resources=build_resources(settings),
        # One process per run: steps are fast and vectorised, and a process per step costs ~10 s.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
