"""Shared fixtures (a throw-away embedded lakehouse per test, on real local storage), the test
tiers, and a test process environment no developer setting leaks into.

Tiers (``pytest -m TIER``; ``bash scripts/test.sh`` runs them all):

- ``unit``: pure functions, Iceberg and DuckDB on local files: the fast loop while editing.
- ``pipeline``: the Dagster definitions run in process (``materialize``, sensors, automation
  conditions), the CLI and the demo, on local storage.
  Both parallel (pytest-xdist), each test in its own temporary directory.
- ``services``: the AWS path against moto server and PostgreSQL, the Celery profile with
  RabbitMQ and Redis.
- ``e2e``: real processes of the product: ``dagster dev``, run processes stopped and killed
  mid-write, the CLI and ``dg`` as a user types them, the wheel build and its demo.
- ``browser``: the dashboard in a real Chromium.

A test's tier comes from where it lives (``TIERS``), or from a ``pytest.mark.<tier>`` of its own
(for a test that is slower or needs more than its neighbours). A test file in a place ``TIERS``
does not name fails collection, so no test goes unmarked. Each tier has a default per-test
timeout (``TIMEOUTS``, pytest-timeout) that a test can raise with ``pytest.mark.timeout``.
"""

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import hypothesis
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.settings import Settings

#: Where each tier's tests live: the first path part under packetx_lakehouse_tests/ -> tier.
TIERS = {
    "lib": "unit",
    "devices": "unit",
    "defs": "pipeline",
    "dashboard": "pipeline",
    "test_bench_profile.py": "unit",
    "test_cli.py": "pipeline",
    "test_dagster_internals.py": "unit",
    "test_definitions.py": "unit",
    "test_dependencies.py": "unit",
    "test_layout.py": "unit",
    "aws": "services",
    "distributed": "services",
    "e2e": "e2e",
    "test_packaging.py": "e2e",
    "test_runner.py": "e2e",
}
#: Seconds a test of each tier may take (set-up and tear-down included) before it fails as hung:
#: several times the slowest test of the tier on a loaded 2-core machine, never a speed target.
TIMEOUTS = {"unit": 300, "pipeline": 300, "services": 600, "e2e": 900, "browser": 600}
#: Tests that share a costly module- or package-scoped fixture (a served lakehouse, a ``dagster dev``,
#: the Celery profile): one pytest-xdist worker runs each group (``--dist loadgroup``), so it is built once.
SHARED = ("dashboard", "e2e", "distributed", "lib/transform/test_gold.py")
#: Scheduled first, so the long tests do not end up alone on one worker at the end of the run.
ORDER = {"e2e": 0, "services": 1, "browser": 2, "pipeline": 3, "unit": 4}
TESTS = Path(__file__).resolve().parent

# Hypothesis: the same examples on every CI run (a failure is one to reproduce, never a flake); a
# developer's run explores new ones. `--hypothesis-profile` chooses either.
hypothesis.settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis.settings.register_profile("dev", print_blob=True)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIMEOUTS:
        config.addinivalue_line("markers", f"{tier}: a test of the {tier} tier (see packetx_lakehouse_tests/conftest.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unplaced = []
    for item in items:
        own = [mark.name for mark in item.iter_markers() if mark.name in TIMEOUTS]
        if len(own) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked for several tiers: {own}")
        tier = own[0] if own else TIERS.get(item.path.relative_to(TESTS).parts[0])
        if tier is None:
            unplaced.append(item.nodeid)
            continue
        if not own:
            item.add_marker(getattr(pytest.mark, tier))
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIMEOUTS[tier]))
        path = item.path.relative_to(TESTS).as_posix()
        shared = next((group for group in SHARED if path == group or path.startswith(group + "/")), None)
        if shared is not None:
            item.add_marker(pytest.mark.xdist_group(shared))
    if unplaced:
        raise pytest.UsageError("tests in no tier (add their folder to TIERS in packetx_lakehouse_tests/conftest.py, "
                                f"or mark them): {unplaced}")
    items.sort(key=lambda item: ORDER[_tier(item)])  # stable: file order within a tier


def _tier(item: pytest.Item) -> str:
    return next(mark.name for mark in item.iter_markers() if mark.name in TIMEOUTS)


@pytest.fixture(scope="session", autouse=True)
def _no_developer_settings() -> Iterator[None]:
    """The product's variables of the developer's shell (a PACKETX_ENV=aws, a PACKETX_DATA_DIR) do
    not reach the tests; a test sets what it needs with ``monkeypatch``. PACKETX_TEST_* configure
    the tests themselves (the PostgreSQL server) and stay."""
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("PACKETX_") and not n.startswith("PACKETX_TEST_")]:
            env.delenv(name)
        yield


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """What a test leaves in ``os.environ`` (the CLI and the code location load ``.env`` into it)
    is gone before the next test."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


HEADER = "User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth\n"
#: The tests' days are in 2026 (and a few earlier); the default start (the samples' day) is later.
TEST_START_DATE = "2025-01-01"


@dataclasses.dataclass
class Lakehouse:
    """A local lakehouse rooted in a temporary directory."""

    settings: Settings
    defs: dg.Definitions

    @staticmethod
    def default_settings(root: Path) -> Settings:
        return Settings(data_dir=root / "data", traffic_log_dir=root / "data" / "traffic_log",
                        start_date=TEST_START_DATE)

    @property
    def landing(self) -> Path:
        return self.settings.traffic_log_dir

    def catalog(self):
        return open_catalog(self.settings)

    def table(self, name: str, namespace: str = "packetx_raw"):
        """Every row of ``<namespace>.<name>`` as Arrow."""
        return self.catalog().load_table(f"{namespace}.{name}").scan().to_arrow()

    def write_log(self, name: str, body: str, *, header: bool = True) -> Path:
        path = self.landing / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((HEADER if header else "") + body)
        return path

    def append_log(self, name: str, body: str) -> None:
        with (self.landing / name).open("a") as handle:
            handle.write(body)


@pytest.fixture
def lakehouse(tmp_path: Path) -> Lakehouse:
    settings = Lakehouse.default_settings(tmp_path)
    return Lakehouse(settings, build_definitions(settings))
