"""Per-day truth in a range run: each day's materialisation carries that day's figures, whether the
day ran alone or inside a backfill's range (issue 11.2)."""

import datetime as dt
import re

import dagster as dg
import pyarrow.compute as pc

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.schemas import SILVER_PACKETS
from packetx_lakehouse.lib.storage.iceberg import ensure_table
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.conftest import TEST_START_DATE, Lakehouse

DAYS = [dt.date(2026, 11, 10) + dt.timedelta(days=n) for n in range(3)]
#: What is true of the whole commit or database, not of one day: where it went.
RUN_LEVEL = {"iceberg/snapshot_id", "iceberg/location", "dagster/table_name", "table", "database", "archive",
             "rows_in_database", "dashboard", "days_rescored_after_run", "dagster/row_count"}
#: ``ingested_at`` is the time each lakehouse first archived the file: the one value that differs.
INGEST_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00")


def _lakehouse(root) -> Lakehouse:
    from packetx_lakehouse.settings import Settings

    settings = Settings(data_dir=root / "data", traffic_log_dir=root / "data" / "traffic_log",
                        start_date=TEST_START_DATE)
    lakehouse = Lakehouse(settings, build_definitions(settings))
    # Different volumes per day, so a range's totals can never pass for a day's figures.
    for n, day in enumerate(DAYS):
        generate(lakehouse.landing, users=2, days=1, start=day, seed=5,
                 options=GeneratorOptions(minutes_per_day=10 + 10 * n, pairs_per_minute=5, bad_lines=n + 1))
    return lakehouse


def _day_metadata(instance: dg.DagsterInstance, graph) -> dict[tuple[str, str], dict[str, object]]:
    found = {}
    for key in graph.get_all_asset_keys():
        if graph.get(key).partitions_def is None:
            continue
        for day in DAYS:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1).records
            metadata = record.asset_materialization.metadata
            found[key.to_user_string(), day.isoformat()] = {
                name: INGEST_TIME.sub("<ingested_at>", str(value.value))
                for name, value in metadata.items() if name not in RUN_LEVEL}
    return found


def test_a_range_run_and_one_day_runs_record_the_same_figures_for_each_day(tmp_path):
    ranged, daily = _lakehouse(tmp_path / "range"), _lakehouse(tmp_path / "daily")
    ranged_instance, daily_instance = dg.DagsterInstance.ephemeral(), dg.DagsterInstance.ephemeral()
    assert materialize_range(ranged.defs, DAYS[0], DAYS[-1], instance=ranged_instance).success
    for day in DAYS:
        assert materialize_range(daily.defs, day, day, instance=daily_instance).success

    graph = ranged.defs.resolve_asset_graph()
    from_range, from_days = _day_metadata(ranged_instance, graph), _day_metadata(daily_instance, graph)
    assert from_range == from_days

    # ... and they are each day's own: silver's row count is the day's rows in Iceberg.
    silver = ensure_table(ranged.catalog(), SILVER_PACKETS).scan().to_arrow()
    counts = {str(day): pc.sum(pc.equal(silver.column("log_date"), day)).as_py() for day in DAYS}
    assert len(set(counts.values())) == 3
    assert {day: from_range["packetx_silver/packets", day]["dagster/partition_row_count"] for day in counts} == {
        day: str(n) for day, n in counts.items()}
    assert {day: from_range["packetx_raw/quarantine", day]["dagster/partition_row_count"] for day in counts} == {
        str(day): str(2 * (n + 1)) for n, day in enumerate(DAYS)}
    # The UI's "Row count" is the whole table's after the commit, "Partition row count" the day's:
    # the last day's run, alone, says both.
    silver_total = ensure_table(daily.catalog(), SILVER_PACKETS).scan().count()
    last = daily_instance.fetch_materializations(dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(["packetx_silver", "packets"]), asset_partitions=[DAYS[-1].isoformat()]), limit=1).records[0]
    metadata = last.asset_materialization.metadata
    assert (metadata["dagster/row_count"].value, metadata["dagster/partition_row_count"].value) == (
        silver_total, counts[DAYS[-1].isoformat()])
    assert silver_total == sum(counts.values())
    for day in counts:
        preview = from_range["packetx_gold/daily_user_bandwidth", day]["preview"]
        assert day in preview and not {str(d) for d in DAYS} - {day} & set(re.findall(r"\d{4}-\d\d-\d\d", preview))


def test_each_days_checks_are_recorded_on_that_day(tmp_path):
    lakehouse = _lakehouse(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(lakehouse.defs, DAYS[0], DAYS[-1], instance=instance).success
    key = dg.AssetCheckKey(dg.AssetKey(["packetx_silver", "packets"]), "rows_conserved")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    assert sorted((record.partition, record.status.value) for record in history) == [
        (str(day), "SUCCEEDED") for day in DAYS]  # none left PLANNED, none without a day
    bronze_rows = {record.partition: record.event.asset_check_evaluation.metadata["bronze_rows"].value
                   for record in history}
    assert len(set(bronze_rows.values())) == 3
