"""The job the landing sensor, the daily schedule and backfills launch."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

DAILY_PIPELINE = "daily_pipeline"


def daily_pipeline_job(assets: Iterable[dg.AssetsDefinition]) -> dg.UnresolvedAssetJobDefinition:
    """Every asset, bronze through serving, in one run per requested day (or range).

    One run per day costs one process start, and it also reaches days that
    ``AutomationCondition.eager()`` leaves alone (it only acts on the latest partition), such as
    yesterday at the daily tick or the days a sensor catches up on. The unpartitioned dimensions
    run in the same run, so serving and its referential-integrity check never see facts whose
    users or IPs are not in the dimensions yet.
    """
    keys = [key for asset in assets for key in asset.keys]
    return dg.define_asset_job(DAILY_PIPELINE, selection=dg.AssetSelection.assets(*keys))
