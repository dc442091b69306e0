"""Two runs of the same day overlap: the day must end with the newest content, whatever the order.

The issue's scenario: run A reads the landing file and stalls; the file grows; run B ingests the
grown file and finishes; A resumes. Before the source-version guard both runs succeeded and A's
stale commit left bronze short and gold low for good (the file no longer changed, so nothing
re-ran). A stalls exactly at the point under test by stopping itself (``pipeline_process``).
"""

from __future__ import annotations

import signal

import dagster as dg
import pytest

from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.ingest.archive import load_manifest
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import reap_dead_runs
from packetx_lakehouse_harness.devserver import poll, write_instance_yaml
from packetx_lakehouse_harness.truth import assert_tables_match_files, scan
from packetx_lakehouse_tests.support.sites import (  # noqa: F401
    START,
    blocked_on_slot,
    logged,
    make_site,
)

#: Real run processes, stopped and resumed mid-write.
pytestmark = pytest.mark.e2e
USER = "alice"


def _split_day() -> tuple[bytes, bytes]:
    """A day's file as first written (v1), and what the device appended later."""
    data = generate_day(USER, START, seed=3, options=GeneratorOptions(minutes_per_day=60, pairs_per_minute=20,
                                                                     bad_lines=2))
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: len(lines) // 2]), b"".join(lines[len(lines) // 2:])


@pytest.fixture
def stalled_day(make_site):
    """A site whose landing holds v1 of ``alice``'s file for START (one day, so START..LAST has an empty day)."""
    site = make_site("site", seed_landing=False)
    first, rest = _split_day()
    path = site.settings.traffic_log_dir / f"{USER}-{START}.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(first)
    return site, path, rest


def _manifest_generation(site) -> int:
    return load_manifest(LocalObjectStore(site.settings.archive_dir), START).generation


@pytest.mark.parametrize("stall_at", ["landing-read", "archived"])
def test_a_stale_run_in_its_own_instance_never_overwrites_a_newer_run(stalled_day, stall_at):
    """Separate instances: nothing serialises A and B, so A's commits must be refused and redone."""
    site, path, rest = stalled_day
    other_home = site.root / "other_home"
    other_home.mkdir()
    write_instance_yaml(other_home)
    a = site.run(stall_at)
    a.wait_until_paused()
    with path.open("ab") as handle:
        handle.write(rest)
    assert site.run(home=other_home).finish()["success"]
    newest = scan(site.settings, BRONZE_PACKETS).num_rows
    generation = _manifest_generation(site)

    a.signal(signal.SIGCONT)
    assert a.finish()["success"]
    assert scan(site.settings, BRONZE_PACKETS).num_rows == newest
    assert_tables_match_files(site.settings)
    # Stalled before archiving, A's version never became a generation: B's grown file is the first.
    assert _manifest_generation(site) == generation == (1 if stall_at == "landing-read" else 2)
    with site.instance() as instance:
        (run,) = instance.get_runs()
        # A noticed: its manifest write lost the race (stalled before archiving), or its commit was
        # refused (stalled after), and it rebuilt from what is there now.
        assert logged(instance, run.run_id, "rebuilding from fresh input")


def test_a_stale_run_on_the_shared_instance_is_serialised_by_the_pool_and_the_newest_content_wins(stalled_day):
    """One instance (SQLite catalog, one ``iceberg_writes`` slot): B waits for the slot A holds."""
    site, path, rest = stalled_day
    a = site.run("archived")
    a.wait_until_paused()
    with path.open("ab") as handle:
        handle.write(rest)
    with site.instance() as instance:
        b = site.run()
        poll("the newer run to wait for the slot", lambda: blocked_on_slot(instance), interval=0.1)
        a.signal(signal.SIGCONT)
        assert a.finish()["success"]
        assert b.finish()["success"]
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in instance.get_runs())
        assert reap_dead_runs(instance) == []
    assert _manifest_generation(site) == 2
    assert_tables_match_files(site.settings)
