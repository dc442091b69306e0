"""The landing sensor on real files; mtimes are pinned so run keys and cursors are exact."""

import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.automation.landing_sensor import MAX_DAYS_PER_TICK
from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
from packetx_lakehouse.defs.resources import ObjectStoreResource
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import TEST_START_DATE

ALICE = "alice-2026-11-20.csv"
ROWS = (
    "alice,2026-11-20 09:53,8.8.8.8,192.168.1.20,210,1158.17\n"
    "alice,2026-11-20 09:53,192.168.1.20,142.250.1.1,948.173,1158.17\n"
)
SENSOR = build_definitions(Settings(start_date=TEST_START_DATE)).resolve_sensor_def("landing_sensor")
T1, T2, T3 = 1_763_600_000_000_000_000, 1_763_600_060_000_000_000, 1_763_600_120_000_000_000


def tick(lakehouse, cursor: str | None = None, instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance or dg.DagsterInstance.ephemeral(),
        resources={"landing": ObjectStoreResource(root=str(lakehouse.landing)),
                   "raw_archive": ObjectStoreResource(root=str(lakehouse.settings.archive_dir))},
    )
    return SENSOR(context)


def warnings_logged(capfd) -> list[str]:
    """Without a daemon the tick log goes to the console; in the UI it is the tick's log."""
    return [line.split(" - WARNING - ", 1)[1] for line in capfd.readouterr().err.splitlines() if " - WARNING - " in line]


def pin_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def requests(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests]


def test_new_unchanged_and_grown_file(lakehouse):
    path = lakehouse.write_log(ALICE, ROWS)
    pin_mtime(path, T1)
    new = tick(lakehouse)
    assert requests(new) == [("2026-11-20", "2026-11-20:ea70b74b2816")]
    assert new.cursor == f'{{"files":{{"{ALICE}":[193,"{T1}"]}}}}'

    unchanged = tick(lakehouse, new.cursor)
    assert unchanged.run_requests == []
    assert unchanged.skip_reason.skip_message == f"No new or grown traffic-log files in {lakehouse.landing}"
    assert unchanged.cursor == new.cursor

    lakehouse.append_log(ALICE, ROWS.replace("09:53", "09:54"))
    pin_mtime(path, T2)
    grown = tick(lakehouse, unchanged.cursor)
    assert requests(grown) == [("2026-11-20", "2026-11-20:3cf3087a1dfe")]
    assert grown.cursor == f'{{"files":{{"{ALICE}":[313,"{T2}"]}}}}'


def test_half_written_last_line_is_requested_now_and_again_when_completed(lakehouse):
    line = "alice,2026-11-20 09:54,8.8.8.8,192.168.1.20,1.6833e+06,1683500\n"
    path = lakehouse.write_log(ALICE, ROWS + line[:20])
    pin_mtime(path, T1)
    half = tick(lakehouse)
    assert requests(half) == [("2026-11-20", "2026-11-20:2c193ccdff81")]
    assert half.cursor == f'{{"files":{{"{ALICE}":[213,"{T1}"]}}}}'

    lakehouse.append_log(ALICE, line[20:])
    pin_mtime(path, T3)
    whole = tick(lakehouse, half.cursor)
    assert requests(whole) == [("2026-11-20", "2026-11-20:fec81734c1c1")]
    assert whole.cursor == f'{{"files":{{"{ALICE}":[256,"{T3}"]}}}}'


def test_junk_names_and_out_of_range_dates_are_logged_once_not_requested(lakehouse, capfd):
    for name in ("notes.txt", "alice.csv", "alice-2026-13-01.csv", "alice-2026-11-20.csv.bak", "alice-2024-12-31.csv"):
        lakehouse.write_log(name, "")
    future = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    lakehouse.write_log(f"bob-{future}.csv", "")
    result = tick(lakehouse)
    assert result.run_requests == [] and '"files":{}' in result.cursor
    assert warnings_logged(capfd) == [
        "Not ingested: alice-2026-11-20.csv.bak: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not ingested: alice-2026-13-01.csv: invalid date 2026-13-01",
        "Not ingested: alice.csv: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not ingested: notes.txt: not named <user>-<YYYY-MM-DD>.csv[.gz]",
        "Not requested: alice-2024-12-31.csv is dated 2024-12-31, before the first partition 2025-01-01 "
        "(set PACKETX_START_DATE earlier to ingest it)",
        f"Not requested: bob-{future}.csv is dated {future}, after today's partition {dt.date.today()} in UTC "
        "(device clock or time zone ahead?)",
    ]
    again = tick(lakehouse, result.cursor)
    assert again.run_requests == [] and warnings_logged(capfd) == []  # each said once, not every 5 s
    lakehouse.write_log("notes2.txt", "")
    assert warnings_logged(capfd) == [] and tick(lakehouse, again.cursor).run_requests == []
    assert warnings_logged(capfd) == ["Not ingested: notes2.txt: not named <user>-<YYYY-MM-DD>.csv[.gz]"]


def test_links_sub_folders_and_hidden_entries_are_never_read_and_reported(lakehouse, tmp_path, capfd):
    outside = tmp_path / "secret.csv"
    outside.write_text("root:x:0:0\n")
    lakehouse.landing.mkdir(parents=True)
    (lakehouse.landing / "evil-2026-11-20.csv").symlink_to(outside)
    (lakehouse.landing / "alice-2026-11-20.csv").mkdir()
    lakehouse.write_log("alice-2026-11-20.csv/bob-2026-11-20.csv", ROWS.replace("alice", "bob"))
    lakehouse.write_log(".Trash/carol-2026-11-20.csv", ROWS.replace("alice", "carol"))
    lakehouse.write_log(".carol-2026-11-20.csv", ROWS.replace("alice", "carol"))
    result = tick(lakehouse)
    assert result.run_requests == []
    assert warnings_logged(capfd) == [
        "Not ingested: .Trash/: hidden entry (name starts with '.')",
        "Not ingested: .carol-2026-11-20.csv: hidden entry (name starts with '.')",
        "Not ingested: alice-2026-11-20.csv/: sub-folder (the landing area is read flat)",
        "Not ingested: evil-2026-11-20.csv: symbolic link (never followed)",
    ]


def test_switched_on_over_an_ingested_landing_area_it_requests_only_what_is_new_or_grown(lakehouse):
    for day in ("2026-11-20", "2026-11-21"):
        lakehouse.write_log(f"alice-{day}.csv", ROWS.replace("2026-11-20", day))
    assert materialize_range(lakehouse.defs, dt.date(2026, 11, 20), dt.date(2026, 11, 21), selection="group:bronze").success

    switched_on = tick(lakehouse)  # no cursor: a first start, or a lost cursor
    assert switched_on.run_requests == []
    assert json.loads(switched_on.cursor)["files"].keys() == {"alice-2026-11-20.csv", "alice-2026-11-21.csv"}

    lakehouse.append_log("alice-2026-11-21.csv", ROWS.replace("2026-11-20 09:53", "2026-11-21 09:54"))
    lakehouse.write_log("bob-2026-11-20.csv", ROWS.replace("alice", "bob"))
    assert [r.partition_key for r in tick(lakehouse).run_requests] == ["2026-11-20", "2026-11-21"]


def test_ten_days_offline_are_caught_up_oldest_first_over_the_next_ticks(lakehouse):
    days = [dt.date(2026, 11, 1) + dt.timedelta(days=n) for n in range(10)]
    for n, day in enumerate(days):
        pin_mtime(lakehouse.write_log(f"alice-{day}.csv", ROWS.replace("2026-11-20", str(day))), T1 + n)
    assert MAX_DAYS_PER_TICK == 5

    first = tick(lakehouse)
    assert [key for key, _ in requests(first)] == [str(day) for day in days[:5]]
    assert first.cursor == '{"files":{' + ",".join(f'"alice-{day}.csv":[193,"{T1 + n}"]' for n, day in enumerate(days[:5])) + "}}"

    second = tick(lakehouse, first.cursor)
    assert [key for key, _ in requests(second)] == [str(day) for day in days[5:]]
    assert second.cursor == '{"files":{' + ",".join(f'"alice-{day}.csv":[193,"{T1 + n}"]' for n, day in enumerate(days)) + "}}"

    assert tick(lakehouse, second.cursor).run_requests == []
    run_keys = [run_key for _, run_key in requests(first) + requests(second)]
    assert len(set(run_keys)) == 10


def test_definitions_run_automation_conditions_by_default_and_leave_the_landing_sensor_to_the_user(lakehouse):
    sensors = {sensor.name: sensor for sensor in lakehouse.defs.sensors}
    assert {"landing_sensor", "automation_condition_sensor"} <= sensors.keys()
    assert sensors["landing_sensor"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["landing_sensor"].minimum_interval_seconds == 5
    assert sensors["landing_sensor"].job_name == "daily_pipeline"
    automation = sensors["automation_condition_sensor"]
    assert isinstance(automation, dg.AutomationConditionSensorDefinition)
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    graph = lakehouse.defs.resolve_asset_graph()
    conditioned = {key for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None}
    assert conditioned and conditioned <= automation.asset_selection.resolve(graph)


def test_a_day_is_refreshed_by_one_run_at_a_time_which_takes_in_all_it_gained_meanwhile(lakehouse):
    """While a refresh of the day is queued or running, growth waits; then one run takes it all in."""
    instance = dg.DagsterInstance.ephemeral()
    path = lakehouse.write_log(ALICE, ROWS)
    pin_mtime(path, T1)
    first = tick(lakehouse, instance=instance)
    (request,) = first.run_requests
    assert request.tags == {REFRESH_TAG: NEW_LINES}
    running = instance.add_run(dg.DagsterRun(job_name=DAILY_PIPELINE, run_id="refresh-1", status=dg.DagsterRunStatus.STARTED,
                                             tags={**request.tags, "dagster/partition": request.partition_key}))
    for minute, mtime in (("09:54", T2), ("09:55", T3)):  # two devices' minutes arrive during that run
        lakehouse.append_log(ALICE, ROWS.replace("09:53", minute))
        pin_mtime(path, mtime)
        held = tick(lakehouse, first.cursor, instance=instance)
        assert held.run_requests == [] and held.cursor == first.cursor
    instance.report_run_failed(running)  # ended (a failure or a success alike)
    after = tick(lakehouse, first.cursor, instance=instance)
    assert requests(after) == [("2026-11-20", after.run_requests[0].run_key)]
    assert after.cursor == f'{{"files":{{"{ALICE}":[433,"{T3}"]}}}}'  # everything since, in one run


def test_the_sensor_and_the_schedule_name_every_asset_and_check_of_the_daily_job(lakehouse):
    """A run records only the targets its request names. Unnamed (a whole-job run records none),
    automation could not tell that the refresh which updated silver also built gold: a tick that saw
    silver's update before gold's asked for gold again, a whole-day rebuild from silver (three such
    runs of 10 GB each in ten minutes of a 100-device fleet)."""
    pin_mtime(lakehouse.write_log(ALICE, ROWS), T1)
    (sensed,) = tick(lakehouse).run_requests
    scheduled = lakehouse.defs.resolve_schedule_def("daily_schedule")(
        dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 21, 0, 15, tzinfo=dt.UTC)))
    job = lakehouse.defs.resolve_job_def(DAILY_PIPELINE)
    assets, checks = job.asset_layer.selected_asset_keys, set(job.asset_layer.asset_graph.asset_check_keys)
    assert dg.AssetKey(["packetx_gold", "hourly_bandwidth"]) in assets and len(checks) > 15
    assert "yesterday_is_fresh" not in {check.name for check in checks}  # about now: never in a day's run
    for request in (sensed, scheduled):
        assert (set(request.asset_selection), set(request.asset_check_keys)) == (assets, checks)
