"""The distributed profile measured: a 14-day range as a backfill on 1 and on 2 Celery workers.

``packetx-lakehouse bench --celery [--small] [--json PATH]`` (from the checkout). The profile is
the real one (``deploy/dagster.celery.yaml``, ``deploy/start-workers.sh``): ``dagster dev``
serves the instance (webserver + daemon), the backfill is launched as the UI launches it, the
daemon queues its runs and launches them onto the workers, which write to an Iceberg catalog on
PostgreSQL. ``PACKETX_BACKFILL_DAYS_PER_RUN`` = 7 cuts the 14 days into two runs, one per worker
when there are two. Every configuration starts from an empty lakehouse over the same landing
files; the tables of both are compared with those of one in-process run of the whole range.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import (
    BENCH_START,
    FULL,
    SMALL,
    Profile,
    generate_logs,
    run_worker,
)

DAYS = 14
DAYS_PER_RUN = 7
WORKER_COUNTS = (1, 2)


def _link_landing(logs: Path, data_dir: Path) -> None:
    landing = data_dir / "traffic_log"
    landing.mkdir(parents=True, exist_ok=True)
    for path in sorted(logs.glob("*.csv")):
        os.link(path, landing / path.name)


def _settings(data_dir: Path, catalog_url: str = ""):
    from packetx_lakehouse.settings import Settings

    return Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=BENCH_START.isoformat(),
                    catalog_url=catalog_url)


def measure_celery(root: Path, logs: Path, workers: int, days: list[dt.date]) -> dict[str, Any]:
    """One backfill of ``days`` through the profile with ``workers`` workers, on empty storage."""
    from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
    from packetx_lakehouse_harness.celery_profile import CeleryProfile
    from packetx_lakehouse_harness.devserver import DagsterDev, poll
    from packetx_lakehouse_harness.postgres import fresh_database
    from packetx_lakehouse_harness.truth import table_digests

    base = root / f"celery-{workers}"
    with fresh_database("packetx_bench_dagster") as dagster_url, fresh_database("packetx_bench_catalog") as catalog_url:
        profile = CeleryProfile.configure(base, dagster_db_url=dagster_url, catalog_url=catalog_url, workers=workers,
                                          extra_env={"PACKETX_START_DATE": BENCH_START.isoformat(),
                                                     "PACKETX_BACKFILL_DAYS_PER_RUN": str(DAYS_PER_RUN)})
        _link_landing(logs, base / "data")
        profile.start(daemon=False)
        try:
            with DagsterDev.start(base, dagster_home=profile.home, env=profile.env, timeout=180) as server:
                cpu_before = profile.worker_cpu_seconds()
                launched = time.time()
                backfill = server.launch_backfill([d.isoformat() for d in days], job=DAILY_PIPELINE)
                runs = poll("every run of the backfill to finish", lambda: _finished(server, backfill),
                            timeout=3600, interval=1)
                done = time.time()
                cpu = profile.worker_cpu_seconds() - cpu_before
        finally:
            profile.stop()
        failed = [run["runId"] for run in runs if run["status"] != "SUCCESS"]
        if failed:
            raise RuntimeError(f"backfill runs failed: {failed}; see {base}")
        digests = table_digests(_settings(base / "data", catalog_url))
        redone = _count_logged(dagster_url, "rebuilding from fresh input")
        steps = _step_seconds(dagster_url)
    return {
        "workers": workers,
        "runs": len(runs),
        "launch_to_done_seconds": done - launched,
        "runs_span_seconds": max(r["endTime"] for r in runs) - min(r["startTime"] for r in runs),
        "run_seconds": sorted(r["endTime"] - r["startTime"] for r in runs),
        "worker_cpu_seconds": cpu,
        # Steps that found newer sources committed by the other run and rebuilt (dimensions, anomalies).
        "steps_redone_after_a_refused_commit": redone,
        # Seconds per step, summed over the runs (STEP_START to STEP_SUCCESS, waits for slots excluded).
        "step_seconds": steps,
        "load_average_1m": os.getloadavg()[0],
        "digests": digests,
    }


def _count_logged(dagster_url: str, text: str) -> int:
    """Event-log entries of the instance whose text contains ``text``."""
    import psycopg

    with psycopg.connect(dagster_url) as connection:
        return connection.execute("SELECT count(*) FROM event_logs WHERE event LIKE %s", (f"%{text}%",)).fetchone()[0]


def _step_seconds(dagster_url: str) -> dict[str, float]:
    """Every step's seconds from STEP_START to STEP_SUCCESS, summed over the instance's runs."""
    import psycopg

    with psycopg.connect(dagster_url) as connection:
        rows = connection.execute(
            "SELECT run_id, step_key, dagster_event_type, timestamp FROM event_logs "
            "WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') ORDER BY id").fetchall()
    started, seconds = {}, {}
    for run_id, step, kind, at in rows:
        if kind == "STEP_START":
            started[run_id, step] = at
        elif (run_id, step) in started:
            seconds[step] = seconds.get(step, 0.0) + (at - started[run_id, step]).total_seconds()
    return {step: round(value, 1) for step, value in sorted(seconds.items())}


def _finished(server, backfill_id: str) -> list[dict[str, Any]] | None:
    runs = server.backfill_runs(backfill_id)
    expected = -(-DAYS // DAYS_PER_RUN)
    finished = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
    return runs if len(runs) == expected and len(finished) == expected else None


def run_celery_bench(profile: Profile, keep: Path | None = None) -> dict[str, Any]:
    from packetx_lakehouse_harness.celery_profile import broker_and_backend
    from packetx_lakehouse_harness.truth import table_digests

    root = Path(tempfile.mkdtemp(prefix="packetx-bench-celery-", dir=keep))
    device_days = profile.users * DAYS
    days = [BENCH_START + dt.timedelta(days=n) for n in range(DAYS)]
    try:
        started = time.perf_counter()
        logs = root / "logs"
        generate_logs(logs, users=profile.users, days=DAYS, pairs=profile.pairs_per_minute)
        single_dir = root / "in-process"
        _link_landing(logs, single_dir)
        single = run_worker("pipeline", single_dir, first=days[0].isoformat(), last=days[-1].isoformat(),
                            reference=False)
        single_digests = table_digests(_settings(single_dir))
        with broker_and_backend():
            measured = {n: measure_celery(root, logs, n, days) for n in WORKER_COUNTS}
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    one, two = measured[1], measured[2]
    return {
        "profile": profile.name,
        "users": profile.users,
        "days": DAYS,
        "days_per_run": DAYS_PER_RUN,
        "rows": single["rows"],
        "cpus": os.cpu_count(),
        "in_process_seconds": round(single["pipeline_seconds"], 1),
        "in_process_cpu_seconds_per_device_day": round(single["pipeline_cpu_seconds"] / device_days, 2),
        "in_process_peak_rss_mb": round(single["peak_rss_mb"]),
        **{f"celery_{n}_{key}": _round(value) for n, result in measured.items()
           for key, value in result.items() if key not in ("workers", "digests")},
        "in_process_step_seconds": {k: round(v, 1) for k, v in single["step_seconds"].items()},
        **{f"celery_{n}_cpu_seconds_per_device_day": round(result["worker_cpu_seconds"] / device_days, 2)
           for n, result in measured.items()},
        # Cores the workers kept busy on average while runs were in flight: the ceiling of a speed-up.
        **{f"celery_{n}_cores_used": round(result["worker_cpu_seconds"] / result["runs_span_seconds"], 2)
           for n, result in measured.items()},
        "in_process_cores_used": round(single["pipeline_cpu_seconds"] / single["pipeline_seconds"], 2),
        "speedup_runs_span": round(one["runs_span_seconds"] / two["runs_span_seconds"], 2),
        "speedup_launch_to_done": round(one["launch_to_done_seconds"] / two["launch_to_done_seconds"], 2),
        "tables_identical_1_2_in_process": one["digests"] == two["digests"] == single_digests,
        "tables_compared": len(single_digests),
        "rows_per_table": {name: count for name, (count, _) in single_digests.items()},
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def format_table(result: dict[str, Any]) -> str:
    device_days = result["users"] * result["days"]
    lines = [
        f"PacketX distributed profile ({result['profile']}): {result['users']} users x {result['days']} days "
        f"({device_days} device-days, {result['rows']:,} rows), {result['days_per_run']} days per backfill run, "
        f"{result['cpus']} CPUs",
        "",
        f"{'configuration':<26} {'runs':>4} {'launch->done':>13} {'runs span':>10} {'CPU s/device-day':>17} "
        f"{'cores used':>10} {'load':>5}",
        f"{'-' * 26} {'-' * 4} {'-' * 13} {'-' * 10} {'-' * 17} {'-' * 10} {'-' * 5}",
        f"{'in process, one run':<26} {1:>4} {result['in_process_seconds']:>12.1f}s {'':>10} "
        f"{result['in_process_cpu_seconds_per_device_day']:>17.2f} {result['in_process_cores_used']:>10.2f} {'':>5}",
    ]
    for n in WORKER_COUNTS:
        lines.append(
            f"{f'Celery, {n} worker(s)':<26} {result[f'celery_{n}_runs']:>4} "
            f"{result[f'celery_{n}_launch_to_done_seconds']:>12.1f}s {result[f'celery_{n}_runs_span_seconds']:>9.1f}s "
            f"{result[f'celery_{n}_cpu_seconds_per_device_day']:>17.2f} {result[f'celery_{n}_cores_used']:>10.2f} "
            f"{result[f'celery_{n}_load_average_1m']:>5.1f}")
    lines += [
        "",
        f"speed-up 2 workers / 1: {result['speedup_runs_span']:.2f}x (runs span), "
        f"{result['speedup_launch_to_done']:.2f}x (launch -> done)",
        f"tables identical (1 worker, 2 workers, in process; {result['tables_compared']} tables): "
        f"{result['tables_identical_1_2_in_process']}",
        "",
        "step seconds (summed over runs): " + "; ".join(
            f"{label} " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in steps.items())
            for label, steps in (("in process:", result["in_process_step_seconds"]),
                                 *((f"{n} worker(s):", result[f"celery_{n}_step_seconds"]) for n in WORKER_COUNTS))),
    ]
    return "\n".join(lines)


def main(small: bool = False, json_path: Path | None = None, keep: Path | None = None) -> int:
    result = run_celery_bench(SMALL if small else FULL, keep=keep)
    print(format_table(result))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nresults written to {json_path}")
    return 0 if result["tables_identical_1_2_in_process"] else 1
