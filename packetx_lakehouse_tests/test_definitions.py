import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions, defs
from packetx_lakehouse.settings import Settings


def test_definitions_load_with_expected_assets_partitions_and_resources():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"packetx_raw/raw_archive", "packetx_raw/packets", "packetx_raw/quarantine"} <= keys
    partitions = graph.get(dg.AssetKey(["packetx_raw", "packets"])).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.start.date().isoformat() <= "2025-01-01"
    assert partitions.end_offset == 1  # today's growing file is ingestable now
    assert {"iceberg", "landing", "raw_archive", "device_timezones", "duckdb"} <= set(defs.resources)


def test_embedded_default_points_at_local_storage_under_data():
    resources = defs.resources
    assert resources["iceberg"].kind == "sql"
    assert resources["iceberg"].sqlite_path == "data/lakehouse/catalog.db"
    assert resources["landing"].root == "data/traffic_log"
    assert resources["duckdb"].database == "data/serving/packetx.duckdb"


def test_settings_that_disagree_with_the_import_time_partitions_are_refused():
    with pytest.raises(ValueError, match="got 2024-01-01 UTC, partitions use 2025-01-01 UTC"):
        build_definitions(Settings(start_date="2024-01-01"))
