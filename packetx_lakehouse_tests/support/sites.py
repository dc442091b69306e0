"""A lakehouse plus a Dagster instance in a temporary directory, and real run processes on it.

The crash, signal and overlap tests start ``daily_pipeline`` runs as processes of their own
(``pipeline_process``) on a persistent instance: the project's ``dagster.yaml`` (SQLite storage,
one slot per pool), with no daemon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.devserver import write_instance_yaml
from packetx_lakehouse_tests.support.pipeline_process import RunProcess

START = dt.date(2026, 11, 16)
LAST = START + dt.timedelta(days=1)


class Site:
    """A lakehouse and a Dagster instance in a temporary directory, shared by every run process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir()
        write_instance_yaml(self.home)
        self.settings = Settings(data_dir=root / "data", traffic_log_dir=root / "data" / "traffic_log",
                                 start_date=START.isoformat())
        self.processes: list[RunProcess] = []

    def run(self, pause_at: str = "", home: Path | None = None, fault: str = "", *, refresh: bool = False) -> RunProcess:
        """Start a run of both days (``home``: another instance than the site's; ``fault``: see
        ``pipeline_process``), or with ``refresh`` the landing sensor's kind of run: a refresh of the
        first day with its new lines."""
        number = len(self.processes) + 1
        marker = self.root / f"paused-{number}"
        self.processes.append(RunProcess(
            self.root / f"run-{number}.log", data_dir=self.settings.data_dir, dagster_home=home or self.home,
            start_date=START.isoformat(), first=START, last=START if refresh else LAST, pause_at=pause_at,
            marker=marker if pause_at else "", fault=fault, refresh="1" if refresh else ""))
        return self.processes[-1]

    def stop_all(self) -> None:
        """Kill every run process still alive (a failed test must not leave one behind)."""
        for process in self.processes:
            process.kill()

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


@pytest.fixture
def make_site(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """Sites under ``tmp_path``, by default with two users x two days of landing files; every run
    process still alive at teardown is killed."""
    made: list[Site] = []

    def make(name: str, *, seed_landing: bool = True) -> Site:
        (tmp_path / name).mkdir()
        made.append(Site(tmp_path / name))
        if seed_landing:
            generate(made[-1].settings.traffic_log_dir, users=2, days=2, start=START, seed=5,
                     options=GeneratorOptions(minutes_per_day=40, pairs_per_minute=15, bad_lines=2))
        return made[-1]

    yield make
    for site in made:
        site.stop_all()


def blocked_on_slot(instance: dg.DagsterInstance) -> str | None:
    """The id of a started run that logged "Step blocked by limit for pool ..."."""
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if any("blocked by limit" in (e.message or "")
               for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
            return run.run_id
    return None


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def logged(instance: dg.DagsterInstance, run_id: str, text: str) -> bool:
    """Whether any event or log message of the run contains ``text``."""
    return any(text in (entry.message or "") for entry in instance.all_logs(run_id))
