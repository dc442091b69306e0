"""Retries where the network is, and no silent ones: a lost Iceberg commit that is retried is logged."""

import datetime as dt

import dagster as dg
import pytest
from pyiceberg.exceptions import CommitFailedException

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.conventions import NETWORK_RETRY
from packetx_lakehouse.lib.storage import iceberg
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings

DAY = dt.date(2026, 11, 20)


def _policies(settings: Settings) -> dict[str, dg.RetryPolicy | None]:
    graph = build_definitions(settings).resolve_asset_graph()
    steps = {graph.get(key).assets_def for key in graph.get_all_asset_keys()}
    return {step.node_def.name: step.op.retry_policy for step in steps}


def test_every_step_that_reaches_aws_or_a_warehouse_retries_with_backoff_and_local_steps_do_not():
    aws = _policies(Settings(env="aws", s3_bucket="b", warehouse_url="postgresql://u@127.0.0.1/db"))
    assert set(aws.values()) == {NETWORK_RETRY} and {"bronze_to_gold", "dynamodb_daily_aggregate", "warehouse_star_schema"} <= set(aws)
    assert NETWORK_RETRY.backoff == dg.Backoff.EXPONENTIAL and NETWORK_RETRY.max_retries >= 3
    local = _policies(Settings(warehouse_url="postgresql://u@127.0.0.1/db"))
    assert {name for name, policy in local.items() if policy} == {"warehouse_star_schema"}  # PostgreSQL: the network
    assert set(_policies(Settings()).values()) == {None}


def test_a_lost_iceberg_commit_is_retried_and_logged(lakehouse, monkeypatch):
    lakehouse.write_log(f"alice-{DAY}.csv", f"alice,{DAY} 10:00,8.8.8.8,192.168.1.20,12.5,12.5\n")
    commit = iceberg._commit_overwrite
    lost = []

    def lose_the_first_silver_commit(table, *args, **kwargs):
        if table.name()[-2:] == ("packetx_silver", "packets") and not lost:
            lost.append(table.name())
            raise CommitFailedException("Requirement failed: branch main has changed")
        return commit(table, *args, **kwargs)

    monkeypatch.setattr(iceberg, "_commit_overwrite", lose_the_first_silver_commit)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(lakehouse.defs, DAY, DAY, instance=instance).success
    warnings = [e.user_message for e in instance.all_logs(instance.get_runs()[0].run_id)
                if e.level == 30 and "commit attempt" in e.user_message]
    assert warnings == ["packetx_silver.packets: commit attempt 1 lost to a concurrent writer (CommitFailedException: "
                        "Requirement failed: branch main has changed); retrying from the table's fresh metadata"]


@pytest.mark.parametrize("retries", [0, 2])
def test_the_write_path_tells_its_caller_of_every_lost_commit(lakehouse, monkeypatch, retries):
    from packetx_lakehouse.lib.schemas import BRONZE_QUARANTINE

    table = iceberg.ensure_table(lakehouse.catalog(), BRONZE_QUARANTINE)
    commit, calls, heard = iceberg._commit_overwrite, [], []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= retries:
            raise CommitFailedException(f"lost {len(calls)}")
        return commit(*args, **kwargs)

    monkeypatch.setattr(iceberg, "_commit_overwrite", flaky)
    iceberg.replace_partitions(table, BRONZE_QUARANTINE.schema.empty_table(), values=[DAY],
                               on_retry=lambda attempt, error: heard.append((attempt, str(error))))
    assert heard == [(n, f"lost {n}") for n in range(1, retries + 1)]
