"""Bronze ingest of a day's landing files: which reader path each file took is reported."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.ingest.bronze import ingest_days
from packetx_lakehouse.lib.ingest.landing import group_landing_by_day
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore

DAY = dt.date(2026, 11, 21)


def test_each_file_report_says_whether_the_fast_path_read_it(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "alice-2026-11-21.csv").write_bytes((SAMPLES_DIR / "alice-2026-11-21.csv").read_bytes())
    (landing / "bob-2026-11-21.csv").write_bytes((SAMPLES_DIR / "bob-2026-11-21.csv").read_bytes()
                                                 + b"bob,2026-11-21 23:59,8.8.8.8,192.168.1.20,-1,1\n")
    store = LocalObjectStore(landing)
    by_day, _ = group_landing_by_day(store)

    batch = ingest_days(store, LocalObjectStore(tmp_path / "archive"), [DAY], by_day,
                        now=dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))

    reports = {report.source_file: report for report in batch.files}
    assert reports["alice-2026-11-21.csv"].fast_path and reports["alice-2026-11-21.csv"].quarantined == 0
    assert not reports["bob-2026-11-21.csv"].fast_path and reports["bob-2026-11-21.csv"].quarantined == 1
