"""The dashboard in a real headless Chromium: what a person sees must match the gold tables.

Chromium is Debian's (``scripts/test.sh`` installs it); Playwright's own browser download cannot
work here, so the binary is given explicitly.
"""

import contextlib
import datetime as dt
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from packetx_lakehouse.dashboard import queries
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.lib.storage.time_travel import kept_states
from packetx_lakehouse.lib.units import format_kb
from packetx_lakehouse_harness.devserver import free_port, poll
from packetx_lakehouse_tests.dashboard.conftest import LAST_DAY, SILENT_DEVICE

pytestmark = pytest.mark.browser
#: How long the page may take to show what the test waits for (a loaded machine renders slowly).
UI_PATIENCE_MS = 120_000
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: A chart Vega has drawn (the element exists a moment before its marks do).
DRAWN_CHART = "[data-testid='stVegaLiteChart'] svg.marks"


@contextlib.contextmanager
def dashboard_server(data_dir: Path, log: Path) -> Iterator[str]:
    """``packetx-lakehouse dashboard`` on a free loopback port, stopped by its PID afterwards."""
    port = free_port()
    env = {**os.environ, "PACKETX_DATA_DIR": str(data_dir)}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "packetx_lakehouse.cli", "dashboard", "--port", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    def healthy() -> bool:
        assert server.poll() is None, f"dashboard exited:\n{log.read_text()}"
        with contextlib.suppress(OSError):
            return urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
        return False

    try:
        poll("the dashboard to be healthy", healthy, interval=0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def dashboard_url(served, tmp_path_factory) -> Iterator[str]:
    with dashboard_server(served.data_dir, tmp_path_factory.mktemp("logs") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "browser tests need Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ARTIFACTS.mkdir(exist_ok=True)
    # Tall enough that every panel renders in one screenshot (Streamlit scrolls an inner element).
    context = browser.new_context(viewport={"width": 1400, "height": 2900})
    yield context.new_page()
    context.close()


def loaded(page: Page) -> Page:
    """Wait for the charts (they render after the text), and fail on any traceback shown."""
    expect(page.locator(DRAWN_CHART).first).to_be_visible(timeout=UI_PATIENCE_MS)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    return page


def expect_metrics(page: Page, totals: dict[str, float]) -> None:
    """The headline shows the selection's total, then each user's, largest first, formatted as the
    page formats them; retried until the page's rerun has replaced the previous numbers."""
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    expect(page.get_by_test_id("stMetricLabel")).to_have_text(["All selected users", *(u for u, _ in ranked)])
    expect(page.get_by_test_id("stMetricValue")).to_have_text(
        [format_kb(sum(totals.values())), *(format_kb(kb) for _, kb in ranked)])


def gold_totals(served, where: str = "true", params: tuple = ()) -> dict[str, float]:
    """Per-user KB straight from gold.daily_user_bandwidth: what the page must agree with."""
    with duckdb.connect(str(served.serving_path), read_only=True) as con:
        return dict(con.execute(f"SELECT user, sum(total_kb) FROM gold.daily_user_bandwidth WHERE {where} "
                                "GROUP BY user", list(params)).fetchall())


def test_totals_users_and_charts_match_gold_and_follow_the_user_filter(served, dashboard_url, page):
    totals = gold_totals(served)
    page.goto(dashboard_url)
    expect(page.get_by_text(f"total {sum(totals.values()):,.0f} KB across 3 user(s)")).to_be_visible(timeout=UI_PATIENCE_MS)
    expect_metrics(loaded(page), totals)
    expect(page.locator(DRAWN_CHART)).to_have_count(4)  # one per user + quarantined lines
    for heading in ("Bandwidth per hour", "Daily totals per user", "Top external hosts", "Anomalies",
                    "Local IP history", "Data freshness"):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.get_by_text("Landing problems (files not ingested as they are)")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "dashboard.png")

    page.get_by_role("button", name="Remove carol").click()
    del totals["carol"]
    expect(page.get_by_text(f"total {sum(totals.values()):,.0f} KB across 2 user(s)")).to_be_visible()
    expect_metrics(loaded(page), totals)
    expect(page.locator(DRAWN_CHART)).to_have_count(3)


def test_no_headline_figure_is_cut_in_a_narrow_window(served, dashboard_url, browser):
    """Every metric's figure is shown whole (a metric squeezed into a sixth of the page showed
    "alice 460.67 …"): no element of a metric's value is wider than the room it gets."""
    context = browser.new_context(viewport={"width": 820, "height": 2400})
    try:
        page = context.new_page()
        page.goto(dashboard_url)
        values = loaded(page).get_by_test_id("stMetricValue")
        expect(values).to_have_count(1 + len(gold_totals(served)), timeout=UI_PATIENCE_MS)
        cut = values.evaluate_all("""values => values.filter(value => [value, ...value.querySelectorAll('*')]
                                       .some(e => e.scrollWidth > e.clientWidth + 1)).map(value => value.textContent)""")
        assert cut == [], f"figures cut: {cut}"
    finally:
        context.close()


def test_an_anomaly_link_opens_its_user_and_hour(served, dashboard_url, page):
    page.goto(dashboard_url)
    href = loaded(page).locator("a[href*='hour=']").first.get_attribute("href")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    user, hour = query["user"][0], dt.datetime.strptime(query["hour"][0], "%Y-%m-%dT%H:%MZ")

    page.goto(dashboard_url + "/" + href)
    expect(page.get_by_role("heading", name=f"{user}, {hour:%Y-%m-%d %H:00} UTC")).to_be_visible(timeout=UI_PATIENCE_MS)
    loaded(page)
    day_total = gold_totals(served, "user = ? AND log_date = ?", (user, hour.date()))
    # The drill-down: the hour against the same hour of the week before, and what changed most.
    with duckdb.connect(str(served.serving_path), read_only=True) as con:
        found = queries.explanation(con, user, hour.replace(tzinfo=dt.UTC))
    expect(page.get_by_text(f"What changed most: {found.what_changed_most}")).to_be_visible()
    expect(page.get_by_text(found.findings[0])).to_be_visible()
    expect(page.get_by_test_id("stMetricValue")).to_have_text(
        [format_kb(sum(day_total.values())), format_kb(day_total[user]), format_kb(found.kb),
         format_kb(found.typical_kb), re.compile(r"\d+\.\d")])
    page.screenshot(path=ARTIFACTS / "dashboard-anomaly.png")


def test_silent_devices_come_first_and_changes_to_daily_totals_are_listed(served, dashboard_url, page):
    page.goto(dashboard_url)
    loaded(page)
    expect(page.get_by_role("heading", name="Devices")).to_be_visible()
    expect(page.get_by_text(re.compile(f"^{SILENT_DEVICE} silent since {LAST_DAY} 1[01]:\\d\\d UTC: "))).to_be_visible()
    expect(page.get_by_role("heading", name="Changes to daily totals")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile(f"^{SILENT_DEVICE}-{LAST_DAY}.csv grew "))).to_be_visible()
    page.get_by_role("heading", name="Devices").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "dashboard-devices.png", full_page=True)


def test_as_of_an_earlier_state_shows_gold_as_it_was_then(served, dashboard_url, page):
    catalog = open_catalog(served)
    daily = catalog.load_table("packetx_gold.daily_user_bandwidth")
    earlier = kept_states(daily)[1]
    then: dict[str, float] = {}
    for row in daily.scan(snapshot_id=earlier.snapshot_id).to_arrow().to_pylist():
        then[row["user"]] = then.get(row["user"], 0.0) + row["total_kb"]
    assert then[SILENT_DEVICE] < gold_totals(served)[SILENT_DEVICE]

    page.goto(dashboard_url)
    expect_metrics(loaded(page), gold_totals(served))
    page.get_by_text("As of an earlier state").click()
    expect(page.get_by_text(re.compile(r"^As of .* UTC: gold as it was then"))).to_be_visible(timeout=30_000)
    expect_metrics(loaded(page), then)
    expect(page.get_by_text(re.compile(f"^{SILENT_DEVICE} silent since"))).to_be_visible()  # devices: as of now
    page.screenshot(path=ARTIFACTS / "dashboard-as-of.png")

    # The same state from a link.
    page.goto(f"{dashboard_url}/?as_of={earlier.snapshot_id}")
    expect_metrics(loaded(page), then)
    page.goto(f"{dashboard_url}/?as_of=2020-01-01T00:00")  # before anything was written
    expect(page.get_by_text("No data yet")).to_be_visible(timeout=30_000)


def test_an_empty_lakehouse_says_how_to_fill_it(tmp_path, browser):
    with dashboard_server(tmp_path / "data", tmp_path / "streamlit.log") as url:
        page = browser.new_page()
        page.goto(url)
        expect(page.get_by_text("No data yet — run")).to_be_visible(timeout=UI_PATIENCE_MS)
        expect(page.get_by_text("packetx-lakehouse demo")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.close()
