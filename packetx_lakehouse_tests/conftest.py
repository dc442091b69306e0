"""Shared fixtures: a throw-away embedded lakehouse per test, on real local storage."""

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.settings import Settings

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
