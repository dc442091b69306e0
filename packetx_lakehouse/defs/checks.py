"""Asset-check results built from the pure validators in ``lib.transform.checks``."""

from __future__ import annotations

import dagster as dg


def problems_check(
    name: str,
    problems: list[str],
    asset_key: dg.AssetKey | None = None,
    metadata: dict[str, dg.MetadataValue] | None = None,
) -> dg.AssetCheckResult:
    """Passed when there are no problems; otherwise an ERROR listing them for the UI."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**(metadata or {}),
                  "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:20]) or "none")},
    )


def check_spec(asset: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description)


def is_selected(context: dg.AssetExecutionContext, asset: dg.AssetKey, name: str) -> bool:
    """Whether this (subset) run asked for the check ``name`` of ``asset``."""
    return dg.AssetCheckKey(asset, name) in context.selected_asset_check_keys
