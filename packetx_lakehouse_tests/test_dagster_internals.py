"""The contract with Dagster's private names (``packetx_lakehouse/dagster_internals.py``).

Fails on a Dagster upgrade that renames or reshapes what the adapter uses, or changes the
behaviour it corrects, so that the adapter is revisited before a run misbehaves: read each
failure's message for what to do.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
import threading
from pathlib import Path

import dagster as dg
import pytest
import yaml

from packetx_lakehouse import dagster_internals
from packetx_lakehouse.dagster_internals import event_of_record, install_claim_wait, runs_of_one_host

PROJECT = Path(__file__).resolve().parents[1]
POOL = "contract_pool"


def test_only_the_adapter_names_private_dagster_modules():
    private = re.compile(r"\bdagster\._\w")
    offenders = [str(path.relative_to(PROJECT)) for path in (PROJECT / "packetx_lakehouse").rglob("*.py")
                 if path.name != "dagster_internals.py" and private.search(path.read_text())]
    assert offenders == [], "import private Dagster names only in packetx_lakehouse/dagster_internals.py"


def test_the_private_names_the_adapter_uses_exist():
    from dagster._core.execution.plan.active import ActiveExecution
    from dagster._core.execution.plan.execute_plan import inner_plan_execution_iterator
    from dagster._core.storage.runs import SqliteRunStorage
    from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

    assert callable(ActiveExecution.sleep_interval) and callable(ActiveExecution.sleep_til_ready)
    assert callable(capture_interrupts) and callable(check_captured_interrupt) and SqliteRunStorage
    # The in-process step loop waits through sleep_til_ready when no step can start: the patch point.
    import inspect

    assert "active_execution.sleep_til_ready()" in inspect.getsource(inner_plan_execution_iterator)


def test_a_day_check_targets_the_day_s_latest_materialisation_as_dagster_s_own_results_do():
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    assert set(AssetCheckEvaluationTargetMaterializationData.__annotations__) >= {"storage_id", "run_id", "timestamp"}
    key = dg.AssetKey("day_table")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="2026-11-21"))
        evaluation = dg.AssetCheckEvaluation(asset_key=key, check_name="c", passed=False, partition="2026-11-21")
        targeted = dagster_internals.on_latest_materialization(evaluation, instance)
        (record,) = instance.fetch_materializations(key, limit=1).records
    assert targeted.target_materialization_data.storage_id == record.storage_id
    assert (targeted.passed, targeted.partition) == (False, "2026-11-21")


def test_the_checks_of_one_asset_day_share_one_lookup_until_the_caller_forgets_it():
    key, day = dg.AssetKey("day_table"), "2026-11-21"
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
        known = {}
        first = dagster_internals.on_latest_materialization(
            dg.AssetCheckEvaluation(asset_key=key, check_name="a", passed=True, partition=day), instance, known)
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
        second = dagster_internals.on_latest_materialization(
            dg.AssetCheckEvaluation(asset_key=key, check_name="b", passed=True, partition=day), instance, known)
        fresh = dagster_internals.on_latest_materialization(
            dg.AssetCheckEvaluation(asset_key=key, check_name="b", passed=True, partition=day), instance)
        newest = instance.fetch_materializations(key, limit=1).records[0].storage_id
    assert list(known) == [(key, day)]
    assert first.target_materialization_data == second.target_materialization_data
    assert fresh.target_materialization_data.storage_id == newest != first.target_materialization_data.storage_id


def test_dagster_still_busy_waits_for_a_pool_slot_without_the_adapter():
    """If this fails, Dagster sleeps between claims by itself now: ``install_claim_wait`` may go,
    once Dagster also honours a captured interrupt while a step waits for a slot."""
    from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        assert storage.claim_concurrency_slot(POOL, "holder", "step", 0).is_claimed
        run = instance.add_run(dg.DagsterRun(job_name="waiter", run_id="waiter"))
        with InstanceConcurrencyContext(instance, run) as context:
            assert not context.claim(POOL, "step")
            assert context.interval_to_next_pending_claim_check() <= 0  # min(0, ...): never a positive sleep


def test_dagster_captures_sigint_and_sigterm_as_the_interrupt_the_adapter_checks():
    from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        with capture_interrupts():
            assert not check_captured_interrupt()
            os.kill(os.getpid(), signum)
            assert check_captured_interrupt(), signal.Signals(signum).name


@dg.op(pool=POOL)
def _pooled_op() -> int:
    return 1


@dg.job(executor_def=dg.in_process_executor)
def _pooled_job() -> None:
    _pooled_op()


def test_a_run_waiting_for_a_slot_stops_on_sigint_and_its_events_reach_a_logger():
    """The adapter's behaviour in one real in-process run: it waits for a held slot, its events reach
    a logger as they happen, and a SIGINT sent while it waits ends it with its queue place freed."""
    assert install_claim_wait()
    seen: list[dg.DagsterEvent] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = event_of_record(record)
            if event is not None:
                seen.append(event)
                if "blocked by limit" in (event.message or ""):
                    os.kill(os.getpid(), signal.SIGINT)  # in the main thread, as a user's Ctrl-C

    @dg.logger
    def collect(_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("contract", logging.DEBUG)
        logger.addHandler(Collect())
        return logger

    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(POOL, 1)
        assert storage.claim_concurrency_slot(POOL, "holder", "step", 0).is_claimed
        # Should the stop fail, the slot is released after a while: the test then fails, never hangs.
        release = threading.Timer(60, storage.free_concurrency_slots_for_run, args=["holder"])
        release.start()
        try:
            with pytest.raises(dg.DagsterExecutionInterruptedError):
                _pooled_job.with_logger_defs({"collect": collect}).execute_in_process(
                    instance=instance, run_config={"loggers": {"collect": {}}})
        finally:
            release.cancel()
        assert [s.run_id for s in storage.get_concurrency_info(POOL).pending_steps] == ["holder"]
        assert dg.DagsterEventType.RUN_START in {e.event_type for e in seen}
        assert any("blocked by limit" in (e.message or "") for e in seen)


def test_sqlite_run_storage_is_recognised_as_one_hosts():
    with dg.instance_for_test() as instance:
        assert runs_of_one_host(instance)
    assert not runs_of_one_host(dg.DagsterInstance.ephemeral())


def test_install_claim_wait_is_idempotent():
    from dagster._core.execution.plan.active import ActiveExecution

    assert install_claim_wait() and install_claim_wait()
    patched = ActiveExecution.sleep_til_ready
    assert getattr(patched, "__wrapped__", None) is not None
    assert not getattr(patched.__wrapped__, "__packetx_claim_wait__", False)  # wrapped Dagster's own, once


@pytest.mark.parametrize("path", ["deploy/dagster.postgres.yaml", "deploy/dagster.celery.yaml"])
def test_the_classes_the_instance_files_name_exist(path):
    """The production instance files name storage classes by module, as Dagster's instance reference does
    (the local ``dagster.yaml`` names none: Dagster's defaults under DAGSTER_HOME)."""

    def named(node: object):
        if isinstance(node, dict):
            if "module" in node and "class" in node:
                yield node["module"], node["class"]
            for value in node.values():
                yield from named(value)

    classes = list(named(yaml.safe_load((PROJECT / path).read_text())))
    assert classes
    for module, name in classes:
        assert hasattr(importlib.import_module(module), name), f"{path}: {module}.{name} is gone"


def test_every_private_module_the_adapter_imports_exists():
    text = Path(dagster_internals.__file__).read_text()
    for module in re.findall(r"from (dagster\._[\w.]+) import", text):
        importlib.import_module(module)
