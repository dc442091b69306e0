"""Bronze → silver → gold → serving on real local storage: accounting, idempotency, SCD2, checks."""

import datetime as dt
import random
import shutil

import dagster as dg
import duckdb
import polars as pl
import pyarrow as pa

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.automation.freshness import expected_partition
from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.devices.generator import GeneratorOptions, generate, local_ip_for
from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_DIRECTION_DIM,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_IP_DIM,
    GOLD_PACKETS_FACT,
    GOLD_TOP_EXTERNAL_HOSTS,
    GOLD_TRAFFIC_ANOMALIES,
    GOLD_USER_IP_HOURLY,
    GOLD_USERS_DIM,
    SILVER_PACKETS,
)
from packetx_lakehouse.lib.storage.iceberg import (
    ensure_table,
    replace_partitions,
    replace_table,
    source_generations,
)
from packetx_lakehouse.lib.transform import checks as validators
from packetx_lakehouse.lib.transform import gold
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.conftest import Lakehouse
from packetx_lakehouse_tests.lib.transform.test_gold import row_grain_fact

SAMPLES = SAMPLES_DIR
START = dt.date(2026, 11, 14)
WEEK = [START + dt.timedelta(days=n) for n in range(7)]
OPTIONS = GeneratorOptions(minutes_per_day=30, pairs_per_minute=12, bad_lines=2, restarts=1)
COMPARED = (SILVER_PACKETS, GOLD_HOURLY_BANDWIDTH, GOLD_DAILY_USER_BANDWIDTH, GOLD_TOP_EXTERNAL_HOSTS,
            GOLD_TRAFFIC_ANOMALIES, GOLD_USER_IP_HOURLY, GOLD_PACKETS_FACT, GOLD_USERS_DIM, GOLD_IP_DIM,
            GOLD_DIRECTION_DIM)


def _scan(lakehouse, table_def) -> pl.DataFrame:
    table = ensure_table(lakehouse.catalog(), table_def).scan().to_arrow()
    return pl.from_arrow(table).sort(list(table_def.key) or table.column_names)


def _seed_week(lakehouse, users=3, ip_changes=None):
    generate(lakehouse.landing, users=users, days=len(WEEK), start=START, seed=11, options=OPTIONS,
             ip_changes=ip_changes)


def test_gold_equals_silver_equals_bronze_minus_duplicates_and_replays(lakehouse):
    _seed_week(lakehouse)
    for sample in SAMPLES.glob("*.csv"):
        shutil.copy(sample, lakehouse.landing / sample.name)
    last = dt.date(2026, 11, 21)
    assert materialize_range(lakehouse.defs, START, last).success

    bronze = _scan(lakehouse, BRONZE_PACKETS)
    pair_minute = ["user", "log_date", "time_stamp", "source_ip", "destination_ip", "kb_bandwidth",
                   "total_kb_bandwidth"]
    duplicates = bronze.filter(pl.struct(pair_minute).is_duplicated() & ~pl.struct(pair_minute).is_first_distinct())
    silver = _scan(lakehouse, SILVER_PACKETS)
    replays = silver.filter("is_restart_replay")
    assert bronze.height == silver.height + duplicates.height
    assert replays.height > 0, "every generated file has a restart replay"
    assert replays["source_file"].n_unique() == 21

    def per_user_day(frame, column):
        return frame.group_by("user", "log_date").agg(pl.col(column).sum())

    expected = (
        per_user_day(bronze, "kb_bandwidth")
        .join(per_user_day(duplicates, "kb_bandwidth").rename({"kb_bandwidth": "dup"}), on=["user", "log_date"], how="left")
        .join(per_user_day(replays, "kb").rename({"kb": "replay"}), on=["user", "log_date"], how="left")
        .with_columns(kb=pl.col("kb_bandwidth") - pl.col("dup").fill_null(0) - pl.col("replay").fill_null(0))
    )
    silver_live = per_user_day(silver.filter(~pl.col("is_restart_replay")), "kb")
    daily = _scan(lakehouse, GOLD_DAILY_USER_BANDWIDTH).select("user", "log_date", "total_kb")
    fact = pl.from_arrow(ensure_table(lakehouse.catalog(), GOLD_PACKETS_FACT).scan().to_arrow()).join(
        _scan(lakehouse, GOLD_USERS_DIM).select("user_id", "user").unique(), on="user_id")
    compared = (
        expected.select("user", "log_date", "kb")
        .join(silver_live.rename({"kb": "silver"}), on=["user", "log_date"])
        .join(daily, on=["user", "log_date"])
        .join(per_user_day(fact, "kb").rename({"kb": "fact"}), on=["user", "log_date"])
    )
    assert compared.height == 3 * 7 + 2  # generated user-days + the two real samples
    for column in ("silver", "total_kb", "fact"):
        assert ((compared["kb"] - compared[column]).abs() <= 1e-6 * compared["kb"]).all(), column
    # The hourly fact counts every live silver row exactly once, in fewer rows.
    live_rows = silver.filter(~pl.col("is_restart_replay")).group_by("user", "log_date").len()
    fact_rows = per_user_day(fact, "rows")
    assert live_rows.join(fact_rows, on=["user", "log_date"]).filter(pl.col("len") != pl.col("rows")).is_empty()
    assert fact_rows.height == live_rows.height and fact.height < live_rows["len"].sum()
    assert set(daily["user"]) == {"alice", "bob-smith", "carol", "bob"}


def test_rerunning_days_in_any_order_leaves_every_table_identical(lakehouse, tmp_path):
    _seed_week(lakehouse, users=2)
    assert materialize_range(lakehouse.defs, WEEK[0], WEEK[-1]).success
    reference = {t.identifier: _scan(lakehouse, t) for t in COMPARED}

    other_settings = lakehouse.settings.model_copy(update={"data_dir": tmp_path / "other",
                                                                   "traffic_log_dir": lakehouse.landing})
    other = Lakehouse(other_settings, build_definitions(other_settings))
    order = WEEK[:]
    random.Random(3).shuffle(order)
    for day in order + order[:2]:  # every day once, out of order, then two of them again
        assert materialize_range(other.defs, day, day).success
    for table_def in COMPARED:
        assert _scan(other, table_def).equals(reference[table_def.identifier]), table_def.identifier
    assert validators.scd2_problems(_scan(other, GOLD_USERS_DIM).to_arrow()) == []

    assert materialize_range(lakehouse.defs, WEEK[3], WEEK[3]).success  # and the same lakehouse again
    for table_def in COMPARED:
        assert _scan(lakehouse, table_def).equals(reference[table_def.identifier]), table_def.identifier


def test_a_row_grain_fact_is_upgraded_in_place_and_serving_follows(lakehouse):
    _seed_week(lakehouse, users=2)
    assert materialize_range(lakehouse.defs, WEEK[0], WEEK[1]).success
    hourly = _scan(lakehouse, GOLD_PACKETS_FACT)
    # Put the fact back as an earlier version left it, in Iceberg and in serving: at the row grain.
    catalog = lakehouse.catalog()
    generations = source_generations(ensure_table(catalog, GOLD_PACKETS_FACT))
    old = row_grain_fact(ensure_table(catalog, SILVER_PACKETS).scan().to_arrow())
    catalog.drop_table(GOLD_PACKETS_FACT.identifier)
    txn = catalog.create_table_transaction(GOLD_PACKETS_FACT.identifier, schema=old.schema)
    with txn.update_spec() as spec:
        spec.add_identity("log_date")  # as the earlier version made it
    txn.commit_transaction()
    old_table = catalog.load_table(GOLD_PACKETS_FACT.identifier)
    replace_partitions(old_table, old, values=WEEK[:2], generations=generations)
    with duckdb.connect(str(lakehouse.settings.serving_path)) as con:
        con.execute("CREATE OR REPLACE TABLE gold.packets_fact AS SELECT * FROM old")

    assert materialize_range(lakehouse.defs, WEEK[1], WEEK[1]).success  # one day: the other is upgraded
    upgraded = ensure_table(catalog, GOLD_PACKETS_FACT)
    assert upgraded.schema().column_names == GOLD_PACKETS_FACT.schema.names
    assert source_generations(upgraded) == generations  # in place: the per-day guard keeps its record
    assert upgraded.metadata.table_uuid == old_table.metadata.table_uuid  # the same table, never dropped
    assert _scan(lakehouse, GOLD_PACKETS_FACT).equals(hourly)
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        served = pl.from_arrow(con.execute("SELECT * FROM gold.packets_fact").arrow())
    assert served.columns == GOLD_PACKETS_FACT.schema.names
    served = served.with_columns(pl.col("hour_utc").dt.convert_time_zone("UTC"))  # DuckDB says Etc/UTC
    assert served.sort(list(GOLD_PACKETS_FACT.key)).equals(hourly)


def test_local_ip_change_mid_week_gives_two_scd2_versions_and_facts_follow(lakehouse):
    change = WEEK[3]
    _seed_week(lakehouse, users=1, ip_changes={"alice": change})
    assert materialize_range(lakehouse.defs, WEEK[0], WEEK[-1]).success

    dim = _scan(lakehouse, GOLD_USERS_DIM).sort("version")
    old_ip, new_ip = local_ip_for("alice", WEEK[0]), local_ip_for("alice", change, {"alice": change})
    assert dim.select("user", "local_ip", "version", "is_current").rows() == [
        ("alice", old_ip, 1, False),
        ("alice", new_ip, 2, True),
    ]
    first, second = dim.row(0, named=True), dim.row(1, named=True)
    assert first["valid_to"] == second["valid_from"] and second["valid_to"] is None
    assert first["valid_from"] < second["valid_from"]
    assert second["valid_from"].date() == change  # device zone is UTC: the change starts that day

    facts = ensure_table(lakehouse.catalog(), GOLD_PACKETS_FACT).scan().to_arrow()
    resolved = pl.from_arrow(gold.resolve_user_versions(facts, dim.to_arrow()))
    assert resolved["user_key"].null_count() == 0
    before = resolved.filter(pl.col("hour_utc") < second["valid_from"])
    after = resolved.filter(pl.col("hour_utc") >= second["valid_from"])
    assert before.height and after.height
    assert set(before["user_key"]) == {first["user_key"]}
    assert set(after["user_key"]) == {second["user_key"]}


def test_serving_database_answers_gold_queries(lakehouse):
    _seed_week(lakehouse, users=2)
    assert materialize_range(lakehouse.defs, WEEK[0], WEEK[-1]).success
    expected = _scan(lakehouse, GOLD_DAILY_USER_BANDWIDTH)
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        served = pl.from_arrow(con.execute("SELECT * FROM gold.daily_user_bandwidth").arrow()).with_columns(
            pl.col("peak_minute_utc").dt.convert_time_zone("UTC")  # DuckDB names it Etc/UTC
        )
        quarantined = con.execute("SELECT count(*) FROM ops.quarantine").fetchone()[0]
        fresh = con.execute("SELECT layer, max(log_date) FROM ops.partitions GROUP BY layer ORDER BY layer").fetchall()
    assert served.sort("log_date", "user").equals(expected.sort("log_date", "user"))
    assert quarantined == 2 * 7 * OPTIONS.bad_lines
    assert fresh == [("bronze", WEEK[-1]), ("gold", WEEK[-1]), ("silver", WEEK[-1])]


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
            for e in result.get_asset_check_evaluations()}


def test_checks_pass_on_good_data_and_fail_on_broken_data(lakehouse):
    _seed_week(lakehouse, users=1)
    day = WEEK[0]
    result = materialize_range(lakehouse.defs, day, day)
    checks = _check_results(result)
    assert len(checks) >= 10 and all(checks.values()), checks

    catalog = lakehouse.catalog()
    bronze = ensure_table(catalog, BRONZE_PACKETS)
    rows = bronze.scan().to_arrow()
    broken = pl.from_arrow(rows).with_columns(
        kb_bandwidth=pl.when(pl.col("line_number") == 2).then(-1.0)
        .when(pl.col("line_number") == 3).then(float("nan")).otherwise(pl.col("kb_bandwidth"))
    )
    replace_partitions(bronze, broken.to_arrow(), values=[day])
    result = materialize_range(lakehouse.defs, day, day, selection="key:packetx_silver/packets or group:gold",
                               raise_on_error=False)
    checks = _check_results(result)
    assert checks["packetx_silver/packets:kb_valid"] is False  # blocking: gold is not built from it
    assert checks["packetx_silver/packets:rows_conserved"] is True
    assert not any(name.startswith("packetx_gold/") for name in checks)
    # Gold built on its own from that silver (read back from Iceberg) fails its own check.
    result = materialize_range(lakehouse.defs, day, day, selection="group:gold", raise_on_error=False)
    assert _check_results(result)["packetx_gold/daily_user_bandwidth:kb_valid"] is False

    users = ensure_table(catalog, GOLD_USERS_DIM)
    dim = users.scan().to_arrow()
    overlapping = pa.concat_tables([dim, dim.slice(0, 1)])  # a second current row for the same user
    replace_table(users, overlapping)
    assert validators.scd2_problems(overlapping)
    scd2_check = dg.AssetCheckKey(asset_key(GOLD_USERS_DIM), "users_dim_scd2_valid")
    # The resolved definition carries its resources already.
    result = dg.materialize([lakehouse.defs.resolve_assets_def(scd2_check.asset_key)],
                            selection=dg.AssetSelection.checks(scd2_check), raise_on_error=False)
    assert _check_results(result) == {"packetx_gold/users_dim:users_dim_scd2_valid": False}
    problems = result.get_asset_check_evaluations()[0].metadata["problems"].value
    assert "2 current rows (expected 1)" in problems

    directions = ensure_table(catalog, GOLD_DIRECTION_DIM)
    replace_table(directions, directions.scan().to_arrow().slice(1))  # drop a direction the facts use
    result = materialize_range(lakehouse.defs, day, day, selection="key:serving/duckdb")
    assert _check_results(result) == {"serving/duckdb:star_schema_referential_integrity": False}


def test_freshness_check_expects_yesterdays_gold_partition(lakehouse):
    instance = dg.DagsterInstance.ephemeral()

    def evaluate() -> tuple[bool, str]:
        result = lakehouse.defs.resolve_job_def("freshness_check").execute_in_process(instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation.passed, evaluation.metadata["expected_partition"].value

    now = dt.datetime.now(dt.UTC)
    day = expected_partition(now)
    assert evaluate() == (False, day.isoformat())
    assert materialize_range(lakehouse.defs, day, day, instance=instance).success
    assert evaluate() == (True, day.isoformat())
    assert expected_partition(dt.datetime(2026, 11, 21, 5, 59, tzinfo=dt.UTC)) == dt.date(2026, 11, 19)
    assert expected_partition(dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 20)


def test_a_backfill_of_last_years_days_leaves_no_failed_freshness_check(lakehouse):
    """Freshness is about now: the job that writes days (sensor, schedule, backfills) never evaluates it."""
    last_year = dt.date.today().replace(day=1) - dt.timedelta(days=365)
    days = [last_year + dt.timedelta(days=n) for n in range(2)]
    generate(lakehouse.landing, users=1, days=len(days), start=days[0], seed=2,
             options=GeneratorOptions(minutes_per_day=10, pairs_per_minute=4))
    defs = build_definitions(lakehouse.settings.model_copy(update={"start_date": str(days[0])}))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(defs, days[0], days[-1], instance=instance)
    assert result.success and result.get_asset_check_evaluations()
    assert all(e.passed for e in result.get_asset_check_evaluations())
    fresh = dg.AssetCheckKey(asset_key(GOLD_DAILY_USER_BANDWIDTH), "yesterday_is_fresh")
    assert instance.event_log_storage.get_asset_check_execution_history(fresh, limit=10) == []
    # ... while its own job, on its schedule after the deadline, still says yesterday is missing.
    (evaluation,) = defs.resolve_job_def("freshness_check").execute_in_process(
        instance=instance).get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed) == ("yesterday_is_fresh", False)
    assert {s.name: s.cron_schedule for s in defs.schedules}["freshness_check_schedule"] == "0 6 * * *"


def test_the_freshness_summary_shows_a_layer_ahead_on_a_day_serving_did_not_run(lakehouse):
    """A day whose bronze landed but whose silver never ran (failed, or not yet) still shows in
    ``ops.partitions`` when serving runs for another day: that gap is what the panel is for."""
    _seed_week(lakehouse, users=1)
    assert materialize_range(lakehouse.defs, WEEK[1], WEEK[1], selection="group:bronze").success
    assert materialize_range(lakehouse.defs, WEEK[0], WEEK[0]).success
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        fresh = con.execute("SELECT layer, max(log_date) FROM ops.partitions GROUP BY layer ORDER BY layer").fetchall()
    assert fresh == [("bronze", WEEK[1]), ("gold", WEEK[0]), ("silver", WEEK[0])]
