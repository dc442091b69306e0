"""Every private Dagster name the product uses, in one place (Dagster 1.13).

Dagster has no public API for these four needs. Each use is as small as it can be, falls back to
Dagster's own behaviour when the private name is gone, and is pinned by
``packetx_lakehouse_tests/test_dagster_internals.py``, which fails on an upgrade that changes a
name, an attribute or the behaviour relied on. Nothing else in ``packetx_lakehouse`` may import
``dagster._...`` (the same test checks it).

1. :func:`install_claim_wait` fixes two faults of Dagster's in-process executor while a step
   waits for a pool slot: it busy-waits (``InstanceConcurrencyContext
   .interval_to_next_pending_claim_check`` returns ``min(0, ...)``, never a positive time, so
   ``ActiveExecution.sleep_til_ready`` never sleeps: 43-76 % of a core per waiting run), and it
   never looks at the interrupt Dagster captured from SIGINT/SIGTERM (only step boundaries do),
   so a waiting run ignores a stop until it gets its slot.
2. :func:`event_of_record`: the Dagster event a logger's record carries (a run's progress as it
   happens; ``execute_in_process`` returns only at the end).
3. :func:`runs_of_one_host`: whether run storage is SQLite, i.e. one host's by construction.
4. :func:`on_latest_materialization`: a day's check evaluation (an ``AssetCheckEvaluation`` built
   by hand, since a range run's ``AssetCheckResult`` has no partition) naming the day's latest
   materialisation as its target, as Dagster does for the results it builds: a partitioned check's
   result counts only while it targets the latest materialisation of its partition.

The instance YAML files also name ``dagster._core.storage`` classes (``local_artifact_storage``,
``compute_logs``), as Dagster's instance reference documents them; the contract test checks
those too.
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import dagster as dg

#: How often a run that waits for a pool slot wakes up to see whether it was asked to stop.
#: Dagster itself re-tries the claim on its own back-off (1 s growing to 15 s).
CLAIM_WAIT_POLL_SECONDS = 0.5

_PATCHED = "__packetx_claim_wait__"


def install_claim_wait() -> bool:
    """Make a run waiting for a pool slot sleep, and stop when Dagster has captured an interrupt.

    Replaces ``ActiveExecution.sleep_til_ready``, which Dagster's in-process step loop calls
    only when no step can start (a step waits for a slot or for a retry). Idempotent; returns
    False, leaving Dagster as it is, when the names it needs are gone (the contract test says so).
    """
    try:
        from dagster._core.execution.plan.active import ActiveExecution
        from dagster._utils.interrupts import check_captured_interrupt
    except ImportError as error:
        warnings.warn(f"Dagster changed ({error}): runs waiting for a pool slot busy-wait again", stacklevel=2)
        return False
    original = getattr(ActiveExecution, "sleep_til_ready", None)
    if original is None or not hasattr(ActiveExecution, "sleep_interval"):
        warnings.warn("Dagster changed (ActiveExecution.sleep_til_ready/sleep_interval): runs waiting for a "
                      "pool slot busy-wait again", stacklevel=2)
        return False
    if getattr(original, _PATCHED, False):
        return True

    def sleep_til_ready(self: Any) -> None:
        if check_captured_interrupt():
            # What Dagster raises at the next step boundary; it then frees the run's place in the
            # slot queues (InstanceConcurrencyContext.__exit__) and ends the run as interrupted.
            raise dg.DagsterExecutionInterruptedError()
        # Dagster's own interval when a step waits for a retry; never 0 s while a claim is pending.
        interval = self.sleep_interval()
        time.sleep(min(interval, CLAIM_WAIT_POLL_SECONDS) if interval > 0 else CLAIM_WAIT_POLL_SECONDS)

    setattr(sleep_til_ready, _PATCHED, True)
    sleep_til_ready.__wrapped__ = original  # type: ignore[attr-defined]
    ActiveExecution.sleep_til_ready = sleep_til_ready  # type: ignore[method-assign]
    return True


def event_of_record(record: logging.LogRecord) -> dg.DagsterEvent | None:
    """The Dagster event a record handed to a run's logger describes, if any.

    Dagster puts it on the record as ``dagster_meta["dagster_event"]`` (``dagster._core.log_manager``);
    without it (a changed Dagster) progress is simply not reported.
    """
    event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
    return event if isinstance(event, dg.DagsterEvent) else None


def runs_of_one_host(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's runs are all of this host: SQLite run storage is a local file.

    Without the private class (a changed Dagster) this answers False: only runs that name their
    owner's host are then healed, never a run that might be another host's.
    """
    try:
        from dagster._core.storage.runs import SqliteRunStorage
    except ImportError:
        return False
    return isinstance(instance.run_storage, SqliteRunStorage)


#: Latest materialisations already looked up, by (asset key, partition): see ``on_latest_materialization``.
KnownTargets = dict[tuple[dg.AssetKey, str], object]


def on_latest_materialization(
    evaluation: dg.AssetCheckEvaluation, instance: dg.DagsterInstance, known: KnownTargets | None = None
) -> dg.AssetCheckEvaluation:
    """``evaluation`` targeting the latest materialisation of its asset's partition (as of now).

    ``known``: the targets a caller already looked up, filled in here; several checks of one
    asset-day then cost one query (the caller forgets an asset's entries when it materialises again).
    Without the private class (a changed Dagster) the evaluation is returned as it is: the UI then
    shows the day's check as not evaluated after the materialisation, never a wrong result.
    """
    if evaluation.partition is None:
        return evaluation
    try:
        from dagster._core.definitions.asset_checks.asset_check_evaluation import (
            AssetCheckEvaluationTargetMaterializationData,
        )
    except ImportError:
        return evaluation
    key = (evaluation.asset_key, evaluation.partition)
    if known is None or key not in known:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=evaluation.asset_key, asset_partitions=[evaluation.partition]), limit=1
        ).records
        found = AssetCheckEvaluationTargetMaterializationData(
            run_id=records[0].run_id, storage_id=records[0].storage_id, timestamp=records[0].timestamp,
        ) if records else None
        if known is None:
            known = {}
        known[key] = found
    target = known[key]
    if target is None:
        return evaluation
    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key, check_name=evaluation.check_name, passed=evaluation.passed,
        metadata=evaluation.metadata, target_materialization_data=target, severity=evaluation.severity,
        description=evaluation.description, blocking=evaluation.blocking, partition=evaluation.partition,
    )
