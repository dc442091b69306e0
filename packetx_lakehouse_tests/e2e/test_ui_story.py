"""Issue 24's UI story in a real Chromium on `dagster dev`: a day with a misdated file shows red on
its asset's partitions and its check stays failed after other days ran, until the file is retracted
and the day runs again.

The lakehouse is built in process into the instance the server then serves, so the server's
daemon sees exactly the state a user would after the README's demo over a range with a bad file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.ingest.archive import retract
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.devserver import DagsterDev, write_instance_yaml

pytestmark = pytest.mark.browser
START = "2026-11-15"
DAYS = [dt.date(2026, 11, 21) + dt.timedelta(days=n) for n in range(3)]
BAD = DAYS[1]
UI_PATIENCE_MS = 120_000
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Story:
    def __init__(self, root: Path) -> None:
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        write_instance_yaml(self.home)
        data = root / "data"
        self.settings = Settings(data_dir=data, traffic_log_dir=data / "traffic_log", start_date=START)
        self.defs = build_definitions(self.settings)
        generate(self.settings.traffic_log_dir, users=2, days=len(DAYS), start=DAYS[0], seed=4,
                 options=GeneratorOptions(minutes_per_day=20, pairs_per_minute=4))
        first = sorted(self.settings.traffic_log_dir.glob(f"*-{DAYS[0]}.csv"))[0]
        self.misdated = first.name.replace(str(DAYS[0]), str(BAD))
        (self.settings.traffic_log_dir / self.misdated).write_bytes(first.read_bytes())

    def run(self, first: dt.date, last: dt.date) -> bool:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return materialize_range(self.defs, first, last, instance=instance, raise_on_error=False,
                                     log_level="ERROR").success


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Story, DagsterDev]]:
    root = tmp_path_factory.mktemp("ui_story")
    story = Story(root)
    assert not story.run(DAYS[0], DAYS[-1])  # the README demo's one run over the range: fails on BAD
    assert story.run(DAYS[-1], DAYS[-1])  # then another day runs: the last evaluation is a pass
    (root / "server").mkdir()
    server = DagsterDev.start(root / "server", dagster_home=story.home,
                              env={"PACKETX_DATA_DIR": str(story.settings.data_dir), "PACKETX_START_DATE": START})
    try:
        yield story, server
    finally:
        server.stop(timeout=10)


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM.exists(), "browser tests need Debian's chromium: apt-get install -y chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        browser.close()


def _partitions(page: Page, url: str, failed: int) -> None:
    page.goto(f"{url}/assets/packetx_silver/packets?view=partitions")
    expect(page.get_by_text(f"Failed ({failed})")).to_be_visible(timeout=UI_PATIENCE_MS)


def _check(page: Page, url: str, status: str) -> None:
    page.goto(f"{url}/assets/packetx_raw/packets?view=checks")
    # The check list: the check's name, and under it its status over every day.
    expect(page.get_by_text("rows_on_file_date").first).to_be_visible(timeout=UI_PATIENCE_MS)
    expect(page.get_by_text(status, exact=True).first).to_be_visible(timeout=UI_PATIENCE_MS)


def test_the_misdated_day_is_red_until_it_is_fixed(story, page):
    lakehouse, server = story
    # Red: the day's silver failed (its run stopped on the misdated file) while the range's other days
    # were built; bronze's check of that day is shown failed though the latest evaluation (another day) passed.
    _partitions(page, server.url, failed=1)
    expect(page.get_by_text("Materialized (2)")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "ui-story-failed-day.png")
    _check(page, server.url, "Failed")
    expect(page.get_by_text(str(DAYS[-1]), exact=True)).to_be_visible()  # the latest execution's partition
    expect(page.get_by_text("Passed", exact=True)).to_be_visible()
    page.screenshot(path=ARTIFACTS / "ui-story-failed-check.png")

    # Fixed: the copy is retracted and the day runs again; then, and only then, it is green.
    retract(LocalObjectStore(lakehouse.settings.archive_dir), lakehouse.misdated, by="test", reason="renamed copy",
            now=dt.datetime.now(dt.UTC))
    assert lakehouse.run(BAD, BAD)
    _partitions(page, server.url, failed=0)
    expect(page.get_by_text("Materialized (3)")).to_be_visible()
    _check(page, server.url, "Succeeded")
    page.screenshot(path=ARTIFACTS / "ui-story-fixed.png")
