"""Asset-check results built from the pure validators in ``lib.gold`` (problems: list of text)."""

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
