"""The PyIceberg SQL catalog on PostgreSQL: the shared catalog for several hosts without AWS."""

import datetime as dt

from pyiceberg.catalog import load_catalog

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.postgres import fresh_database
from packetx_lakehouse_harness.truth import assert_tables_match_files
from packetx_lakehouse_tests.lib.storage.test_iceberg import (
    assert_concurrent_writers_lose_nothing,
)

FIRST = dt.date(2026, 11, 18)


def test_the_pipeline_runs_on_a_postgresql_catalog_with_a_shared_warehouse_path(tmp_path):
    with fresh_database("packetx_catalog") as url:
        settings = Settings(data_dir=tmp_path / "data", traffic_log_dir=tmp_path / "landing", start_date="2026-11-01",
                            catalog_url=url, iceberg_warehouse=str(tmp_path / "shared" / "warehouse"))
        generate(settings.traffic_log_dir, users=2, days=2, start=FIRST, seed=3,
                 options=GeneratorOptions(minutes_per_day=20, pairs_per_minute=5, bad_lines=2))
        assert materialize_range(build_definitions(settings), FIRST, FIRST + dt.timedelta(days=1)).success
        assert_tables_match_files(settings)
        assert not settings.catalog_path.exists()  # no SQLite catalog was made on the side
        # Any host with the URL and the shared path reads the same tables with plain PyIceberg.
        other = load_catalog("packetx", type="sql", uri=url.replace("postgresql://", "postgresql+psycopg://"),
                             warehouse=(tmp_path / "shared" / "warehouse").as_uri())
        assert other.load_table("packetx_gold.daily_user_bandwidth").scan().to_arrow().num_rows == 4


def test_concurrent_writers_on_a_postgresql_catalog_lose_nothing(tmp_path):
    with fresh_database("packetx_catalog") as url:
        assert_concurrent_writers_lose_nothing(url, (tmp_path / "warehouse").as_uri())
