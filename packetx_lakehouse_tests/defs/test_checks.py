"""Blocking checks: a check whose failure means wrong numbers downstream stops everything downstream."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, GOLD_HOURLY_BANDWIDTH
from packetx_lakehouse.lib.storage.iceberg import ensure_table, replace_partitions
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse.runner import materialize_range

DAY = dt.date(2026, 11, 14)
DOWNSTREAM_OF_GOLD = {"packetx_gold/traffic_anomalies", "packetx_gold/users_dim", "packetx_gold/ip_dim",
                      "packetx_gold/date_dim", "serving/duckdb"}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return f"{failure.step_key}: {failure.step_failure_data.error.message}"


@pytest.fixture
def day_in_bronze(lakehouse):
    generate(lakehouse.landing, users=2, days=1, start=DAY, seed=3,
             options=GeneratorOptions(minutes_per_day=20, pairs_per_minute=6))
    assert materialize_range(lakehouse.defs, DAY, DAY, selection="group:bronze").success
    return lakehouse


def test_a_failed_blocking_silver_check_stops_gold_and_everything_after_it(day_in_bronze):
    bronze = ensure_table(day_in_bronze.catalog(), BRONZE_PACKETS)
    rows = pl.from_arrow(bronze.scan().to_arrow())
    broken = rows.with_columns(kb_bandwidth=pl.when((pl.col("line_number") == 2) & (pl.col("user") == "alice")).then(float("nan"))
                               .otherwise(pl.col("kb_bandwidth")))
    replace_partitions(bronze, broken.to_arrow(), values=[DAY])

    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(day_in_bronze.defs, DAY, DAY, selection="not group:bronze", raise_on_error=False,
                               instance=instance)

    assert not result.success
    # Silver and its conversations, no gold, nothing downstream.
    assert _materialized(result) == {"packetx_silver/packets", "packetx_silver/conversations"}
    failed = {f"{e.asset_key.to_user_string()}:{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed}
    assert failed == {"packetx_silver/packets:kb_valid"}
    assert "bronze_to_gold" in _failure_message(result) and "packetx_silver/packets: kb_valid" in _failure_message(result)
    logged = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert f"packetx_silver/packets kb_valid on {DAY}: - kb: 0 negative, 1 NaN" in logged
    assert "gold is not built from this silver" in logged


def test_a_failed_blocking_gold_check_stops_serving(day_in_bronze, monkeypatch):
    build = gold.build_daily_tables

    def losing_an_hour(silver, conversations):
        built = build(silver, conversations)
        built[GOLD_HOURLY_BANDWIDTH] = built[GOLD_HOURLY_BANDWIDTH].slice(1)  # a gold bug: one row lost
        return built

    monkeypatch.setattr(gold, "build_daily_tables", losing_an_hour)
    result = materialize_range(day_in_bronze.defs, DAY, DAY, selection="not group:bronze", raise_on_error=False)

    assert not result.success
    assert "packetx_gold/daily_user_bandwidth" in _materialized(result)
    assert not _materialized(result) & DOWNSTREAM_OF_GOLD
    assert "packetx_gold/daily_user_bandwidth: kb_conserved" in _failure_message(result)
    succeeded = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    assert succeeded == set()  # serving_duckdb, traffic_anomalies, star_dimensions never ran

    monkeypatch.setattr(gold, "build_daily_tables", build)
    healed = materialize_range(day_in_bronze.defs, DAY, DAY, selection="not group:bronze")
    assert DOWNSTREAM_OF_GOLD <= _materialized(healed)
