"""The production instance (deploy/dagster.postgres.yaml) on the machine's PostgreSQL."""

import secrets
import shutil
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.aws.conftest import PG_ADMIN_URL
from packetx_lakehouse_tests.defs.test_bronze import ALICE, BLOCK_1, DAY

PROJECT = Path(__file__).resolve().parents[2]


def test_partitioned_run_is_recorded_in_postgres(lakehouse, tmp_path: Path, monkeypatch):
    name = f"packetx_dagster_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copyfile(PROJECT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
        # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, whose server-side binding breaks
        # dagster-postgres' parametrised NOTIFY: name the psycopg2 driver, as the yaml documents.
        monkeypatch.setenv("PACKETX_DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://"))
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        lakehouse.write_log(ALICE, BLOCK_1)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = materialize_range(lakehouse.defs, DAY, DAY, instance=instance, selection="group:bronze")
            assert result.success
            assert instance.get_latest_materialization_event(
                dg.AssetKey(["packetx_raw", "packets"])).asset_materialization.partition == DAY.isoformat()
        with psycopg.connect(url) as conn:
            status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,)).fetchone()
            materialized = conn.execute(
                "SELECT asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                "'ASSET_MATERIALIZATION' ORDER BY asset_key", (result.run_id,)).fetchall()
        assert status == ("SUCCESS",)
        assert materialized == [
            ('["packetx_raw", "landing_problems"]', DAY.isoformat()),
            ('["packetx_raw", "packets"]', DAY.isoformat()),
            ('["packetx_raw", "quarantine"]', DAY.isoformat()),
            ('["packetx_raw", "raw_archive"]', DAY.isoformat()),
        ]
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
