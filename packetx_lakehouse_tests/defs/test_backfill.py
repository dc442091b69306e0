"""Backfills: a range of days is one run per 31 days, not one process start per day and asset."""

import datetime as dt

import dagster as dg
import pyarrow.compute as pc

from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.runner import RANGE_END_TAG, RANGE_START_TAG

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=n) for n in range(3)]


def test_every_daily_asset_lets_a_backfill_run_a_month_in_one_run(lakehouse):
    job = lakehouse.defs.resolve_job_def(DAILY_PIPELINE)
    graph = lakehouse.defs.resolve_asset_graph()
    selected = [graph.get(key) for key in job.asset_layer.selected_asset_keys]
    policies = {node.key.to_user_string(): node.backfill_policy for node in selected if node.partitions_def}
    assert policies and set(policies.values()) == {dg.BackfillPolicy.multi_run(max_partitions_per_run=31)}
    # The unpartitioned dimensions ride along in the same run, rebuilt once per run.
    assert {node.key.to_user_string() for node in selected if not node.partitions_def} == {
        "packetx_gold/users_dim", "packetx_gold/ip_dim", "packetx_gold/date_dim", "packetx_gold/direction_dim"
    }


def test_a_range_runs_once_and_writes_the_rows_of_every_day(lakehouse):
    for n, day in enumerate(DAYS):
        rows = "".join(f"alice,{day} 10:{minute:02d},8.8.8.8,192.168.1.20,{minute + 1},{minute + 1}\n" for minute in range(n + 2))
        lakehouse.write_log(f"alice-{day}.csv", rows)
    instance = dg.DagsterInstance.ephemeral()
    # The tags the backfill daemon puts on the one run of a range under a multi-run policy.
    tags = {RANGE_START_TAG: str(DAYS[0]), RANGE_END_TAG: str(DAYS[-1])}
    result = lakehouse.defs.resolve_job_def(DAILY_PIPELINE).execute_in_process(instance=instance, tags=tags)
    assert result.success

    assert len(instance.get_runs()) == 1
    by_partition = {}
    for event in result.get_asset_materialization_events():
        by_partition.setdefault(event.asset_key.to_user_string(), set()).add(event.partition)
    assert by_partition["packetx_raw/packets"] == by_partition["packetx_gold/daily_user_bandwidth"] == {str(d) for d in DAYS}

    bronze = lakehouse.catalog().load_table("packetx_raw.packets").scan().to_arrow()
    counts = {row["values"]: row["counts"] for row in pc.value_counts(bronze.column("log_date")).to_pylist()}
    assert counts == {DAYS[0]: 2, DAYS[1]: 3, DAYS[2]: 4}
    daily = lakehouse.catalog().load_table("packetx_gold.daily_user_bandwidth").scan().to_arrow().sort_by("log_date")
    assert daily.select(["log_date", "user", "total_kb"]).to_pylist() == [
        {"log_date": DAYS[0], "user": "alice", "total_kb": 3.0},
        {"log_date": DAYS[1], "user": "alice", "total_kb": 6.0},
        {"log_date": DAYS[2], "user": "alice", "total_kb": 10.0},
    ]
