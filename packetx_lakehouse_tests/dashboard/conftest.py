"""One generated lakehouse, built by the real pipeline, shared by every dashboard test."""

import datetime as dt
from pathlib import Path

import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import TEST_START_DATE

FIRST_DAY = dt.date(2026, 11, 1)
DAYS = 9  # anomalies need a trailing week of baseline
IP_CHANGE = {"alice": FIRST_DAY + dt.timedelta(days=5)}
EMPTY_DEVICE, BAD_NAME = "dave", "bob-2026-13-45.csv"


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a lakehouse whose serving database holds 3 users x 9 days (built once: ~15 s)."""
    root = tmp_path_factory.mktemp("dashboard") / "data"
    settings = Settings(data_dir=root, traffic_log_dir=root / "traffic_log", start_date=TEST_START_DATE)
    generate(settings.traffic_log_dir, users=3, days=DAYS, start=FIRST_DAY, seed=7,
             options=GeneratorOptions(bad_lines=2, restarts=1), ip_changes=IP_CHANGE)
    # Landing problems the freshness panel shows: a device that sent nothing, a badly dated file.
    (settings.traffic_log_dir / f"{EMPTY_DEVICE}-{FIRST_DAY}.csv").write_bytes(b"")
    (settings.traffic_log_dir / BAD_NAME).write_text("x\n")
    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    assert materialize_range(build_definitions(settings), FIRST_DAY, last, log_level="WARNING").success
    return settings


@pytest.fixture
def empty_data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
