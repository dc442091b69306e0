"""The job the landing sensor, the daily schedule and backfills launch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dagster as dg

DAILY_PIPELINE = "daily_pipeline"
DESCRIPTION = (
    "Every asset of the lakehouse for one day or a range of days: bronze (archive + raw tables) -> silver -> "
    "gold -> anomalies and star-schema dimensions -> serving. Launched by the landing sensor (a file is new or "
    "grew), the daily schedule (yesterday, at 00:15) and backfills (up to 31 days per run, one Iceberg commit "
    "per table). Blocking checks stop everything downstream of data that does not add up."
)


@dataclass(frozen=True)
class DailyTargets:
    """Every asset and check of ``daily_pipeline``: the job's selection, and what its requests name.

    A request that names no assets makes a run that records none (``asset_selection`` None), and
    the automation conditions then cannot tell that the run which updated silver also built gold
    (``executed_with_root_target``): whenever a tick saw silver's update but not yet gold's, they
    asked for gold again, a whole-day rebuild from silver (10 GB for a 100-device day). So the
    landing sensor and the daily schedule name every target, the same list the job selects.
    """

    assets: tuple[dg.AssetKey, ...]
    checks: tuple[dg.AssetCheckKey, ...]

    @classmethod
    def of(cls, assets: Iterable[dg.AssetsDefinition], *, without_checks: Iterable[dg.AssetChecksDefinition] = ()
           ) -> DailyTargets:
        """``without_checks`` leaves out checks that are not about the days a run writes (freshness
        is about *now*): they would otherwise run, and fail, inside every backfill of old days."""
        assets = list(assets)
        excluded = {key for checks in without_checks for key in checks.check_keys}
        return cls(assets=tuple(sorted(key for asset in assets for key in asset.keys)),
                   checks=tuple(sorted(key for asset in assets for key in asset.check_keys if key not in excluded)))

    def request(self, **kwargs: Any) -> dg.RunRequest:
        """A request for a run of every target (``kwargs``: partition, run key, tags)."""
        return dg.RunRequest(asset_selection=list(self.assets), asset_check_keys=list(self.checks), **kwargs)


def daily_pipeline_job(targets: DailyTargets) -> dg.UnresolvedAssetJobDefinition:
    """Every asset, bronze through serving, in one run per requested day (or range).

    One run per day costs one process start, where following layer by layer through the
    automation conditions costs a run (and a sensor tick) per layer. The unpartitioned dimensions
    run in the same run, so serving and its referential-integrity check never see facts whose
    users or IPs are not in the dimensions yet.
    """
    selection = dg.AssetSelection.assets(*targets.assets).without_checks() | dg.AssetSelection.checks(*targets.checks)
    return dg.define_asset_job(DAILY_PIPELINE, selection=selection, description=DESCRIPTION)
