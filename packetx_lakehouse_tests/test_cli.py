"""The command line: ad-hoc SQL over the live lakehouse, the README's commands as written, ``.env``."""

import csv
import datetime as dt
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from packetx_lakehouse import cli, demo, runner
from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import archive_store
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.ingest.archive import retract
from packetx_lakehouse.lib.serving.lakehouse_sql import (
    extension_path,
    lakehouse_connection,
)
from packetx_lakehouse.lib.storage.iceberg import RECENT_SNAPSHOTS
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_harness.devserver import PATIENCE

PROJECT = Path(__file__).resolve().parents[1]
DAYS = [dt.date(2026, 11, 20), dt.date(2026, 11, 21)]


@pytest.fixture
def ran(lakehouse, monkeypatch):
    """Two days through every layer, and a shell whose PACKETX_DATA_DIR points at them."""
    generate(lakehouse.landing, users=2, days=2, start=DAYS[0], seed=4,
             options=GeneratorOptions(minutes_per_day=15, pairs_per_minute=5))
    assert materialize_range(lakehouse.defs, DAYS[0], DAYS[-1], log_level="ERROR").success
    monkeypatch.setenv("PACKETX_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.chdir(lakehouse.settings.data_dir.parent)  # no .env here
    return lakehouse


def _csv(capsys, *args: str) -> list[dict[str, str]]:
    assert cli.main(["sql", "--csv", *args]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_sql_reads_the_live_iceberg_tables_and_the_serving_database(ran, capsys):
    live = _csv(capsys, "SELECT log_date, user, total_kb FROM packetx_gold.daily_user_bandwidth ORDER BY 1, 2")
    served = _csv(capsys, "SELECT log_date, user, total_kb FROM gold.daily_user_bandwidth ORDER BY 1, 2")
    assert live == served and len(live) == 4
    (bronze,) = _csv(capsys, "SELECT count(*) AS n FROM packetx_raw.packets")
    table = ran.catalog().load_table("packetx_raw.packets")
    assert int(bronze["n"]) == table.scan().count() > 0
    (ops,) = _csv(capsys, "SELECT count(*) AS n FROM ops.partitions")
    assert int(ops["n"]) == 6  # bronze, silver and gold, two days each


def test_sql_errors_are_one_line_not_a_traceback(ran, capsys):
    assert cli.main(["sql", "SELEC 1"]) == 2
    assert "syntax error" in capsys.readouterr().err


def test_the_extensions_come_from_the_pinned_wheels_and_nothing_is_downloaded(tmp_path):
    for name in ("avro", "iceberg", "httpfs"):
        path = extension_path(name)
        assert path.is_file() and f"duckdb_extension_{name}" in str(path) and duckdb.__version__ in str(path)
    con = lakehouse_connection({})
    loaded = {name for (name,) in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"avro", "iceberg"} <= loaded
    assert con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone() == (False,)


@pytest.mark.e2e  # the installed command, as a user types it
def test_the_readme_commands_run_as_written(ran):
    """Every ``packetx-lakehouse sql`` line of the README runs from the project directory's venv."""
    readme = (PROJECT / "README.md").read_text()
    commands = re.findall(r"^\.venv/bin/packetx-lakehouse (sql .+)$", readme, flags=re.M)
    assert commands, "the README documents no sql command"
    executable = Path(sys.executable).parent / "packetx-lakehouse"
    for command in commands:
        done = subprocess.run(f"{executable} {command}", shell=True, capture_output=True, text=True, timeout=PATIENCE,
                              cwd=ran.settings.data_dir.parent)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "alice" in done.stdout and str(DAYS[0]) in done.stdout


def test_every_command_reads_dotenv_as_dagster_does(tmp_path, monkeypatch):
    for name in ("PACKETX_DATA_DIR", "PACKETX_TRAFFIC_LOG_DIR"):  # set, then unset: restored after the test
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(f"PACKETX_DATA_DIR={tmp_path / 'from-dotenv'}\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["generate", "--users", "1", "--days", "1", "--start", "2026-11-20", "--minutes", "5"]) == 0
    assert [p.name for p in (tmp_path / "from-dotenv" / "traffic_log").iterdir()] == ["alice-2026-11-20.csv"]


def test_a_long_run_shows_progress_per_step_on_stderr_and_keeps_stdout_for_results(ran, capsys):
    from packetx_lakehouse.progress import run_progress

    heard = []
    with run_progress(4, "daily_pipeline") as on_event:
        assert materialize_range(ran.defs, DAYS[0], DAYS[-1], log_level="ERROR",
                                 on_event=lambda e: (heard.append(e.event_type), on_event(e))).success
    out, err = capsys.readouterr()
    assert out == ""
    for step in ("bronze_to_gold", "traffic_anomalies", "star_dimensions", "serving_duckdb"):
        assert re.search(rf"done\s+{step}: \d+ materialisations", err), err
    assert "4/4" in err
    assert heard.count(dg.DagsterEventType.STEP_SUCCESS) == 4


def test_device_commands_run_without_importing_dagster(tmp_path):
    """``generate`` and ``upload`` run on the devices: neither may pay Dagster's import (seconds)."""
    program = ("import sys; from packetx_lakehouse import cli; import packetx_lakehouse.devices.upload; "
               "code = cli.main(['generate', '--users', '1', '--days', '1', '--start', '2026-11-20', '--minutes', '5', "
               "'--out', sys.argv[1]]); print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))")
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path)], capture_output=True, text=True, timeout=PATIENCE,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "0 []"
    assert [p.name for p in tmp_path.iterdir()] == ["alice-2026-11-20.csv"]


def test_upload_without_a_bucket_says_so_before_any_progress(tmp_path):
    (tmp_path / "alice-2026-11-20.csv").write_text("User,Time Stamp,Source IP,Destination IP,KB Bandwidth,"
                                                   "Total KB Bandwidth\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKETX_") and k != "s3_bucket_name"}
    done = subprocess.run([Path(sys.executable).parent / "packetx-lakehouse", "upload", "--dir", tmp_path],
                          capture_output=True, text=True, timeout=PATIENCE, cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "packetx-lakehouse upload: upload needs PACKETX_S3_BUCKET (or s3_bucket_name)"
    assert done.stdout == ""


def _daily_kb(capsys, *args: str) -> dict[str, float]:
    rows = _csv(capsys, *args, f"SELECT user, total_kb FROM packetx_gold.daily_user_bandwidth WHERE log_date = "
                               f"'{DAYS[0]}' ORDER BY user")
    return {row["user"]: float(row["total_kb"]) for row in rows}


def _commit_time(ran) -> tuple[int, dt.datetime]:
    snapshot = ran.catalog().load_table("packetx_gold.daily_user_bandwidth").current_snapshot()
    return snapshot.snapshot_id, dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC)


def test_sql_as_of_answers_as_the_lakehouse_stood_then_and_refuses_what_is_not_kept(ran, capsys):
    before = _daily_kb(capsys)
    snapshot, written = _commit_time(ran)
    ran.append_log(f"alice-{DAYS[0]}.csv", f"alice,{DAYS[0]} 23:59,8.8.8.8,192.168.1.20,1000,1000\n")
    assert materialize_range(ran.defs, DAYS[0], DAYS[0], log_level="ERROR").success
    after = _daily_kb(capsys)
    assert after["alice"] == pytest.approx(before["alice"] + 1000) and after["bob-smith"] == before["bob-smith"]
    _, rewritten = _commit_time(ran)

    between = (written + (rewritten - written) / 2).isoformat()
    assert cli.main(["sql", "--as-of", between, "SELECT 1"]) == 0
    assert capsys.readouterr().err.startswith(f"-- as of {between[:10]} {between[11:19]} UTC (Iceberg tables only)")
    assert _daily_kb(capsys, "--as-of", between) == before
    assert _daily_kb(capsys, "--as-of", str(snapshot)) == before
    assert _daily_kb(capsys, "--as-of", rewritten.isoformat()) == after
    assert _daily_kb(capsys, "--as-of", "2020-01-01") == {}  # before the first write: no rows yet

    # The serving copy keeps no history: as of a time, only the Iceberg tables are there.
    assert cli.main(["sql", "--as-of", between, "SELECT * FROM gold.daily_user_bandwidth"]) == 2
    assert "only the Iceberg tables (packetx_*) are there" in capsys.readouterr().err

    # More writes than a table keeps: the first two states are gone.
    for extra in range(1, RECENT_SNAPSHOTS + 1):
        ran.append_log(f"alice-{DAYS[0]}.csv", f"alice,{DAYS[0]} 23:59,1.1.1.1,192.168.1.20,{extra},{extra}\n")
        assert materialize_range(ran.defs, DAYS[0], DAYS[0], log_level="ERROR").success
    assert cli.main(["sql", "--as-of", between, "SELECT * FROM packetx_gold.daily_user_bandwidth"]) == 2
    err = capsys.readouterr().err
    assert "not kept then: " in err and "packetx_gold.daily_user_bandwidth" in err.splitlines()[0]
    assert "packetx_gold.daily_user_bandwidth: its oldest state kept is from " in err.splitlines()[1]
    assert cli.main(["sql", "--as-of", str(snapshot), "SELECT 1"]) == 2
    assert f"no table keeps snapshot {snapshot}" in capsys.readouterr().err
    assert cli.main(["sql", "--as-of", "next tuesday", "SELECT 1"]) == 2
    assert "expected an ISO time" in capsys.readouterr().err


ANOMALY_DAY = dt.date(2026, 11, 28)


@pytest.fixture
def spiky(lakehouse, monkeypatch):
    """alice talks to two hosts every half hour for a week; then, one afternoon, to a new one."""
    for n in range(8, -1, -1):
        day = ANOMALY_DAY - dt.timedelta(days=n)
        # Values differ from block to block: a block repeating every pair with its last value is a restart's replay.
        lines = [f"alice,{day} {h:02d}:{m:02d},8.8.8.8,192.168.1.20,{100 + h + m},{300 + h + 2 * m}\n"
                 f"alice,{day} {h:02d}:{m:02d},192.168.1.20,1.1.1.1,{200 + m},{300 + h + 2 * m}\n"
                 for h in range(24) for m in (0, 30)]
        if n == 0:
            lines += [f"alice,{day} 14:{m:02d},203.0.113.7,192.168.1.20,50000,50000\n" for m in range(10)]
        lakehouse.write_log(f"alice-{day}.csv", "".join(lines))
    assert materialize_range(lakehouse.defs, ANOMALY_DAY - dt.timedelta(days=8), ANOMALY_DAY,
                             log_level="ERROR").success
    monkeypatch.setenv("PACKETX_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.chdir(lakehouse.settings.data_dir.parent)
    return lakehouse


def test_explain_anomaly_names_what_changed_most(spiky, capsys):
    assert cli.main(["explain-anomaly", "alice", f"{ANOMALY_DAY}T14"]) == 0
    out = capsys.readouterr().out
    usual = 114 + 144 + 200 + 230  # KB at 14:00 and 14:30 with both hosts
    assert out.startswith(f"alice, {ANOMALY_DAY} 14:00 UTC: {(usual + 500_000) / 1024:,.2f} MB against a typical "
                          f"{usual:.1f} KB in this hour (the same hour of the 7 days before)\nFlagged: robust z ")
    assert "What changed most: a new host\n  - new host 203.0.113.7 (outbound): 488.28 MB, 100% of the rise" in out
    hosts = out.split("Remote hosts, largest change first:\n")[1].splitlines()
    assert hosts[1].split() == ["203.0.113.7", "outbound", "488.3", "0.0", "488.3", "10", "0", "yes"]
    assert hosts[2].split()[:2] == ["1.1.1.1", "outbound"] and hosts[2].split()[-1] == "7"  # days seen of 7
    assert out.endswith("Active minutes: 11, typically 2.0\n")

    # The same answer for an ordinary hour says nothing stood out; an hour without traffic is an error.
    assert cli.main(["explain-anomaly", "alice", f"{ANOMALY_DAY} 09:00"]) == 0
    out = capsys.readouterr().out
    assert "Not flagged" in out and "What changed most: nothing: the hour is not above its usual level" in out
    assert cli.main(["explain-anomaly", "bob", f"{ANOMALY_DAY}T14"]) == 2
    assert f"no traffic of bob in {ANOMALY_DAY} 14:00 UTC" in capsys.readouterr().err


def test_day_ranges_are_the_stretches_of_consecutive_days():
    d = dt.date(2026, 11, 1)
    days = [d + dt.timedelta(days=n) for n in (9, 0, 1, 2, 30, 600, 601)]
    assert runner.day_ranges(days) == [(d, d + dt.timedelta(days=2)), (d + dt.timedelta(days=9),) * 2,
                                     (d + dt.timedelta(days=30),) * 2, (d + dt.timedelta(days=600), d + dt.timedelta(days=601))]
    assert runner.day_ranges([]) == []


def test_the_demo_runs_only_days_with_data_however_far_apart_and_still_empties_a_retracted_day(lakehouse, monkeypatch):
    """Captures 30 days apart: each day between them cost seconds of Dagster events in one range
    run (issue 24); a day whose file was retracted and then removed is still run, and emptied."""
    first = dt.date.today() - dt.timedelta(days=40)
    retracted, last = first + dt.timedelta(days=10), first + dt.timedelta(days=30)
    for day in (first, retracted, last):
        generate(lakehouse.landing, users=1, days=1, start=day, seed=day.day,
                 options=GeneratorOptions(minutes_per_day=10, pairs_per_minute=3))
    settings = lakehouse.settings.model_copy(update={"start_date": first.isoformat()})
    assert materialize_range(build_definitions(settings), retracted, retracted, log_level="ERROR").success
    [name] = [p.name for p in lakehouse.landing.iterdir() if retracted.isoformat() in p.name]
    retract(archive_store(settings), name, by="test", reason="a capture by mistake", now=dt.datetime.now(dt.UTC))
    (lakehouse.landing / name).unlink()
    monkeypatch.setenv("PACKETX_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PACKETX_START_DATE", first.isoformat())
    monkeypatch.chdir(settings.data_dir.parent)  # no dagster.yaml here: an ephemeral instance
    runs: list[dg.ExecuteInProcessResult] = []

    def recorded(*args, **kwargs):
        runs.append(materialize_range(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(demo, "materialize_range", recorded)
    assert cli.main(["demo"]) == 0

    materialized = {e.partition for run in runs for e in run.get_asset_materialization_events()} - {None}
    assert materialized == {day.isoformat() for day in (first, retracted, last)}
    assert len(runs) == 3
    days = set(lakehouse.table("packets", "packetx_silver").column("log_date").to_pylist())
    assert days == {first, last}


def test_the_demo_over_a_range_with_a_misdated_file_fails_that_day_and_builds_the_others(lakehouse, monkeypatch,
                                                                                         capsys):
    """Issue 24.11: a renamed copy among three generated days; the demo built nothing before."""
    first = dt.date.today() - dt.timedelta(days=10)
    days = [first + dt.timedelta(days=n) for n in range(3)]
    generate(lakehouse.landing, users=2, days=3, start=first, seed=5,
             options=GeneratorOptions(minutes_per_day=10, pairs_per_minute=3))
    original = sorted(lakehouse.landing.glob(f"*-{first}.csv"))[0]
    renamed = original.name.replace(str(first), str(days[1]))
    (lakehouse.landing / renamed).write_bytes(original.read_bytes())
    monkeypatch.setenv("PACKETX_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.setenv("PACKETX_START_DATE", first.isoformat())
    monkeypatch.chdir(lakehouse.settings.data_dir.parent)  # no dagster.yaml here: an ephemeral instance

    assert cli.main(["demo"]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"FAILED: .*{re.escape(renamed)}: \d+ of \d+ rows are not on the file's date {days[1]}", out)
    assert "The stretch's other days were built." in out
    gold = set(lakehouse.table("daily_user_bandwidth", "packetx_gold").column("log_date").to_pylist())
    assert gold == {days[0], days[2]}
