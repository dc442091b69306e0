import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.definitions import defs as load_defs
from packetx_lakehouse.defs.resources import build_resources
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


def test_executor_catalog_and_backfill_runs_are_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("PACKETX_EXECUTOR", "multiprocess")
    monkeypatch.setenv("PACKETX_CATALOG_URL", "postgresql://packetx:s3cret@db.internal:5432/catalog")
    monkeypatch.setenv("PACKETX_ICEBERG_WAREHOUSE", "file:///mnt/shared/warehouse")
    monkeypatch.setenv("PACKETX_BACKFILL_DAYS_PER_RUN", "7")
    settings = Settings.from_env()
    assert "s3cret" not in repr(settings)
    defs = build_definitions(settings)
    assert defs.executor.name == "multiprocess"
    catalog = defs.resources["iceberg"]
    # The UI shows the variable's name, never the URL with its password.
    assert (catalog.kind, catalog.warehouse) == ("sql", "file:///mnt/shared/warehouse")
    assert "s3cret" not in str(catalog.model_dump()) and "PACKETX_CATALOG_URL" in str(catalog.model_dump())
    graph = defs.resolve_asset_graph()
    assert {graph.get(key).backfill_policy for key in graph.get_all_asset_keys() if graph.get(key).partitions_def} == {
        dg.BackfillPolicy.multi_run(max_partitions_per_run=7)}


@pytest.mark.parametrize(("name", "value"), [("PACKETX_EXECUTOR", "celery"), ("PACKETX_BACKFILL_DAYS_PER_RUN", "0")])
def test_a_wrong_executor_or_day_count_stops_at_load_with_its_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


def test_the_default_runs_in_process_on_the_local_sqlite_catalog():
    defs = build_definitions(Settings())
    assert defs.executor.name == "in_process"
    assert defs.resources["iceberg"].url == ""


def test_the_catalog_resource_opens_the_url_from_the_environment_outside_a_run_too(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKETX_CATALOG_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    catalog = build_resources(Settings.from_env())["iceberg"].load()  # as the demo does
    assert catalog.properties["uri"] == f"sqlite:///{tmp_path / 'shared.db'}"
