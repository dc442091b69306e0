"""The job the landing sensor, the daily schedule and backfills launch."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

DAILY_PIPELINE = "daily_pipeline"
DESCRIPTION = (
    "Every asset of the lakehouse for one day or a range of days: bronze (archive + raw tables) -> silver -> "
    "gold -> anomalies and star-schema dimensions -> serving. Launched by the landing sensor (a file is new or "
    "grew), the daily schedule (yesterday, at 00:15) and backfills (up to 31 days per run, one Iceberg commit "
    "per table). Blocking checks stop everything downstream of data that does not add up."
)


def daily_pipeline_job(
    assets: Iterable[dg.AssetsDefinition], *, without_checks: Iterable[dg.AssetChecksDefinition] = ()
) -> dg.UnresolvedAssetJobDefinition:
    """Every asset, bronze through serving, in one run per requested day (or range).

    One run per day costs one process start, where following layer by layer through the
    automation conditions costs a run (and a sensor tick) per layer. The unpartitioned dimensions
    run in the same run, so serving and its referential-integrity check never see facts whose
    users or IPs are not in the dimensions yet.

    ``without_checks`` leaves out checks that are not about the days a run writes (freshness is
    about *now*): they would otherwise run, and fail, inside every backfill of old days.
    """
    keys = [key for asset in assets for key in asset.keys]
    selection = dg.AssetSelection.assets(*keys)
    excluded = list(without_checks)
    if excluded:
        selection = selection - dg.AssetSelection.checks(*excluded)
    return dg.define_asset_job(DAILY_PIPELINE, selection=selection, description=DESCRIPTION)
