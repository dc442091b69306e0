"""Crashes heal by themselves and runs stop when asked: real run processes, killed and signalled.

Every run here is a real ``daily_pipeline`` run in its own process on a persistent instance (the
project's ``dagster.yaml``: SQLite storage, one slot per pool) with no daemon. A run stops itself
at the exact point under test (``support/pipeline_process.py``); nothing waits on a clock.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from packetx_lakehouse.defs.conventions import ICEBERG_POOL
from packetx_lakehouse.runner import reap_dead_runs, run_owner_tags
from packetx_lakehouse_harness.devserver import PATIENCE, poll
from packetx_lakehouse_harness.truth import assert_tables_match_files
from packetx_lakehouse_tests.support.sites import (  # noqa: F401
    Site,
    blocked_on_slot,
    logged,
    make_site,
    status,
)


@pytest.fixture
def site(make_site) -> Site:
    return make_site("site")


def _only_run_id(instance: dg.DagsterInstance) -> str:
    (run,) = instance.get_runs()
    return run.run_id


#: Where a run is killed: during each layer's write (each one's commit is about to happen).
KILL_POINTS = {
    "bronze": "commit:packetx_raw.packets",
    "silver_and_gold": "commit:packetx_gold.hourly_bandwidth",  # silver already committed
    "star_dimensions": "commit:packetx_gold.users_dim",
    "serving_duckdb": "serving",
}


def test_a_run_killed_during_any_layers_write_is_healed_by_the_next_run_without_a_daemon(make_site):
    # One site per layer, run side by side: four kills, then four healing runs.
    sites = {step: make_site(step) for step in KILL_POINTS}
    killed = {step: sites[step].run(pause_at) for step, pause_at in KILL_POINTS.items()}
    dead = {}
    for step, run in killed.items():
        run.wait_until_paused()
        run.kill()
        with sites[step].instance() as instance:
            dead[step] = _only_run_id(instance)
            assert status(instance, dead[step]) == dg.DagsterRunStatus.STARTED
            pool = "duckdb_serving" if step == "serving_duckdb" else ICEBERG_POOL
            assert [s.run_id for s in instance.event_log_storage.get_concurrency_info(pool).claimed_slots] == [dead[step]]

    # Before the reaper each of these runs waited for the dead run's slot forever.
    healing = {step: site.run() for step, site in sites.items()}
    for step, run in healing.items():
        assert run.finish()["success"], step
        with sites[step].instance() as instance:
            assert status(instance, dead[step]) == dg.DagsterRunStatus.FAILURE
            assert logged(instance, dead[step], "is gone")
            for pool in ("duckdb_serving", ICEBERG_POOL):
                info = instance.event_log_storage.get_concurrency_info(pool)
                assert not info.claimed_slots and not info.pending_steps, (step, pool)
        assert_tables_match_files(sites[step].settings)


def test_sigterm_stops_a_run_and_marks_it_canceled(site):
    run = site.run("commit:packetx_silver.packets")
    run.wait_until_paused()
    run.signal(signal.SIGTERM)
    run.signal(signal.SIGCONT)
    run.process.wait(timeout=PATIENCE)
    assert run.process.returncode == 128 + signal.SIGTERM
    with site.instance() as instance:
        run_id = _only_run_id(instance)
        assert status(instance, run_id) in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
        assert logged(instance, run_id, "Received SIGTERM")
        info = instance.event_log_storage.get_concurrency_info(ICEBERG_POOL)
        assert not info.claimed_slots and not info.pending_steps


def _hold_slot(instance: dg.DagsterInstance) -> str:
    """A live run (this test's process owns it) holding the only ``iceberg_writes`` slot."""
    run = instance.add_run(dg.DagsterRun(job_name="slot_holder", run_id="slot-holder",
                                         status=dg.DagsterRunStatus.STARTED, tags=run_owner_tags()))
    instance.event_log_storage.initialize_concurrency_limit_to_default(ICEBERG_POOL)
    claim = instance.event_log_storage.claim_concurrency_slot(ICEBERG_POOL, run.run_id, "step", 0)
    assert claim.is_claimed
    return run.run_id


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_run_that_waits_for_a_pool_slot(site, signum):
    with site.instance() as instance:
        holder = _hold_slot(instance)
        waiting = site.run()
        run_id = poll("the run to wait for the slot", lambda: blocked_on_slot(instance), interval=0.1)
        waiting.signal(signum)
        # Before: the signal was only noted, and the run kept waiting for as long as the slot was held.
        waiting.process.wait(timeout=60)
        assert waiting.process.returncode == 128 + signum
        assert status(instance, run_id) == dg.DagsterRunStatus.CANCELED
        assert logged(instance, run_id, f"Received {signal.Signals(signum).name}")
        info = instance.event_log_storage.get_concurrency_info(ICEBERG_POOL)
        assert [(s.run_id, s.step_key) for s in info.pending_steps] == [(holder, "step")]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far (``/proc/<pid>/stat`` fields 14-15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: How long the CPU a waiting run uses is measured: a measurement window, not a synchronisation.
WAIT_MEASURED_SECONDS = 8


def test_a_run_waiting_for_a_pool_slot_uses_almost_no_cpu(site):
    with site.instance() as instance:
        _hold_slot(instance)
        waiting = site.run()
        run_id = poll("the run to wait for the slot", lambda: blocked_on_slot(instance), timeout=120, interval=0.1)
        cpu, wall = _cpu_seconds(waiting.pid), time.monotonic()
        time.sleep(WAIT_MEASURED_SECONDS)
        share = (_cpu_seconds(waiting.pid) - cpu) / (time.monotonic() - wall)
        still_waiting = waiting.process.poll() is None and blocked_on_slot(instance) == run_id
        waiting.kill()
    print(f"a run waiting for a pool slot used {share:.1%} of a core over {WAIT_MEASURED_SECONDS} s")
    assert still_waiting, waiting.output()
    # Before: the main thread spun in Dagster's claim loop (a 0 s sleep between claims): 43-76 % of a core.
    assert share < 0.2, f"a run waiting for a pool slot used {share:.0%} of a core"


def test_a_run_killed_while_waiting_for_a_slot_does_not_block_the_next_run(site):
    with site.instance() as instance:
        holder = _hold_slot(instance)
        waiting = site.run()
        dead = poll("the run to wait for the slot", lambda: blocked_on_slot(instance), interval=0.1)
        waiting.kill()
        # The holder's step finishes: its slot goes to the first step in the queue, the dead run's.
        instance.event_log_storage.free_concurrency_slots_for_run(holder)
        assert [s.run_id for s in instance.event_log_storage.get_concurrency_info(ICEBERG_POOL).pending_steps] == [dead]
        instance.delete_run(holder)

    assert site.run().finish()["success"]
    with site.instance() as instance:
        assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    assert_tables_match_files(site.settings)


@pytest.mark.parametrize("fault", ["", "reap-fails-once"], ids=["as-is", "first-reap-fails"])
def test_a_running_run_heals_a_dead_runs_step_queued_ahead_of_it(site, fault):
    """The issue's variant: A holds the slot; C waits for it and is killed; when A's step ends the
    slot goes to C's dead step, and A, waiting for it for its next step, would hang forever.

    ``first-reap-fails`` is finding 9b: the watcher that heals this once failed at its first reap
    (a lazy-import race in SQLAlchemy) and died, and A then waited forever (> 8 min)."""
    holder = site.run("archived", fault=fault)
    holder.wait_until_paused()  # in bronze, holding the only iceberg_writes slot
    with site.instance() as instance:
        waiting = site.run()
        dead = poll("the second run to wait for the slot", lambda: blocked_on_slot(instance),
                    interval=0.1)
        waiting.kill()
        holder.signal(signal.SIGCONT)
        assert holder.finish()["success"]
        assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
        assert logged(instance, dead, "is gone")
    if fault:
        assert "partially initialized module" in holder.output()  # the injected failure happened, and was logged
    assert_tables_match_files(site.settings)


def test_the_reaper_leaves_live_runs_and_other_hosts_runs_alone(site):
    with site.instance() as instance:
        live = instance.add_run(dg.DagsterRun(job_name="x", run_id="live", status=dg.DagsterRunStatus.STARTED,
                                              tags=run_owner_tags()))
        elsewhere = instance.add_run(dg.DagsterRun(
            job_name="x", run_id="elsewhere", status=dg.DagsterRunStatus.STARTED,
            tags={**run_owner_tags(), "packetx/host": "another-host", "packetx/pid": "1"}))
        # pid 1 exists, but a pid whose start time differs is a reused pid: that run is dead.
        reused = instance.add_run(dg.DagsterRun(
            job_name="x", run_id="reused", status=dg.DagsterRunStatus.STARTED,
            tags={**run_owner_tags(), "packetx/pid": "1", "packetx/process-start": "-1"}))
        assert reap_dead_runs(instance) == [reused.run_id]
        assert status(instance, live.run_id) == status(instance, elsewhere.run_id) == dg.DagsterRunStatus.STARTED
