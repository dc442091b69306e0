"""The benchmark suite behind ``packetx-lakehouse bench [--small] [--json PATH]``.

Every measurement that runs the pipeline runs in a fresh child process (``python -m
benchmarks.run worker ...``) with its own temporary data directory, so it pays its own imports
and start-up, cannot be helped by an earlier one's caches, and reports its own peak RSS.
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import maintenance
from benchmarks.workload import (
    BENCH_START,
    FULL,
    SEED,
    SMALL,
    Profile,
    generate_logs,
    generator_options,
    peak_rss_mb,
    run_worker,
    worker_settings,
)

# --- in the worker process -------------------------------------------------------------------


#: The steps of a run (ops of the daily job) that take data from bronze to gold, without serving.
TO_GOLD_STEPS = ("bronze_to_gold", "traffic_anomalies", "star_dimensions")


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS of every step of a run."""
    from dagster import DagsterEventType

    started, seconds = {}, {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        if entry.dagster_event.event_type == DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        else:
            seconds[entry.step_key] = entry.timestamp - started[entry.step_key]
    return seconds


def pyarrow_read_seconds(paths: list[Path], repeats: int = 2) -> tuple[int, float, float]:
    """Rows, best wall and best CPU time of ``pyarrow.csv.read_csv`` over every file: the practical limit."""
    import pyarrow.csv as pcsv

    best, best_cpu, rows = float("inf"), float("inf"), 0
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        rows = sum(pcsv.read_csv(path).num_rows for path in paths)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return rows, best, best_cpu


def worker_pipeline(data_dir: Path, first: dt.date, last: dt.date, reference: bool) -> dict[str, Any]:
    """Optionally the pyarrow reference, then one in-process run of every asset for first..last."""
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range

    settings = worker_settings(data_dir)
    paths = sorted(settings.traffic_log_dir.glob("*.csv"))
    out: dict[str, Any] = {"files": len(paths), "csv_mb": round(sum(p.stat().st_size for p in paths) / 1e6, 1)}
    if reference:
        out["pyarrow_rows"], out["pyarrow_seconds"], out["pyarrow_cpu_seconds"] = pyarrow_read_seconds(paths)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    started, cpu = time.perf_counter(), time.process_time()
    result = materialize_range(defs, first, last, instance=instance, log_level="WARNING")
    out["pipeline_seconds"] = time.perf_counter() - started
    out["pipeline_cpu_seconds"] = time.process_time() - cpu
    steps = _step_seconds(instance, result.run_id)
    # Each step of the daily job is one layer (silver and gold's per-day tables share one).
    out["layer_seconds"] = dict(steps)
    out["step_seconds"] = steps
    out["rows"] = sum(  # one materialisation per day, each with that day's rows
        int(m.metadata["dagster/row_count"].value)
        for m in result.asset_materializations_for_node("bronze_to_gold")
        if m.asset_key.path == ["packetx_raw", "packets"]
    )
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def worker_history(data_dir: Path, first: dt.date, days: int) -> dict[str, Any]:
    """One run per day, in order, as a daily schedule would: the wall time of each."""
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range

    defs = build_definitions(worker_settings(data_dir))
    instance = dg.DagsterInstance.ephemeral()
    seconds, cpu_seconds = [], []
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        started, cpu = time.perf_counter(), time.process_time()
        materialize_range(defs, day, day, instance=instance, log_level="WARNING")
        seconds.append(time.perf_counter() - started)
        cpu_seconds.append(time.process_time() - cpu)
    return {"day_seconds": seconds, "day_cpu_seconds": cpu_seconds, "peak_rss_mb": peak_rss_mb()}


def worker_one_day(data_dir: Path, first: dt.date) -> dict[str, Any]:
    """The landing sensor's runs of a device-day, start of run to serving done.

    The landing area holds two days of one device. The first day runs on an empty lakehouse
    (``one_day_fresh``: it also creates every table and the serving database, once in a
    lakehouse's life). Then the second day arrives part-written (its first 23 hours) and runs
    (``one_day``: a new device-day on a lakehouse that exists), and it grows to the whole day and
    runs again (``one_day_rerun``: the sensor's most frequent run, a grown file). Definitions are
    built first: a run's process has them before its run starts.
    """
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.lib.storage.objectstore import write_bytes_atomically
    from packetx_lakehouse.runner import materialize_range

    settings = worker_settings(data_dir)
    second = first + dt.timedelta(days=1)
    (grown,) = settings.traffic_log_dir.glob(f"*-{second.isoformat()}.csv")
    whole = grown.read_bytes()
    write_bytes_atomically(grown, _first_hours(whole, 23))
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    out: dict[str, Any] = {"rows": whole.count(b"\n") - 1}
    for name, day in (("one_day_fresh", first), ("one_day", second), ("one_day_rerun", second)):
        if name == "one_day_rerun":
            write_bytes_atomically(grown, whole)
        started, cpu = time.perf_counter(), time.process_time()
        result = materialize_range(defs, day, day, instance=instance, log_level="WARNING")
        out[f"{name}_seconds"] = time.perf_counter() - started
        out[f"{name}_cpu_seconds"] = time.process_time() - cpu
        out[f"{name}_step_seconds"] = _step_seconds(instance, result.run_id)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _first_hours(csv: bytes, hours: int) -> bytes:
    """The header and the rows of a generated day's first ``hours`` (PacketX appends in time order)."""
    lines = csv.splitlines(keepends=True)
    cut = next((i for i, line in enumerate(lines[1:], 1) if int(line.split(b",")[1][11:13]) >= hours), len(lines))
    return b"".join(lines[:cut])


#: The steps of the daily job, in run order (the profile's rows).
STEPS = (*TO_GOLD_STEPS, "serving_duckdb")


def worker_profile(data_dir: Path, first: dt.date, last: dt.date) -> dict[str, Any]:
    """One in-process run of first..last under ``CpuSampler``: every CPU second, step by step."""
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range
    from packetx_lakehouse_harness.cpu_profile import CpuSampler, by_step

    defs = build_definitions(worker_settings(data_dir))
    instance = dg.DagsterInstance.ephemeral()
    started, cpu = time.perf_counter(), time.process_time()
    with CpuSampler() as sampler:
        materialize_range(defs, first, last, instance=instance, log_level="WARNING")
    return {"wall_seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "steps": by_step(sampler.stacks, STEPS)}


def format_profile(result: dict[str, Any], top: int = 8) -> str:
    """The profile as a table: each step's CPU seconds and the lakehouse calls they went to."""
    steps = result["steps"]
    lines = [f"in-process run: {result['wall_seconds']:.2f} s wall, {result['cpu_seconds']:.2f} CPU s "
             f"(all threads), of which {sum(sum(p.values()) for p in steps.values()):.2f} s charged below", ""]
    for name in (*STEPS, "outside the steps"):
        parts = steps.get(name)
        if parts is None:
            continue
        lines.append(f"{name:<58} {sum(parts.values()):>7.2f} CPU s")
        ranked = sorted(parts.items(), key=lambda kv: -kv[1])
        for part, seconds in ranked[:top]:
            lines.append(f"    {part:<54} {seconds:>7.2f}")
        if rest := ranked[top:]:
            lines.append(f"    {f'{len(rest)} more':<54} {sum(s for _, s in rest):>7.2f}")
    return "\n".join(lines)


def _worker_main(argv: list[str]) -> None:
    kind, params = argv[0], json.loads(argv[1])
    data_dir = Path(params["data_dir"])
    if kind == "pipeline":
        out = worker_pipeline(data_dir, dt.date.fromisoformat(params["first"]), dt.date.fromisoformat(params["last"]),
                              params["reference"])
    elif kind == "profile":
        out = worker_profile(data_dir, dt.date.fromisoformat(params["first"]), dt.date.fromisoformat(params["last"]))
    elif kind == "one_day":
        out = worker_one_day(data_dir, dt.date.fromisoformat(params["first"]))
    elif kind == "history":
        out = worker_history(data_dir, dt.date.fromisoformat(params["first"]), params["days"])
    elif kind == "maintenance":
        out = maintenance.worker_maintenance(data_dir, dt.date.fromisoformat(params["first"]), params["days"],
                                             params["pairs"])
    elif kind.startswith("fleet-"):
        from benchmarks import fleet

        out = fleet.WORKERS[kind.removeprefix("fleet-")](data_dir, dt.date.fromisoformat(params["day"]))
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    print("BENCH_RESULT " + json.dumps(out))


# --- in the parent ---------------------------------------------------------------------------


def measure_range(root: Path, profile: Profile) -> dict[str, Any]:
    data_dir = root / "range"
    generate_logs(data_dir / "traffic_log", users=profile.users, days=profile.days, pairs=profile.pairs_per_minute)
    last = BENCH_START + dt.timedelta(days=profile.days - 1)
    return run_worker("pipeline", data_dir, first=BENCH_START.isoformat(), last=last.isoformat(), reference=True)


def measure_history(root: Path, profile: Profile) -> dict[str, Any]:
    data_dir = root / "history"
    generate_logs(data_dir / "traffic_log", users=1, days=profile.history_days, pairs=profile.history_pairs)
    out = run_worker("history", data_dir, first=BENCH_START.isoformat(), days=profile.history_days)
    shutil.rmtree(data_dir, ignore_errors=True)
    return out


def measure_rss_day(root: Path, profile: Profile) -> dict[str, Any]:
    data_dir = root / "rss"
    generate_logs(data_dir / "traffic_log", users=1, days=1, pairs=profile.rss_pairs)
    out = run_worker("pipeline", data_dir, first=BENCH_START.isoformat(), last=BENCH_START.isoformat(),
                     reference=False)
    shutil.rmtree(data_dir, ignore_errors=True)
    return out


def measure_one_day(root: Path, profile: Profile) -> dict[str, Any]:
    data_dir = root / "one_day"
    generate_logs(data_dir / "traffic_log", users=1, days=2, pairs=profile.one_day_pairs)
    out = run_worker("one_day", data_dir, first=BENCH_START.isoformat())
    shutil.rmtree(data_dir, ignore_errors=True)
    return out


def profile_main(small: bool, repeat: int = 1, json_path: Path | None = None) -> int:
    """``bench --profile``: the range's in-process run under a sampling profiler, printed by step.

    ``repeat`` runs it that many times, each in a fresh worker on a fresh lakehouse, and prints the
    wall and CPU seconds of each and their medians (the figure to compare two versions by: one run
    on a shared machine moves by a second either way), with the median run's profile.
    """
    profile = SMALL if small else FULL
    root = Path(tempfile.mkdtemp(prefix="packetx-profile-"))
    try:
        logs = root / "logs"
        generate_logs(logs, users=profile.users, days=profile.days, pairs=profile.pairs_per_minute)
        last = BENCH_START + dt.timedelta(days=profile.days - 1)
        results = []
        for number in range(repeat):
            data_dir = root / f"run-{number}"
            shutil.copytree(logs, data_dir / "traffic_log")
            results.append(run_worker("profile", data_dir, first=BENCH_START.isoformat(), last=last.isoformat()))
            shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"profile of {profile.users} users x {profile.days} days ({profile.name})")
    median = sorted(results, key=lambda r: r["cpu_seconds"])[(len(results) - 1) // 2]
    if repeat > 1:
        for number, result in enumerate(results, 1):
            print(f"run {number}: {result['wall_seconds']:.2f} s wall, {result['cpu_seconds']:.2f} CPU s")
        print(f"median of {repeat}: {statistics.median(r['wall_seconds'] for r in results):.2f} s wall, "
              f"{statistics.median(r['cpu_seconds'] for r in results):.2f} CPU s; the median run's profile:\n")
    print(format_profile(median))
    if json_path is not None:
        json_path.write_text(json.dumps({"profile": profile.name, "runs": [
            {"wall_seconds": round(r["wall_seconds"], 2), "cpu_seconds": round(r["cpu_seconds"], 2)} for r in results]},
            indent=2) + "\n")
    return 0


def measure_dagster(root: Path, profile: Profile, range_logs: Path) -> dict[str, Any]:
    """The range as a backfill through ``dagster dev``, then one file's arrival -> gold via the sensor."""
    from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
    from packetx_lakehouse.devices.generator import generate_day
    from packetx_lakehouse.lib.storage.objectstore import write_bytes_atomically
    from packetx_lakehouse_harness.devserver import DagsterDev, poll

    gold = ["packetx_gold", "daily_user_bandwidth"]
    days = [BENCH_START + dt.timedelta(days=n) for n in range(profile.days)]
    out: dict[str, Any] = {}
    started = time.perf_counter()
    with DagsterDev.start(root / "dagster", env={"PACKETX_START_DATE": BENCH_START.isoformat()}) as server:
        out["dagster_dev_start_seconds"] = time.perf_counter() - started
        landing = server.data_dir / "traffic_log"
        landing.mkdir(parents=True, exist_ok=True)
        for path in sorted(range_logs.glob("*.csv")):
            os.link(path, landing / path.name)

        launched = time.time()
        backfill_id = server.launch_backfill([d.isoformat() for d in days], job=DAILY_PIPELINE)
        last_gold = poll("the last gold partition of the backfill",
                         lambda: server.materializations(gold, days[-1].isoformat()), timeout=1800, interval=0.25)
        out["backfill_seconds"] = int(last_gold[0]["timestamp"]) / 1000 - launched
        status = poll("the backfill to finish",
                      lambda: (s := server.backfill_status(backfill_id)) not in ("REQUESTED", "CANCELING") and s,
                      timeout=600)
        runs = server.backfill_runs(backfill_id)
        out["backfill_status"], out["backfill_runs"] = status, len(runs)
        out["backfill_completed_seconds"] = max(r["endTime"] or 0 for r in runs) - launched if runs else None

        # The range's files are archived now; without them the sensor's first tick sees an empty landing area.
        for path in landing.glob("*.csv"):
            path.unlink()
        server.start_sensor("landing_sensor")
        # Its first finished tick records the (empty) landing area in its cursor.
        poll("the landing sensor's first tick",
             lambda: [t for t in server.sensor_ticks("landing_sensor") if t["status"] != "STARTED"], timeout=120)
        today = dt.datetime.now(dt.UTC).date()
        data = generate_day("sensor-bench", today, seed=SEED, options=generator_options(profile.sensor_pairs))
        dropped = time.time()
        write_bytes_atomically(landing / f"sensor-bench-{today}.csv", data)
        arrived = poll("the dropped file to reach gold", lambda: server.materializations(gold, today.isoformat()),
                       timeout=600, interval=0.25)
        out["sensor_latency_seconds"] = int(arrived[0]["timestamp"]) / 1000 - dropped
        out["sensor_rows"] = data.count(b"\n") - 1
    return out


def run_bench(profile: Profile, *, dagster: bool = True, keep: Path | None = None) -> dict[str, Any]:
    """Every measurement of ``profile``; returns the flat result dict written to JSON."""
    root = Path(tempfile.mkdtemp(prefix="packetx-bench-", dir=keep))
    try:
        started = time.perf_counter()
        measurements = [("range: bronze -> serving over the range", measure_range),
                        ("history: day after day", measure_history), ("peak RSS of one big day", measure_rss_day),
                        ("one device-day: the landing sensor's run", measure_one_day),
                        ("storage: 41 re-runs of a day, then maintenance",
                         maintenance.measure)]
        if dagster:
            measurements.append(("dagster dev: start, sensor, backfill",
                                 lambda root, profile: measure_dagster(root, profile, root / "range" / "traffic_log")))
        results = []
        from packetx_lakehouse.progress import (
            progress_bar,  # rich only: the parent stays light
        )

        with progress_bar() as bar:  # on standard error: the table and JSON stay on standard output
            task = bar.add_task(f"bench ({profile.name})", total=len(measurements))
            for title, measure in measurements:
                bar.update(task, description=f"bench ({profile.name}): {title}")
                results.append(measure(root, profile))
                bar.advance(task)
                bar.console.print(f"  done  {title} ({time.perf_counter() - started:,.0f} s so far)")
        week, history, rss, one_day, storage = results[:5]
        server = results[5] if dagster else {}
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    rows = week["rows"]
    pipeline_rps = rows / week["pipeline_seconds"]
    # The issue's "bronze -> gold": the three layers' steps, without serving and run machinery.
    to_gold = sum(week["step_seconds"].get(step, 0.0) for step in TO_GOLD_STEPS)
    read_rps = week["pyarrow_rows"] / week["pyarrow_seconds"]
    day_seconds, day_cpu = history["day_seconds"], history["day_cpu_seconds"]
    first3, last3 = statistics.median(day_seconds[:3]), statistics.median(day_seconds[-3:])
    first3_cpu, last3_cpu = statistics.median(day_cpu[:3]), statistics.median(day_cpu[-3:])
    return {
        "profile": profile.name,
        "profile_config": asdict(profile),
        "cpus": os.cpu_count(),
        "rows": rows,
        "csv_mb": week["csv_mb"],
        "pyarrow_read_seconds": round(week["pyarrow_seconds"], 3),
        "pyarrow_read_rows_per_s": round(read_rps),
        "pipeline_seconds": round(week["pipeline_seconds"], 3),
        "pipeline_rows_per_s": round(pipeline_rps),
        "ratio_to_pyarrow_read": round(pipeline_rps / read_rps, 3),
        "bronze_to_gold_seconds": round(to_gold, 3),
        "bronze_to_gold_rows_per_s": round(rows / to_gold) if to_gold else None,
        # CPU seconds (all threads) are what a busy machine distorts least.
        "pipeline_cpu_seconds": round(week["pipeline_cpu_seconds"], 3),
        "pyarrow_read_cpu_seconds": round(week["pyarrow_cpu_seconds"], 3),
        "cpu_ratio_to_pyarrow_read": round(week["pyarrow_cpu_seconds"] / week["pipeline_cpu_seconds"], 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "layer_seconds": {k: round(v, 3) for k, v in week["layer_seconds"].items()},
        "layer_rows_per_s": {k: round(rows / v) for k, v in week["layer_seconds"].items() if v > 0},
        "step_seconds": {k: round(v, 3) for k, v in week["step_seconds"].items()},
        "run_overhead_seconds": round(week["pipeline_seconds"] - sum(week["step_seconds"].values()), 3),
        "range_peak_rss_mb": round(week["peak_rss_mb"]),
        "backfill_seconds": round(server["backfill_seconds"], 1) if server else None,
        "backfill_completed_seconds": _round(server.get("backfill_completed_seconds")),
        "backfill_runs": server.get("backfill_runs"),
        "dagster_dev_start_seconds": _round(server.get("dagster_dev_start_seconds")),
        "sensor_latency_seconds": _round(server.get("sensor_latency_seconds")),
        "sensor_rows": server.get("sensor_rows"),
        "history_days": len(day_seconds),
        "history_day_seconds": [round(s, 3) for s in day_seconds],
        "history_day_cpu_seconds": [round(s, 3) for s in day_cpu],
        "day1_seconds": round(first3, 3),
        "day30_seconds": round(last3, 3),
        # Cost = CPU seconds of the run (all threads): wall time on a shared machine mostly
        # measures the neighbours. Both are reported.
        "day30_over_day1": round(last3_cpu / first3_cpu, 3),
        "day30_over_day1_wall": round(last3 / first3, 3),
        "peak_rss_day_rows": rss["rows"],
        "peak_rss_mb": round(rss["peak_rss_mb"]),
        "one_day_rows": one_day["rows"],
        **{f"{name}{suffix}": round(one_day[f"{name}{suffix}"], 3)
           for name in ("one_day_fresh", "one_day", "one_day_rerun") for suffix in ("_seconds", "_cpu_seconds")},
        **{f"{name}_step_seconds": {k: round(v, 3) for k, v in one_day[f"{name}_step_seconds"].items()}
           for name in ("one_day_fresh", "one_day", "one_day_rerun")},
        **storage,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


#: Issue 16's targets, and issue 14's for storage after maintenance.
TARGETS = (
    ("ratio_to_pyarrow_read", ">=", 0.08),
    ("peak_rss_mb", "<=", 1024),
    ("day30_over_day1", "<=", 1.2),
    ("one_day_seconds", "<=", 1.5),
    *maintenance.TARGETS,
)


def format_table(result: dict[str, Any]) -> str:
    """The human-readable table ``bench`` prints."""
    rows = result["rows"]

    def rps(value: float) -> str:
        return f"{value:,.0f} rows/s"

    lines = [
        f"PacketX benchmark ({result['profile']}): {rows:,} rows, {result['csv_mb']} MB of CSV, "
        f"{result['cpus']} CPUs, load average {result['load_average_1m']}",
        "",
        f"{'measurement':<44} {'value':>22}",
        f"{'-' * 44} {'-' * 22}",
        f"{'pyarrow.csv.read_csv, same files (limit)':<44} {rps(result['pyarrow_read_rows_per_s']):>22}",
    ]
    for layer, seconds in result["layer_seconds"].items():
        lines.append(f"{'  ' + layer + f' ({seconds:.2f} s)':<44} {rps(result['layer_rows_per_s'][layer]):>22}")
    lines += [
        f"{'  Dagster run overhead (in process)':<44} {result['run_overhead_seconds']:>20.2f} s",
        f"{'bronze -> serving in process, total':<44} {rps(result['pipeline_rows_per_s']):>22}",
        f"{'  ratio to the pyarrow read':<44} {result['ratio_to_pyarrow_read']:>22.1%}",
        f"{'  bronze -> gold steps only':<44} {rps(result['bronze_to_gold_rows_per_s']):>22}",
        f"{'  same ratio in CPU seconds':<44} {result['cpu_ratio_to_pyarrow_read']:>22.1%}",
        f"{'backfill via dagster dev, launch -> gold':<44} {_fmt_s(result['backfill_seconds']):>22}",
        f"{'sensor: file arrival -> gold':<44} {_fmt_s(result['sensor_latency_seconds']):>22}",
        f"{'day {0} / day 1, CPU (median of 3 each)'.format(result['history_days']):<44} "
        f"{result['day30_over_day1']:>21.2f}x",
        f"{'day {0} / day 1, wall (median of 3 each)'.format(result['history_days']):<44} "
        f"{result['day30_over_day1_wall']:>21.2f}x",
        f"{'peak RSS, one {0:,}-row day'.format(result['peak_rss_day_rows']):<44} {result['peak_rss_mb']:>19,} MB",
        f"{'peak RSS, the whole range':<44} {result['range_peak_rss_mb']:>19,} MB",
        f"{'one device-day ({0:,} rows), run to serving:'.format(result['one_day_rows']):<44}",
        *(f"{'  ' + title:<44} {_fmt_run(result[f'{name}_seconds'], result[f'{name}_cpu_seconds']):>22}"
          for name, title in (("one_day_fresh", "on an empty lakehouse (once in its life)"),
                              ("one_day", "a new day, 23 hours written"), ("one_day_rerun", "its file grown to 24 hours"))),
        *maintenance.format_lines(result),
        "",
        "targets: " + ", ".join(_verdict(result, *t) for t in TARGETS),
    ]
    return "\n".join(lines)


def _fmt_run(seconds: float, cpu_seconds: float) -> str:
    return f"{seconds:.2f} s ({cpu_seconds:.2f} CPU s)"


def _fmt_s(value: float | None) -> str:
    return "skipped" if value is None else f"{value:.1f} s"


def _verdict(result: dict[str, Any], key: str, op: str, limit: float) -> str:
    value = result.get(key)
    if value is None:
        return f"{key} skipped"
    if isinstance(value, dict):  # one figure per scenario (day 1, day 30): the worst must hold
        value = max(value.values()) if op == "<=" else min(value.values())
    ok = value >= limit if op == ">=" else value <= limit
    return f"{key} {'ok' if ok else 'MISSED'}"


def main(small: bool = False, json_path: Path | None = None, dagster: bool = True, keep: Path | None = None) -> int:
    result = run_bench(SMALL if small else FULL, dagster=dagster, keep=keep)
    if json_path:  # first: minutes of measurements must outlive any problem printing them
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    if json_path:
        print(f"\nresults written to {json_path}")
    return 0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="packetx-lakehouse bench", description=__doc__)
    parser.add_argument("--small", action="store_true", help="a quick look on a small data set instead of ~5 M rows")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-dagster", action="store_true", help="skip the backfill and sensor runs through dagster dev")
    parser.add_argument("--hostile", action="store_true",
                        help="only the hostile-input scenario (benchmarks/hostile_input.py): peak RSS and event-log "
                        "growth of decompression bombs and a giant line")
    parser.add_argument("--profile", action="store_true",
                        help="instead: the range's in-process run under a sampler that charges every CPU second to "
                        "the call it went to (packetx_lakehouse_harness/cpu_profile.py), printed by step")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="--profile: N runs, each in a fresh worker, with their medians (default 1)")
    parser.add_argument("--fleet", type=int, default=None, metavar="N", nargs="?", const=100,
                        help="instead: N busy devices (default 100) kept live by the landing sensor under a real "
                        "dagster dev, each appending a minute every 60 s (benchmarks/fleet.py)")
    parser.add_argument("--minutes", type=float, default=10, help="--fleet: minutes of real time (default 10)")
    parser.add_argument("--celery", action="store_true",
                        help="instead: a 14-day backfill through the distributed profile on 1 and 2 Celery workers "
                        "(benchmarks/distributed.py; needs PostgreSQL, starts RabbitMQ/Redis if they are not running)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker_main(sys.argv[2:])
    else:
        args = _parse(sys.argv[1:])
        if args.hostile:
            from benchmarks.hostile_input import CASES
            from benchmarks.hostile_input import main as hostile_main

            hostile_main(list(CASES))
            sys.exit(0)
        if args.profile:
            sys.exit(profile_main(small=args.small, repeat=args.repeat, json_path=args.json))
        if args.fleet is not None:
            from benchmarks import fleet

            sys.exit(fleet.main(args.fleet, args.minutes, str(args.json) if args.json else None))
        if args.celery:
            from benchmarks import distributed

            sys.exit(distributed.main(small=args.small, json_path=args.json))
        sys.exit(main(small=args.small, json_path=args.json, dagster=not args.no_dagster))
