"""Jobs the landing sensor, the daily schedule and backfills launch."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from packetx_lakehouse.defs.partitions import DAILY_PARTITIONS

DAILY_PIPELINE = "daily_pipeline"


def daily_pipeline_job(assets: Iterable[object]) -> dg.UnresolvedAssetJobDefinition:
    """Every asset on the daily partitions, bronze through serving, in one run per request.

    One run per day costs one process start, and it also reaches days that
    ``AutomationCondition.eager()`` leaves alone (it only acts on the latest partition), such as
    yesterday at the daily tick or the days a sensor catches up on. Unpartitioned assets are left
    out because a partitioned job cannot hold them; their own automation conditions follow.
    """
    keys = [
        key
        for asset in assets
        if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def == DAILY_PARTITIONS
        for key in asset.keys
    ]
    return dg.define_asset_job(DAILY_PIPELINE, selection=dg.AssetSelection.assets(*keys))
