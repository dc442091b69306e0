"""Asset-check results built from the pure validators in ``lib.transform.checks``."""

from __future__ import annotations

import dagster as dg

from packetx_lakehouse.defs.metadata import shorten

#: Problems listed in a check's metadata, each cut to a few hundred characters.
MAX_PROBLEMS, MAX_PROBLEM_CHARS = 20, 300


def problems_check(
    name: str,
    problems: list[str],
    asset_key: dg.AssetKey | None = None,
    metadata: dict[str, dg.MetadataValue] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """Passed when there are no problems; otherwise a failure of ``severity`` listing them for the UI."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=not problems,
        severity=severity,
        metadata={**(metadata or {}), "problems": problem_list(problems)},
    )


def problem_list(problems: list[str]) -> dg.MetadataValue:
    """Problems as a markdown list: the first ``MAX_PROBLEMS``, each cut to ``MAX_PROBLEM_CHARS``."""
    shown = [f"- {shorten(p, MAX_PROBLEM_CHARS)}" for p in problems[:MAX_PROBLEMS]]
    more = [f"- … {len(problems) - MAX_PROBLEMS:,} more"] if len(problems) > MAX_PROBLEMS else []
    return dg.MetadataValue.md("\n".join(shown + more) or "none")


def check_spec(asset: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description)


def is_selected(context: dg.AssetExecutionContext, asset: dg.AssetKey, name: str) -> bool:
    """Whether this (subset) run asked for the check ``name`` of ``asset``."""
    return dg.AssetCheckKey(asset, name) in context.selected_asset_check_keys
