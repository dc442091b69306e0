"""What was ingested stays true through every layer (issue 11 points 1, 3-5; issue 17's crashes):
files whose rows are off their date, files that shrink or vanish, retraction, values that broke
silver or gold, and storage failures that must say what failed."""

import datetime as dt
import shutil

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from packetx_lakehouse import cli
from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.bronze.assets import (
    LANDING_PROBLEMS_CHECK,
    ROWS_ON_FILE_DATE,
    SOURCES_INTACT,
)
from packetx_lakehouse.defs.gold.daily import HOURS_ON_ONE_DAY
from packetx_lakehouse.defs.tables import RunTables, StorageError
from packetx_lakehouse.devices.generator import generate_day
from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.ingest.archive import load_manifest
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, GOLD_HOURLY_BANDWIDTH
from packetx_lakehouse.lib.storage.iceberg import ensure_table, replace_partitions
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.lib.transform.gold import stable_key
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.conftest import Lakehouse

SAMPLE_DAY = dt.date(2026, 11, 21)
ALICE = "alice-2026-11-21.csv"
SAMPLE = (SAMPLES_DIR / ALICE).read_bytes()


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _gold_kb(lakehouse: Lakehouse, day: dt.date) -> float:
    daily = lakehouse.table("daily_user_bandwidth", "packetx_gold")
    return pc.sum(daily.filter(pc.equal(daily.column("log_date"), day)).column("total_kb")).as_py() or 0.0


def _problems(lakehouse: Lakehouse) -> list[dict]:
    return lakehouse.table("landing_problems").drop_columns(["first_seen", "last_seen"]).to_pylist()


@pytest.fixture
def cli_env(lakehouse, monkeypatch, tmp_path):
    """The CLI sees the test's lakehouse, and its runs use a throw-away Dagster instance."""
    monkeypatch.setenv("PACKETX_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.setenv("PACKETX_TRAFFIC_LOG_DIR", str(lakehouse.landing))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return lakehouse


def test_a_renamed_file_fails_the_run_naming_it_and_never_reaches_gold(cli_env):
    """Issue 11.1: the real capture of 11-21 dropped as alice-2026-11-30.csv."""
    lakehouse = cli_env
    day = dt.date(2026, 11, 30)
    lakehouse.write_log(f"alice-{day}.csv", SAMPLE.decode().split("\n", 1)[1])
    lakehouse.write_log(f"bob-{day}.csv", generate_day("bob", day, seed=1).decode().split("\n", 1)[1])
    result = materialize_range(lakehouse.defs, day, day, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "bronze_to_gold"
    message = failure.event_specific_data.error.message
    assert "alice-2026-11-30.csv: 197 of 197 rows are not on the file's date 2026-11-30" in message
    assert "packetx-lakehouse retract alice-2026-11-30.csv" in message
    checks = _checks(result)
    assert checks[ROWS_ON_FILE_DATE].passed is False
    assert "alice-2026-11-30.csv" in checks[ROWS_ON_FILE_DATE].metadata["problems"].value
    assert checks[SOURCES_INTACT].passed is True
    # Everything was recorded before the run stopped: the rows wait in quarantine, bob's are in bronze.
    quarantine = lakehouse.table("quarantine")
    assert quarantine.num_rows == 197
    assert set(quarantine.column("reason").to_pylist()) == {"Time Stamp on 2026-11-21, not on the file's date 2026-11-30"}
    assert set(lakehouse.table("packets").column("user").to_pylist()) == {"bob"}
    assert [(p["object_key"], p["kind"], p["severity"], p["rows_at_stake"]) for p in _problems(lakehouse)] == [
        ("alice-2026-11-30.csv", "off date", "error", 197)]

    # The day's other user flows on once the file is retracted; no hour is ever under two days.
    assert cli.main(["retract", "alice-2026-11-30.csv", "--no-run"]) == 0
    lakehouse.write_log(ALICE, SAMPLE.decode().split("\n", 1)[1])
    for run_day in (day, SAMPLE_DAY):
        result = materialize_range(lakehouse.defs, run_day, run_day)
        assert result.success and _checks(result)[HOURS_ON_ONE_DAY].passed
    hourly = lakehouse.table("hourly_bandwidth", "packetx_gold")
    assert set(hourly.filter(pc.equal(hourly.column("user"), "alice")).column("log_date").to_pylist()) == {SAMPLE_DAY}


def test_a_shorter_copy_never_replaces_what_was_ingested_and_fails_a_check_naming_what_is_at_stake(lakehouse):
    """Issue 11.5: 198 lines ingested, then an earlier copy of 158 lines put back."""
    path = lakehouse.write_log(ALICE, "")
    path.write_bytes(SAMPLE)
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY).success
    gold_before = _gold_kb(lakehouse, SAMPLE_DAY)
    path.write_bytes(b"\n".join(SAMPLE.split(b"\n")[:158]) + b"\n")

    result = materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY)
    assert result.success
    assert lakehouse.table("packets").num_rows == 197 and _gold_kb(lakehouse, SAMPLE_DAY) == pytest.approx(gold_before)
    check = _checks(result)[SOURCES_INTACT]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.ERROR
    at_stake = lakehouse.table("packets").filter(pc.greater(lakehouse.table("packets").column("line_number"), 158))
    kb = pc.sum(at_stake.column("kb_bandwidth")).as_py()
    assert f"{ALICE}: shrunk: 158 lines where the ingested version has 198" in check.metadata["problems"].value
    assert f"(40 rows, {kb:,.1f} KB at stake)" in check.metadata["problems"].value
    (problem,) = _problems(lakehouse)
    assert (problem["kind"], problem["rows_at_stake"], problem["kb_at_stake"]) == ("shrunk", 40, pytest.approx(kb))


def test_a_vanished_file_fails_once_naming_its_rows_then_warns_and_its_rows_stay(lakehouse):
    path = lakehouse.write_log(ALICE, "")
    path.write_bytes(SAMPLE)
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY).success
    path.unlink()
    noticed = _checks(materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY))
    assert noticed[SOURCES_INTACT].passed is False
    assert "(197 rows, " in noticed[SOURCES_INTACT].metadata["problems"].value
    known = _checks(materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY))
    assert known[SOURCES_INTACT].passed is True and known[LANDING_PROBLEMS_CHECK].passed is False
    assert known[LANDING_PROBLEMS_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert lakehouse.table("packets").num_rows == 197


def test_retract_takes_a_file_out_of_every_layer_and_the_archive_keeps_the_record(cli_env, capsys):
    lakehouse = cli_env
    lakehouse.write_log(ALICE, "").write_bytes(SAMPLE)
    lakehouse.write_log("bob-2026-11-21.csv", "").write_bytes((SAMPLES_DIR / "bob-2026-11-21.csv").read_bytes())
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY).success
    generation = load_manifest(LocalObjectStore(lakehouse.settings.archive_dir), SAMPLE_DAY).generation

    assert cli.main(["retract", ALICE, "--reason", "test capture"]) == 0
    out = capsys.readouterr().out
    assert f"Retracted {ALICE} from 2026-11-21" in out and "test capture" in out and "succeeded" in out
    manifest = load_manifest(LocalObjectStore(lakehouse.settings.archive_dir), SAMPLE_DAY)
    assert manifest.generation == generation + 1 and ALICE not in manifest.files
    assert manifest.retracted[ALICE].reason == "test capture" and manifest.retracted[ALICE].version.lines == 198
    for namespace, table in (("packetx_raw", "packets"), ("packetx_silver", "packets")):
        assert set(lakehouse.table(table, namespace).column("source_file").to_pylist()) == {"bob-2026-11-21.csv"}
    assert set(lakehouse.table("packets_fact", "packetx_gold").column("user_id").to_pylist()) == set(stable_key(["bob"]))
    for table in ("daily_user_bandwidth", "hourly_bandwidth", "user_ip_hourly"):
        assert set(lakehouse.table(table, "packetx_gold").column("user").to_pylist()) == {"bob"}, table
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        assert con.execute("SELECT DISTINCT user FROM gold.daily_user_bandwidth").fetchall() == [("bob",)]
        assert con.execute("SELECT kind FROM ops.landing_problems").fetchall() == [("retracted",)]

    # Still in the landing area: not ingested again, however often the day runs.
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY).success
    assert set(lakehouse.table("packets").column("user").to_pylist()) == {"bob"}
    assert cli.main(["retract", ALICE, "--undo"]) == 0
    assert set(lakehouse.table("packets").column("user").to_pylist()) == {"alice", "bob"}


def test_values_that_crashed_silver_or_corrupted_gold_are_quarantined_and_the_day_flows(tmp_path):
    """Issue 17: 9999-12-31 with a configured zone crashed silver; 1e+308 made gold infinite; a NUL
    byte or a leading space made separate users."""
    settings = Lakehouse.default_settings(tmp_path).model_copy(update={"device_timezones": {"alice": "America/New_York"}})
    lakehouse = Lakehouse(settings, build_definitions(settings))
    day = dt.date(2026, 11, 20)
    good = "alice,2026-11-20 10:00,8.8.8.8,192.168.1.20,210,948.173\n"
    bad = [good.replace("2026-11-20 10:00", "9999-12-31 23:59"), good.replace("2026-11-20 10:00", "0001-01-01 00:00"),
           good.replace("210", "1e+308"), good.replace("alice", "al\0ice"), " " + good, good.replace("alice", "bob")]
    goods = "".join(good.replace("10:00", f"10:0{m}") for m in range(5))
    lakehouse.write_log(f"alice-{day}.csv", goods + "".join(bad))
    lakehouse.write_log(f"carol-{day}.csv", good.replace("alice", "carol"))

    result = materialize_range(lakehouse.defs, day, day)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations()
                                  if e.check_name != "yesterday_is_fresh")
    assert lakehouse.table("quarantine").num_rows == len(bad)
    daily = lakehouse.table("daily_user_bandwidth", "packetx_gold")
    assert sorted(daily.column("user").to_pylist()) == ["alice", "carol"]
    assert daily.column("total_kb").to_pylist() == [5 * 210.0, 210.0]


def test_the_hours_check_fails_when_an_hour_is_under_two_days(lakehouse):
    lakehouse.write_log("alice-2026-11-20.csv", "alice,2026-11-20 10:00,8.8.8.8,192.168.1.20,210,948.173\n")
    day = dt.date(2026, 11, 20)
    assert _checks(materialize_range(lakehouse.defs, day, day))[HOURS_ON_ONE_DAY].passed
    hourly = ensure_table(lakehouse.catalog(), GOLD_HOURLY_BANDWIDTH)
    copy = hourly.scan().to_arrow()
    copy = copy.set_column(0, "log_date", pa.array([day + dt.timedelta(days=9)] * copy.num_rows, pa.date32()))
    replace_partitions(hourly, copy, values=[day + dt.timedelta(days=9)])  # as a renamed file did before
    # Blocking: the run stops before anything downstream is built from an hour counted twice.
    result = materialize_range(lakehouse.defs, day, day, selection="group:gold", raise_on_error=False)
    assert not result.success
    check = _checks(result)[HOURS_ON_ONE_DAY]
    assert check.passed is False
    assert "user alice hour 2026-11-20 10:00 UTC under 2 log_dates: 2026-11-20, 2026-11-29" in check.metadata[
        "problems"].value


def test_a_storage_failure_names_the_table_and_where_it_was_writing(lakehouse, tmp_path):
    catalog = lakehouse.catalog()
    table = ensure_table(catalog, BRONZE_PACKETS)
    data_dir = table.location().removeprefix("file://") + "/data"
    shutil.rmtree(data_dir, ignore_errors=True)
    with open(data_dir, "w") as blocker:  # a file where the data directory must go
        blocker.write("x")
    context = dg.build_asset_context()
    tables = RunTables(catalog, [dt.date(2026, 11, 20)])
    rows = BRONZE_PACKETS.schema.empty_table()
    rows = pa.Table.from_pylist([{"log_date": dt.date(2026, 11, 20), "user": "alice", "time_stamp": dt.datetime(2026, 11, 20),
                                  "source_ip": "8.8.8.8", "destination_ip": "1.1.1.1", "kb_bandwidth": 1.0,
                                  "total_kb_bandwidth": 1.0, "source_file": "a", "line_number": 1,
                                  "ingested_at": dt.datetime(2026, 11, 20, tzinfo=dt.UTC)}], schema=rows.schema)
    with pytest.raises(StorageError, match=rf"^writing packetx_raw\.packets to {table.location()}: \w+"):
        tables.commit(context, BRONZE_PACKETS, rows, generations={dt.date(2026, 11, 20): 1})
