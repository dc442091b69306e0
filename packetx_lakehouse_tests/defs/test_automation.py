"""Automation conditions: a day re-materialised from the UI flows to anomalies and serving by itself
(issue 11.7), through Dagster's own in-process evaluation of the conditions."""

import datetime as dt

import dagster as dg
import duckdb

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate, local_ip_for
from packetx_lakehouse.lib.schemas import GOLD_DAILY_TABLES
from packetx_lakehouse.runner import materialize_range

TODAY = dt.date.today()
DAYS = [TODAY - dt.timedelta(days=12 - n) for n in range(3)]  # old days: never the latest partition
OLD = DAYS[1]
SERVING = dg.AssetKey(["serving", "duckdb"])
ANOMALIES = dg.AssetKey(["packetx_gold", "traffic_anomalies"])
DIMENSIONS = {dg.AssetKey(["packetx_gold", n]) for n in ("users_dim", "ip_dim", "date_dim", "direction_dim")}


def _tick(defs, instance, cursor):
    """One evaluation of every condition; the requests are then run as the daemon would launch them."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    graph = defs.resolve_asset_graph()
    requested = {key: set(result.get_requested_partitions(key)) for key in graph.get_all_asset_keys()
                 if result.get_num_requested(key)}
    job = defs.resolve_implicit_global_asset_job_def()
    by_day: dict[str, list[dg.AssetKey]] = {}
    for key, partitions in requested.items():
        for partition in partitions:
            by_day.setdefault(partition, []).append(key)
    for day, keys in sorted(by_day.items(), key=lambda item: item[0] or ""):
        assert job.execute_in_process(asset_selection=keys, partition_key=day, instance=instance).success
    return result.cursor, requested


def test_a_day_materialised_from_the_ui_flows_to_anomalies_and_serving(lakehouse):
    defs = build_definitions(lakehouse.settings.model_copy(update={"start_date": str(TODAY - dt.timedelta(days=20))}))
    generate(lakehouse.landing, users=2, days=len(DAYS), start=DAYS[0], seed=9,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=6))
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(defs, DAYS[0], DAYS[-1], instance=instance).success
    cursor, requested = _tick(defs, instance, None)
    assert requested == {}  # the pipeline run left nothing to follow up

    # A device's file for an old day grew; someone re-runs bronze through gold for that day in the UI.
    path = next(lakehouse.landing.glob(f"alice-{OLD}.csv"))
    path.write_text(path.read_text() + f"alice,{OLD} 23:59,8.8.8.8,{local_ip_for('alice', OLD)},5000,5000\n")
    clicked = [dg.AssetKey(["packetx_raw", "raw_archive"]), dg.AssetKey(["packetx_raw", "packets"]),
               dg.AssetKey(["packetx_raw", "quarantine"]), dg.AssetKey(["packetx_raw", "landing_problems"]),
               dg.AssetKey(["packetx_silver", "packets"]),
               *(dg.AssetKey([t.namespace, t.name]) for t in GOLD_DAILY_TABLES)]
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(asset_selection=clicked, partition_key=str(OLD), instance=instance).success

    ticks = []
    for _ in range(6):
        cursor, requested = _tick(defs, instance, cursor)
        ticks.append(requested)
        if not requested:
            break
    assert ticks[-1] == {}, f"automation never settled: {ticks}"
    asked = {}
    for requested in ticks:
        for key, partitions in requested.items():
            asked.setdefault(key, []).append(partitions)
    # Anomalies re-score the day and the later days whose baseline it is part of; the dimensions
    # rebuild once; serving copies exactly the days whose gold or anomalies changed, after both.
    # (only days that have data: a day without any has nothing to score).
    assert asked[ANOMALIES] == [{str(d) for d in DAYS[1:]}]
    assert all(asked[key] == [{None}] for key in DIMENSIONS)
    assert asked[SERVING] == [{str(d) for d in DAYS[1:]}]
    tick_of = {key: next(i for i, r in enumerate(ticks) if key in r) for key in (ANOMALIES, SERVING, *DIMENSIONS)}
    assert tick_of[SERVING] > max(tick_of[ANOMALIES], *(tick_of[k] for k in DIMENSIONS))

    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        (kb,) = con.execute("SELECT total_kb FROM gold.daily_user_bandwidth WHERE user = 'alice' AND log_date = ?",
                            [OLD]).fetchone()
        (hour,) = con.execute("SELECT max(hour_utc) FROM gold.packets_fact f JOIN gold.users_dim u USING (user_id) "
                              "WHERE u.user = 'alice' AND f.log_date = ?", [OLD]).fetchone()
    assert kb >= 5000 and hour.strftime("%H:%M") == "23:00"



def _settle(defs, instance, cursor, ticks=4):
    """Ticks until one requests nothing; every tick's requests, by asset."""
    asked: dict[dg.AssetKey, set] = {}
    for _ in range(ticks):
        cursor, requested = _tick(defs, instance, cursor)
        for key, partitions in requested.items():
            asked.setdefault(key, set()).update(partitions)
        if not requested:
            return cursor, asked
    raise AssertionError(f"automation never settled: {asked}")


def test_a_day_whose_bronze_failed_is_built_by_nothing_until_bronze_succeeds(lakehouse):
    """Issue 24.2: a renamed copy (every row on another day) fails bronze's run; automation must not
    then build silver and gold of that day from nothing."""
    defs = build_definitions(lakehouse.settings.model_copy(update={"start_date": str(TODAY - dt.timedelta(days=20))}))
    good, bad = DAYS[0], DAYS[1]
    generate(lakehouse.landing, users=1, days=1, start=good, seed=9,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=6))
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_range(defs, good, good, instance=instance).success
    cursor, asked = _settle(defs, instance, None)
    assert asked == {}

    (original,) = lakehouse.landing.glob(f"*-{good}.csv")
    misdated = lakehouse.landing / original.name.replace(str(good), str(bad))
    misdated.write_bytes(original.read_bytes())
    assert not materialize_range(defs, bad, bad, instance=instance, raise_on_error=False).success
    cursor, asked = _settle(defs, instance, cursor)
    assert not {key for key, days in asked.items() if str(bad) in days}, asked

    # Fixed (the day's real capture replaces the copy): bronze succeeds, and the day flows on by itself.
    generate(lakehouse.landing, users=1, days=1, start=bad, seed=10,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=6))
    bronze = [dg.AssetKey(["packetx_raw", n]) for n in ("raw_archive", "packets", "quarantine", "landing_problems")]
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(asset_selection=bronze, partition_key=str(bad), instance=instance).success
    cursor, asked = _settle(defs, instance, cursor)
    assert str(bad) in asked[dg.AssetKey(["packetx_silver", "packets"])]
    assert str(bad) in asked[SERVING]


def test_after_a_backfill_run_stopped_by_one_misdated_day_automation_builds_the_other_days(lakehouse):
    """24.11, a backfill: its range run fails on the day with a renamed copy; the daemon's automation
    then builds the range's other days, and not that one."""
    defs = build_definitions(lakehouse.settings.model_copy(update={"start_date": str(TODAY - dt.timedelta(days=20))}))
    generate(lakehouse.landing, users=1, days=len(DAYS), start=DAYS[0], seed=9,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=6))
    (original,) = lakehouse.landing.glob(f"*-{DAYS[0]}.csv")
    (lakehouse.landing / original.name.replace(str(DAYS[0]), str(OLD))).write_bytes(original.read_bytes())
    instance = dg.DagsterInstance.ephemeral()
    cursor, _ = _tick(defs, instance, None)
    backfill_run = defs.resolve_job_def("daily_pipeline").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": str(DAYS[0]), "dagster/asset_partition_range_end": str(DAYS[-1])})
    assert not backfill_run.success

    cursor, asked = _settle(defs, instance, cursor)
    assert asked[dg.AssetKey(["packetx_silver", "packets"])] == {str(DAYS[0]), str(DAYS[2])}
    assert asked[SERVING] == {str(DAYS[0]), str(DAYS[2])}
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        served = {row[0] for row in con.execute("SELECT DISTINCT log_date FROM gold.daily_user_bandwidth").fetchall()}
    assert served == {DAYS[0], DAYS[2]}


def test_a_backfill_in_two_range_runs_and_a_rerun_leave_automation_nothing_to_launch(lakehouse):
    """24.10: after a 4-day backfill in runs of 2 days the daemon launched silver/gold again for two
    days, anomalies for the neighbouring days and the dimensions; ~25 more runs after one re-run."""
    defs = build_definitions(lakehouse.settings.model_copy(update={"start_date": str(TODAY - dt.timedelta(days=20))}))
    days = [DAYS[0] + dt.timedelta(days=n) for n in range(4)]
    generate(lakehouse.landing, users=2, days=len(days), start=days[0], seed=9,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=6))
    instance = dg.DagsterInstance.ephemeral()
    cursor, _ = _tick(defs, instance, None)
    launched = []
    for first, last in ((days[0], days[1]), (days[2], days[3])):
        assert materialize_range(defs, first, last, instance=instance).success
        cursor, requested = _tick(defs, instance, cursor)
        launched.append(requested)
    assert materialize_range(defs, days[1], days[1], instance=instance).success  # a re-run of one day
    cursor, requested = _tick(defs, instance, cursor)
    launched.append(requested)
    # Each range run built its days whole, anomalies included; days without data are not scored.
    # The re-run re-scored the two later days (their baseline includes it), so their serving copy
    # follows: the one run the data needs.
    assert launched == [{}, {}, {SERVING: {str(days[2]), str(days[3])}}]
