"""Run the lakehouse in process over a range of days (demo, benchmarks, tests).

A range runs as ONE run of the ``daily_pipeline`` job, tagged with the partition range exactly
as a backfill under the job's policy is: the same job the sensor, the schedule and backfills
launch, with start-up paid once rather than once per day.

In-process runs have no daemon watching them, so this module does the part of run monitoring
they need: before a run starts it fails the runs that a dead process left behind on this host and
frees their pool slots (``reap_dead_runs``), and again while the run waits for a slot; a run
asked to stop by SIGTERM or SIGINT stops, marked canceled, even while it waits for a pool slot
(Dagster's own interrupt, honoured while waiting by ``dagster_internals.install_claim_wait``).
Each watcher survives a failed tick: one error never leaves a run waiting forever.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import dagster as dg

from packetx_lakehouse.dagster_internals import event_of_record, install_claim_wait, runs_of_one_host
from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.lib.ingest.landing import group_landing_by_day
from packetx_lakehouse.lib.ingest.problems import LandingProblem
from packetx_lakehouse.lib.storage.objectstore import ObjectStore, write_bytes_atomically
from packetx_lakehouse.settings import Settings

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: Who runs an in-process run: the reaper of a later run tells a dead owner from a live one.
PID_TAG, HOST_TAG, PROCESS_START_TAG = "packetx/pid", "packetx/host", "packetx/process-start"
#: On a run that builds on the days another range run left to it (that run stopped on some day).
AFTER_RUN_TAG = "packetx/after-run"
#: A finished run launched by someone else may still have step processes holding slots for a
#: moment (Dagster's run monitoring waits too, see ``free_slots_after_run_end_seconds``).
FINISHED_RUN_SLOT_GRACE_SECONDS = 60
#: How often a run that waits for a pool slot checks for dead runs holding or queued for it.
REAP_INTERVAL_SECONDS = 5
ACTIVE_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                   dg.DagsterRunStatus.CANCELING]

log = logging.getLogger(__name__)


class RunStopped(SystemExit):
    """The run was stopped by SIGTERM/SIGINT: the process exits with 128 + the signal number."""

    def __init__(self, run_id: str, signum: int) -> None:
        super().__init__(128 + signum)
        self.run_id = run_id
        self.signal_name = signal.Signals(signum).name


def prepare_instance_home(settings: Settings, project_dir: Path | None = None) -> Path | None:
    """``settings.dagster_home`` holding the project's ``dagster.yaml``; ``None`` outside a checkout.

    The project's file names no storage path, so Dagster keeps runs, events, schedules and its own
    housekeeping (telemetry queues) under that home: beside the lakehouse's data, never in the
    checkout, and a second data directory gets a second instance by itself.
    """
    source = (project_dir or Path.cwd()) / "dagster.yaml"
    if not source.is_file():
        return None
    home = settings.dagster_home.resolve()
    target = home / "dagster.yaml"
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        home.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(target, source.read_bytes())
    return home


def project_instance(settings: Settings, project_dir: Path | None = None) -> dg.DagsterInstance:
    """The instance the UI reads: ``$DAGSTER_HOME``, else the lakehouse's own (:func:`prepare_instance_home`),
    else (no checkout) a throw-away one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    home = prepare_instance_home(settings, project_dir)
    return dg.DagsterInstance.from_config(str(home)) if home else dg.DagsterInstance.ephemeral()


def landing_days(landing: ObjectStore) -> tuple[list[dt.date], list[LandingProblem]]:
    """The days that have traffic-log files, and what in the landing area is not one (with why)."""
    by_day, problems = group_landing_by_day(landing)
    return sorted(by_day), problems


def materialize_range(
    defs: dg.Definitions,
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance | None = None,
    selection: str | None = None,
    raise_on_error: bool = True,
    log_level: str = "INFO",
    on_event: Callable[[dg.DagsterEvent], None] | None = None,
    tags: Mapping[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialise every (selected) asset of ``daily_pipeline`` for the days ``first..last`` in one run.

    ``tags`` are added to the run's (e.g. the landing sensor's refresh tag, ``defs/conventions.py``).

    A day that fails a blocking check (bronze: a file whose rows are not on its date) fails the
    run, naming it; the range's other days are then built on by one run per contiguous stretch of
    them (tagged ``packetx/after-run``), so one bad file stops its own day only. The failed run's
    result is returned (or, with ``raise_on_error``, raised as a ``dg.Failure`` naming what failed).

    Raises:
        RunStopped: when SIGTERM or SIGINT stopped the run (it is then marked canceled).
    ``on_event`` hears each Dagster event as it happens (a command line's progress bar).
    """
    job = defs.resolve_job_def(DAILY_PIPELINE)
    loggers: dict[str, object] = {"console": {"config": {"log_level": log_level}}}
    if on_event is not None:
        job = job.with_logger_defs({**job.loggers, "events": _event_logger(on_event)})
        loggers["events"] = {}
    owned = instance is None
    instance = instance or dg.DagsterInstance.ephemeral()
    install_claim_wait()
    keys = sorted(dg.AssetSelection.from_string(selection).resolve(defs.resolve_asset_graph())) if selection else None

    def run(start: dt.date, end: dt.date, asset_selection: list[dg.AssetKey] | None,
            extra: Mapping[str, str]) -> dg.ExecuteInProcessResult:
        run_id = str(uuid.uuid4())
        with _stopped_by_signals(instance, run_id) as received, _reaping_while_waiting(instance, run_id):
            try:
                result = job.execute_in_process(
                    instance=instance, run_id=run_id,
                    tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), **run_owner_tags(),
                          **(tags or {}), **extra},
                    asset_selection=asset_selection, raise_on_error=False, run_config={"loggers": loggers},
                )
            except dg.DagsterExecutionInterruptedError:
                if not received:
                    raise
        if received:
            _finish_stopped_run(instance, run_id, received[0])
            raise RunStopped(run_id, received[0])
        return result

    try:
        _reap_tick(instance, "Run %s was left running by a process that is gone: marked failed, its pool slots freed")
        result = run(first, last, keys, {})
        blocked = blocked_days(result)
        if blocked and first != last:
            # The range's other days are built on from what the run materialised for them: Dagster
            # cannot fail one day of a range run, so the blocked days stay failed with that run.
            done = {event.asset_key for event in result.get_asset_materialization_events()}
            rest = [key for key in (keys or sorted(job.asset_layer.executable_asset_keys)) if key not in done]
            days = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
            for start, end in day_ranges(day for day in days if day not in blocked):
                log.warning("%s..%s: building on after run %s stopped on %s", start, end, result.run_id,
                            ", ".join(map(str, blocked)))
                run(start, end, rest, {AFTER_RUN_TAG: result.run_id})
        if raise_on_error and not result.success:
            raise dg.Failure(description=f"Run {result.run_id} failed: {failure_message(result)}"
                             + (f"\nThe other days were built by the runs after it (tag {AFTER_RUN_TAG}={result.run_id})."
                                if blocked and first != last else ""))
        return result
    finally:
        if owned:
            instance.dispose()


def blocked_days(result: dg.ExecuteInProcessResult) -> list[dt.date]:
    """The days on which a blocking check failed in ``result``'s run (its day partitions)."""
    return sorted({dt.date.fromisoformat(e.partition) for e in result.get_asset_check_evaluations()
                   if not e.passed and e.blocking and e.severity == dg.AssetCheckSeverity.ERROR and e.partition})


def day_ranges(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Stretches of consecutive days as ``(first, last)``, one run each.

    A range run records Dagster events (planned, materialised, checked) for every asset on every
    day in it, seconds per day on SQLite storage, even a day with nothing landed: captures months
    apart must not pay for each day between them, a second run's start-up costs less.
    """
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if ranges and day - ranges[-1][1] == dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """What failed in ``result``'s run: each failed step with its error's message."""
    failures = [e for e in result.all_events if e.is_step_failure]
    return "; ".join(f"{e.step_key}: {e.event_specific_data.error.message.strip()}" for e in failures) or "see its log"


class _EventHandler(logging.Handler):
    def __init__(self, on_event: Callable[[dg.DagsterEvent], None]) -> None:
        super().__init__(logging.DEBUG)
        self.on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        event = event_of_record(record)
        if event is not None:
            self.on_event(event)


def _event_logger(on_event: Callable[[dg.DagsterEvent], None]) -> dg.LoggerDefinition:
    @dg.logger(description="hands every Dagster event of the run to a callback")
    def events(_init_context: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("packetx_lakehouse.run_events", logging.DEBUG)
        logger.addHandler(_EventHandler(on_event))
        return logger

    return events


# --- who owns a run, and is it still alive --------------------------------------------------


def _process_stat(pid: int) -> tuple[str, str] | None:
    """State and start time (clock ticks after boot) of ``pid`` from ``/proc``; None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name in (...) may hold spaces
    return fields[0], fields[19]


def run_owner_tags() -> dict[str, str]:
    """Tags naming this process as the run's owner: pid, host, and the pid's start time (pids are reused)."""
    pid = os.getpid()
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    stat = _process_stat(pid)
    if stat:
        tags[PROCESS_START_TAG] = stat[1]
    return tags


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    stat = _process_stat(pid)
    if stat is None:
        return True  # no /proc: existence is all we know
    state, start = stat
    return state != "Z" and (started is None or start == started)


def _engine_event_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's pid as Dagster logged it ("Executing steps in process (pid: N)")."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        pid = (event.engine_event_data.metadata or {}).get("pid") if event else None
        if pid is not None:
            return int(pid.value)
    return None


def _dead_owner(instance: dg.DagsterInstance, run: dg.DagsterRun, host: str) -> int | None:
    """The pid of the run's owner if it is known to be dead on this host, else None."""
    if PID_TAG in run.tags:
        pid = int(run.tags[PID_TAG])
        if run.tags.get(HOST_TAG) != host or _alive(pid, run.tags.get(PROCESS_START_TAG)):
            return None
        return pid
    # Runs launched by `dagster dev` (code server, daemon) carry no tag. SQLite storage is one
    # host's by construction, so the pid Dagster logged is a pid of this host.
    if not runs_of_one_host(instance):
        return None
    pid = _engine_event_pid(instance, run.run_id)
    return pid if pid is not None and not _alive(pid, None) else None


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Close the runs a dead process left active on this host, and free pool slots nobody uses.

    Without a daemon nothing else notices a run whose process was killed (SIGKILL, the OOM
    killer): it stays STARTED and keeps its ``iceberg_writes`` slot, or its place in the slot's
    queue, and every later run waits for that slot forever. Only runs whose owner is certainly
    dead are touched: tagged by a process of this host that no longer exists (or whose pid now
    belongs to a newer process), or, on one-host SQLite storage, whose logged worker pid is gone.

    Returns:
        The ids of the runs marked failed (canceled, if they were being canceled).
    """
    host = socket.gethostname()
    reaped = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_STATUSES)):
        run = record.dagster_run
        pid = _dead_owner(instance, run, host)
        if pid is None:
            continue
        message = f"The run's process (pid {pid} on {host}) is gone; a later run closed it and freed its pool slots."
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message=message)
        else:
            instance.report_run_failed(run, message=message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    _free_slots_of_finished_runs(instance)
    return reaped


def _free_slots_of_finished_runs(instance: dg.DagsterInstance) -> None:
    """Slots still held by deleted runs, by finished in-process runs, or by runs finished long ago."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    now = dt.datetime.now(dt.UTC).timestamp()
    for run_id in storage.get_concurrency_run_ids():
        record = next(iter(instance.get_run_records(dg.RunsFilter(run_ids=[run_id]), limit=1)), None)
        if record is not None and not record.dagster_run.is_finished:
            continue
        if record is not None and PID_TAG not in record.dagster_run.tags:
            ended = record.end_time or record.update_timestamp.timestamp()
            if now - ended < FINISHED_RUN_SLOT_GRACE_SECONDS:
                continue
        storage.free_concurrency_slots_for_run(run_id)


@contextlib.contextmanager
def _reaping_while_waiting(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """While the run waits for a pool slot, reap dead runs every ``REAP_INTERVAL_SECONDS``.

    A run that was already running when another one died can find the dead run's step ahead of
    it in a slot's queue (the slot is assigned to that step, which never claims it): it must heal
    that itself, or wait forever.
    """
    if not instance.event_log_storage.supports_global_concurrency_limits:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(REAP_INTERVAL_SECONDS):
            _reap_tick(instance, "Run %s, ahead of this run in a pool's queue, was left by a process that is "
                       "gone: marked failed, its pool slots freed", when=lambda: _waiting_for_slot(instance, run_id))

    watcher = threading.Thread(target=watch, daemon=True, name="packetx-reap-while-waiting")
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=30)


def _reap_tick(instance: dg.DagsterInstance, message: str, when: Callable[[], bool] = lambda: True) -> None:
    """One pass of ``reap_dead_runs`` (if ``when()``); an error is logged and the next tick tries again.

    A watcher thread that died on its first error (once a lazy-import race in SQLAlchemy) left
    the run it watched waiting forever behind a dead run's queued step.
    """
    try:
        if not when():
            return
        for reaped in reap_dead_runs(instance):
            log.warning(message, reaped)
    except Exception:  # noqa: BLE001 - whatever failed, the next tick runs again
        log.warning("Could not check for runs left by dead processes; trying again in %d s",
                    REAP_INTERVAL_SECONDS, exc_info=True)


# --- SIGTERM / SIGINT ------------------------------------------------------------------------


@contextlib.contextmanager
def _stopped_by_signals(instance: dg.DagsterInstance, run_id: str) -> Iterator[list[int]]:
    """Turn SIGTERM/SIGINT during the run into a cancellation; yields the signals received.

    Dagster turns either signal into an interrupt at the next step boundary, but records it as an
    unexpected failure. A watcher thread, woken through ``signal.set_wakeup_fd`` (which works
    whatever handler Dagster installs), marks the run CANCELING, so Dagster ends it CANCELED; a
    run waiting for a pool slot sees Dagster's interrupt while it waits (``install_claim_wait``).
    Signal handling needs the main thread: elsewhere this does nothing.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    watcher = threading.Thread(target=_watch_signals, args=(read_fd, instance, run_id, received), daemon=True,
                               name="packetx-stop-on-signal")
    sigterm = signal.getsignal(signal.SIGTERM)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher.start()
    try:
        yield received
    finally:
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # ends the watcher's read loop
        watcher.join(timeout=10)
        os.close(read_fd)
        # Dagster leaves SIGTERM mapped to the SIGINT handler after a run: restore it.
        signal.signal(signal.SIGTERM, sigterm)


def _watch_signals(read_fd: int, instance: dg.DagsterInstance, run_id: str, received: list[int]) -> None:
    while data := os.read(read_fd, 64):
        for signum in data:
            if signum not in (signal.SIGTERM, signal.SIGINT) or received:
                continue
            received.append(signum)
            try:
                run = instance.get_run_by_id(run_id)
                if run is not None and not run.is_finished:
                    instance.report_run_canceling(run, message=f"Received {signal.Signals(signum).name}: "
                                                  "stopping the run")
            except Exception:  # noqa: BLE001 - the run still stops; _finish_stopped_run marks it canceled
                log.warning("Could not mark run %s as canceling", run_id, exc_info=True)


def _waiting_for_slot(instance: dg.DagsterInstance, run_id: str) -> bool:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    return any(step.run_id == run_id for key in storage.get_concurrency_keys()
               for step in storage.get_concurrency_info(key).pending_steps)


def _finish_stopped_run(instance: dg.DagsterInstance, run_id: str, signum: int) -> None:
    """After a stop: a run still marked CANCELING is canceled, and nothing it claimed stays claimed."""
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message=f"Stopped by {signal.Signals(signum).name}")
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
