"""The whole pipeline on the AWS path, configured by environment variables only, read back from
S3, a fresh Glue catalog client, DynamoDB and PostgreSQL, and checked against the local path."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.lib.schemas import STAR_DIMENSIONS as DIMENSIONS
from packetx_lakehouse.lib.schemas import STAR_FACT as FACT
from packetx_lakehouse.lib.serving.sql_warehouse import Warehouse
from packetx_lakehouse.lib.storage.iceberg import glue_catalog
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.aws.conftest import SECRET_ACCESS_KEY
from packetx_lakehouse_tests.conftest import TEST_START_DATE

FIRST, LAST = dt.date(2026, 11, 18), dt.date(2026, 11, 19)
SMALL = GeneratorOptions(minutes_per_day=30, pairs_per_minute=6, bad_lines=1, restarts=1)
DAILY = "packetx_gold.daily_user_bandwidth"


def _gold_daily(catalog) -> list[dict]:
    rows = catalog.load_table(DAILY).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (r["log_date"], r["user"]))


def _dynamo_items(aws, table: str = "daily_aggregate") -> list[dict]:
    pages = aws.client("dynamodb").get_paginator("scan").paginate(TableName=table)
    return sorted((item for page in pages for item in page["Items"]), key=lambda i: (i["date"]["S"], i["user"]["S"]))


def _state(aws, settings: Settings, warehouse: Warehouse) -> dict:
    """Everything a re-run must leave unchanged."""
    catalog = glue_catalog(settings.s3_warehouse_uri, settings.aws_region, settings.aws_endpoint_url)
    return {
        "landing": aws.keys("lakehouse/raw_data_upload/"),
        "archive": aws.keys("lakehouse/raw_archive/"),
        "gold": _gold_daily(catalog),
        "items": _dynamo_items(aws),
        "warehouse": {t.name: warehouse.read(t.name, t.key) for t in (*DIMENSIONS, FACT)},
    }


def _run_logs(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    """Every event record of the run (log lines, metadata, errors) as text."""
    return "\n".join(repr(record) for record in instance.all_logs(result.run_id))


def test_pipeline_on_aws_equals_local_is_idempotent_and_never_logs_the_secret(
    aws, pg_database, tmp_path: Path, monkeypatch, capfd
):
    # PostgreSQL here trusts local connections, so a password in the URL is accepted and ignored:
    # the secret travels exactly where a real warehouse password would, and must never show up.
    warehouse_url = pg_database.replace("postgres@", f"postgres:{SECRET_ACCESS_KEY}@")
    monkeypatch.setenv("PACKETX_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("PACKETX_START_DATE", TEST_START_DATE)  # the days below come before the default start
    files = generate(tmp_path / "device", users=2, days=2, start=FIRST, seed=5, options=SMALL,
                     ip_changes={"alice": LAST})
    settings = Settings.from_env()
    upload_files(settings, files)
    defs = build_definitions(settings)
    assert SECRET_ACCESS_KEY not in repr(defs.resources)  # what the UI shows of resource config
    instance = dg.DagsterInstance.ephemeral()

    first = materialize_range(defs, FIRST, LAST, instance=instance)
    assert first.success
    warehouse = Warehouse(pg_database)
    state = _state(aws, settings, warehouse)

    local = Settings(data_dir=tmp_path / "local", traffic_log_dir=tmp_path / "device", start_date=TEST_START_DATE)
    assert materialize_range(build_definitions(local), FIRST, LAST).success
    local_daily = _gold_daily(open_catalog(local))
    assert state["gold"] == local_daily and len(local_daily) == 4

    totals = {(r["user"], r["log_date"].isoformat()): r["total_kb"] for r in local_daily}
    assert {(i["user"]["S"], i["date"]["S"]): Decimal(i["total_kb"]["N"]) for i in state["items"]} == {
        key: Decimal(repr(kb)) for key, kb in totals.items()
    }
    with warehouse.connect() as conn:
        per_user_day = conn.execute(
            "SELECT u.\"user\", f.log_date, sum(f.kb) FROM packetx.packets_fact f "
            "JOIN (SELECT DISTINCT user_id, \"user\" FROM packetx.users_dim) u USING (user_id) GROUP BY 1, 2"
        ).fetchall()
        versions = conn.execute('SELECT "user", count(*), sum(is_current::int) FROM packetx.users_dim GROUP BY 1').fetchall()
    assert {(u, d.isoformat()): pytest.approx(kb) for u, d, kb in per_user_day} == totals
    assert sorted(versions) == [("alice", 2, 1), ("bob-smith", 1, 1)]

    second = materialize_range(build_definitions(Settings.from_env()), FIRST, LAST, instance=instance)
    assert second.success
    assert _state(aws, settings, warehouse) == state

    captured = capfd.readouterr()
    for text in (_run_logs(instance, first), _run_logs(instance, second), captured.out, captured.err):
        assert SECRET_ACCESS_KEY not in text
    assert "dynamodb_daily_aggregate" in _run_logs(instance, first)  # the search did see the runs
