import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.definitions import defs as load_defs
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.settings import Settings


def test_definitions_load_with_expected_assets_partitions_and_resources():
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"packetx_raw/raw_archive", "packetx_raw/packets", "packetx_raw/quarantine"} <= keys
    partitions = graph.get(dg.AssetKey(["packetx_raw", "packets"])).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.start.date().isoformat() <= "2025-01-01"
    assert partitions.end_offset == 1  # today's growing file is ingestable now
    assert {"iceberg", "landing", "raw_archive", "device_timezones", "duckdb"} <= set(defs.resources)


def test_embedded_default_points_at_local_storage_under_data():
    resources = load_defs().resources
    assert resources["iceberg"].kind == "sql"
    assert resources["iceberg"].sqlite_path == "data/lakehouse/catalog.db"
    assert resources["landing"].root == "data/traffic_log"
    assert resources["duckdb"].database == "data/serving/packetx.duckdb"


def test_partitions_and_schedules_follow_the_settings_passed_in():
    defs = build_definitions(Settings(start_date="2024-01-01", partition_timezone="Europe/Berlin"))
    partitions = defs.resolve_asset_graph().get(dg.AssetKey(["packetx_raw", "packets"])).partitions_def
    assert (partitions.start.date().isoformat(), partitions.timezone) == ("2024-01-01", "Europe/Berlin")
    assert {s.execution_timezone for s in defs.schedules} == {"Europe/Berlin"}


def test_dagster_and_dg_both_load_the_one_definitions_module():
    """workspace.yaml (dagster dev) and [tool.dg] (dg dev) point at the same module, and it validates."""
    root = Path(__file__).resolve().parents[1]
    bin_dir = Path(sys.executable).parent
    validate = subprocess.run([bin_dir / "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                              cwd=root, capture_output=True, text=True, timeout=120)
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert "All code locations passed validation" in validate.stderr + validate.stdout
    check = subprocess.run([bin_dir / "dg", "check", "defs"], cwd=root, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr


def test_landing_bounds_come_from_the_environment_and_a_typo_stops_the_run(monkeypatch):
    assert Settings.from_env().ingest_limits == IngestLimits()
    monkeypatch.setenv("PACKETX_MAX_FILE_BYTES", "67_108_864")
    monkeypatch.setenv("PACKETX_MAX_LINE_BYTES", "1024")
    monkeypatch.setenv("PACKETX_MAX_FILE_LINES", "1000000")
    assert Settings.from_env().ingest_limits == IngestLimits(64 << 20, 1024, 1_000_000)
    monkeypatch.setenv("PACKETX_MAX_LINE_BYTES", "4k")
    with pytest.raises(ValueError, match="PACKETX_MAX_LINE_BYTES must be a positive whole number, not '4k'"):
        Settings.from_env()
