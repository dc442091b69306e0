"""The distributed profile for real: PostgreSQL instance and catalog, runs launched onto Celery
workers by the daemon, RabbitMQ broker and Redis results on loopback (deploy/, docs/distributed.md)."""

import datetime as dt
import re
import subprocess

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.celery_profile import (
    CeleryProfile,
    broker_and_backend,
)
from packetx_lakehouse_harness.devserver import PATIENCE, PROJECT, poll
from packetx_lakehouse_harness.postgres import fresh_database
from packetx_lakehouse_harness.truth import (
    assert_tables_match_files,
    table_digests,
)

FIRST = dt.date(2026, 11, 18)
DAYS = [FIRST + dt.timedelta(days=n) for n in range(2)]
OPTIONS = GeneratorOptions(minutes_per_day=30, pairs_per_minute=10, bad_lines=2)


@pytest.fixture(scope="module")
def services():
    with broker_and_backend():
        yield


def _finished_backfill_runs(instance: dg.DagsterInstance, count: int) -> list[dg.DagsterRun] | None:
    """The backfill's runs once all have finished. Only those: the daemon's automation sensor may launch
    runs of its own meanwhile (counting every run waited forever when it did, on a loaded CI machine)."""
    runs = [run for run in instance.get_runs() if "dagster/backfill" in run.tags]
    return runs if len(runs) == count and all(run.is_finished for run in runs) else None


def _describe(instance: dg.DagsterInstance) -> str:
    return "\n".join(f"{run.run_id[:8]} {run.job_name} {run.status.value} backfill={run.tags.get('dagster/backfill')} "
                     f"partition={run.tags.get('dagster/partition')} range={run.tags.get('dagster/asset_partition_range_start')}"
                     for run in instance.get_runs())


# The wait below gives up first (420 s) so that its message, naming every run's state, is what fails.
@pytest.mark.timeout(900)
def test_a_backfill_on_two_celery_workers_gives_the_tables_of_one_in_process_run(services, tmp_path, monkeypatch):
    with fresh_database("packetx_dagster") as dagster_url, fresh_database("packetx_catalog") as catalog_url:
        profile = CeleryProfile.configure(tmp_path / "celery", dagster_db_url=dagster_url, catalog_url=catalog_url,
                                          workers=2, extra_env={"PACKETX_START_DATE": "2026-11-01"})
        settings = Settings(data_dir=tmp_path / "celery" / "data", traffic_log_dir=tmp_path / "celery" / "data" /
                            "traffic_log", start_date="2026-11-01", catalog_url=catalog_url)
        generate(settings.traffic_log_dir, users=2, days=len(DAYS), start=FIRST, seed=9, options=OPTIONS)
        for name, value in profile.env.items():
            monkeypatch.setenv(name, value)
        with profile, dg.DagsterInstance.from_config(str(profile.home)) as instance:
            # `dagster job backfill` submits one run per day; the daemon launches them onto the workers.
            profile.command("job", "backfill", "-w", "workspace.yaml", "-j", "daily_pipeline",
                            "--from", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat(), "--noprompt")
            try:
                runs = poll("both backfill runs to finish", lambda: _finished_backfill_runs(instance, len(DAYS)),
                            timeout=420)
            except TimeoutError as exc:  # say where the runs are, and what the workers said
                raise AssertionError(f"{exc}:\n{_describe(instance)}\n{profile.logs['workers'].read_text()[-3000:]}") from None
            assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
            # Each ran inside a Celery worker process, not in the daemon or this test.
            workers = {run.run_id: [e.message for e in instance.all_logs(run.run_id)
                                    if "Executing steps in process" in (e.message or "")] for run in runs}
            assert all(run.tags.get("dagster-celery/task_id") for run in runs)
            assert all(len(messages) == 1 for messages in workers.values()), workers
            # docs/distributed.md's command that lists the workers, as written.
            listing = re.search(r"`(\.venv/bin/celery [^`]+ status)` lists", (PROJECT / "docs" / "distributed.md")
                                .read_text()).group(1)
            listed = subprocess.run(listing, shell=True, cwd=PROJECT, env=profile.env, capture_output=True, text=True,
                                    timeout=PATIENCE)
            assert listed.returncode == 0 and "1 node online" in listed.stdout, listed.stdout + listed.stderr
        assert "Task execute_job" in profile.logs["workers"].read_text()
        assert_tables_match_files(settings)
        distributed = table_digests(settings)

    single = Settings(data_dir=tmp_path / "single", traffic_log_dir=settings.traffic_log_dir, start_date="2026-11-01")
    assert materialize_range(build_definitions(single), DAYS[0], DAYS[-1]).success
    assert table_digests(single) == distributed
