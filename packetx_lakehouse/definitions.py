"""The one place where every asset, check, sensor, schedule and resource is assembled."""

from __future__ import annotations

import dagster as dg

from packetx_lakehouse.defs.bronze.assets import bronze
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Definitions for one deployment; tests pass their own settings (temporary data dirs)."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[bronze],
        resources=build_resources(settings),
        # One process per run: steps are fast and vectorised, and a process per step costs ~10 s.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
