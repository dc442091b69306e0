"""One generated lakehouse, built by the real pipeline, shared by every dashboard test."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.operations.watch import WATCH_JOB
from packetx_lakehouse.devices.generator import GeneratorOptions, Outage, generate
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import TEST_START_DATE

FIRST_DAY = dt.date(2026, 11, 1)
DAYS = 9  # anomalies need a trailing week of baseline
LAST_DAY = FIRST_DAY + dt.timedelta(days=DAYS - 1)
IP_CHANGE = {"alice": FIRST_DAY + dt.timedelta(days=5)}
EMPTY_DEVICE, BAD_NAME = "dave", "bob-2026-13-45.csv"
#: carol's capture stops at noon on the last day (the pipeline first saw it stopped at 10:00).
SILENT_DEVICE, STOPPED, FIRST_SEEN_STOPPED = "carol", dt.time(12), dt.time(10)
#: When the devices are judged: the last day's last minute.
JUDGED_AT = dt.datetime.combine(LAST_DAY, dt.time(23, 59), dt.UTC)


def write_logs(settings: Settings, carol_stops: dt.time) -> None:
    generate(settings.traffic_log_dir, users=3, days=DAYS, start=FIRST_DAY, seed=7,
             options=GeneratorOptions(bad_lines=2, restarts=1), ip_changes=IP_CHANGE,
             outages={SILENT_DEVICE: [Outage(dt.datetime.combine(LAST_DAY, carol_stops))]})


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a lakehouse whose serving database holds 3 users x 9 days (built once: ~20 s).

    The last day ran twice (carol's file grew in between) and the fleet_watch job ran after each,
    so gold has an earlier state to look at, a recorded change, and a silent device.
    """
    root = tmp_path_factory.mktemp("dashboard") / "data"
    settings = Settings(data_dir=root, traffic_log_dir=root / "traffic_log", start_date=TEST_START_DATE)
    write_logs(settings, FIRST_SEEN_STOPPED)
    # Landing problems the freshness panel shows: a device that sent nothing, a badly dated file.
    (settings.traffic_log_dir / f"{EMPTY_DEVICE}-{FIRST_DAY}.csv").write_bytes(b"")
    (settings.traffic_log_dir / BAD_NAME).write_text("x\n")
    defs = build_definitions(settings)
    watch = {"ops": {"device_silence": {"config": {"at": JUDGED_AT.isoformat()}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize_range(defs, FIRST_DAY, LAST_DAY, instance=instance, log_level="WARNING").success
        assert defs.resolve_job_def(WATCH_JOB).execute_in_process(run_config=watch, instance=instance).success
        write_logs(settings, STOPPED)
        assert materialize_range(defs, LAST_DAY, LAST_DAY, instance=instance, log_level="WARNING").success
        assert defs.resolve_job_def(WATCH_JOB).execute_in_process(run_config=watch, instance=instance).success
    return settings


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
