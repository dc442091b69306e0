"""``packetx-lakehouse bench --fleet N``: a fleet of busy devices kept live by a real ``dagster dev``.

N devices (a busy device's volume: ~165 IP pairs a minute) each have today's file written up to
23:00. The landing sensor, under a real ``dagster dev`` (webserver, daemon, code server) on the
embedded default, then keeps the lakehouse live while every device appends its next minute
every 60 s, the devices spread over the minute, for ``--minutes`` of real time. Measured:

- append -> visible: for every device-minute, from the append to the first moment gold
  (``packetx_gold.daily_user_bandwidth`` and ``user_hourly``, read from Iceberg) holds its rows,
  and the same for the DuckDB serving copy: p50, p95, max;
- CPU seconds of every process of the deployment (dagster dev, webserver, daemon, code server,
  runs) per minute of wall, and peak RSS;
- the CPU of one refresh after one minute of growth at 01:00 and at 23:00, in process;
- at the end, every table against a rebuild of the same final files on a fresh lakehouse (row
  count and an order-independent hash per table), and storage after a compaction pass.

Everything runs under a temporary directory, removed afterwards; every process started is stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: A busy device: what the issue calls the bench's profile.
PAIRS_PER_MINUTE = 165
#: Distinct generated device-days; the fleet's devices are copies under their own names.
TEMPLATES = 4
#: The hour the files are written up to before the window starts.
START_HOUR = 23
#: Warm-up refreshes before the window (the first hours arrive in these steps).
WARM_UP_HOURS = (6, 12, 18, START_HOUR)
POLL_SECONDS = 1.0
#: Why the serving copy could not be read, as seen (reported: a lock held by a run is expected).
SERVED_ERRORS: set[str] = set()
SAMPLE_SECONDS = 2.0


# --- the fleet's files ---------------------------------------------------------------------------


@dataclass
class Device:
    """One device's whole day and where each minute's block starts in it."""

    user: str
    data: bytes
    #: Byte offset of the start of minute m's block (``len(data)`` past the last), and rows per minute.
    starts: list[int]
    rows: list[int]
    written: int = 0

    def cut(self, hour: int, minute: int = 0) -> int:
        return self.starts[hour * 60 + minute]


def fleet(n: int, day: dt.date) -> list[Device]:
    """``n`` busy devices for ``day``: a few generated days, copied under each device's name."""
    from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day

    options = GeneratorOptions(minutes_per_day=1440, pairs_per_minute=PAIRS_PER_MINUTE)
    templates = [generate_day(f"template{k}", day, seed=7 + k, options=options) for k in range(min(n, TEMPLATES))]
    devices = []
    for i in range(n):
        k = i % len(templates)
        user = f"device-{i:03d}"
        data = templates[k].replace(f"\ntemplate{k},".encode(), f"\n{user},".encode())
        devices.append(Device(user, data, *_minute_index(data)))
    return devices


def _minute_index(data: bytes) -> tuple[list[int], list[int]]:
    starts, rows = [0] * 1441, [0] * 1440
    offset = data.index(b"\n") + 1  # after the header
    starts[0] = offset
    current = 0
    for line in data[offset:].splitlines(keepends=True):
        stamp = line.split(b",", 2)[1]
        minute = int(stamp[11:13]) * 60 + int(stamp[14:16])
        while current < minute:
            current += 1
            starts[current] = offset
        rows[minute] += 1
        offset += len(line)
    while current < 1440:
        current += 1
        starts[current] = offset
    return starts, rows


def write_up_to(devices: list[Device], landing: Path, day: dt.date, hour: int, minute: int = 0) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    for device in devices:
        end = device.cut(hour, minute)
        with (landing / f"{device.user}-{day.isoformat()}.csv").open("ab") as handle:
            if device.written == 0:
                handle.write(device.data[: end])
            else:
                handle.write(device.data[device.written: end])
        device.written = end


# --- worker processes (a fresh interpreter each, like every other measurement) ------------------


def worker_refresh(data_dir: Path, day: dt.date) -> dict[str, Any]:
    """One refresh of ``day`` as the landing sensor requests it, in process: its wall and CPU seconds."""
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
    from packetx_lakehouse.runner import materialize_range
    from packetx_lakehouse.settings import Settings

    defs = build_definitions(Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=day.isoformat()))
    started, cpu = time.perf_counter(), time.process_time()
    result = materialize_range(defs, day, day, instance=dg.DagsterInstance.ephemeral(), log_level="WARNING",
                               tags={REFRESH_TAG: NEW_LINES})
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "success": result.success}


def worker_rebuild(data_dir: Path, day: dt.date) -> dict[str, Any]:
    """The day read whole in one run (what a backfill does), in process."""
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range
    from packetx_lakehouse.settings import Settings

    defs = build_definitions(Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=day.isoformat()))
    started, cpu = time.perf_counter(), time.process_time()
    result = materialize_range(defs, day, day, instance=dg.DagsterInstance.ephemeral(), log_level="WARNING")
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "success": result.success}


def worker_digests(data_dir: Path, day: dt.date) -> dict[str, Any]:
    from packetx_lakehouse.settings import Settings
    from packetx_lakehouse_harness.truth import table_digests

    return {"digests": {name: list(value) for name, value in
                        table_digests(Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=day.isoformat())).items()}}


def worker_compaction(data_dir: Path, day: dt.date) -> dict[str, Any]:
    """A maintenance pass two days later (the day closed, every retention window past): storage after it."""
    from packetx_lakehouse.defs.maintenance.job import run_maintenance
    from packetx_lakehouse.settings import Settings

    settings = Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=day.isoformat())
    later = dt.datetime.combine(day + dt.timedelta(days=3), dt.time(12), dt.UTC)
    before = run_maintenance(settings, now=dt.datetime.now(dt.UTC)).totals()
    after_run = run_maintenance(settings, now=later)
    per_table = {t.table.identifier: {"max_data_files_per_partition": t.storage.max_data_files_per_partition,
                                      "bytes": t.storage.bytes, "live_bytes": t.storage.live_bytes}
                 for t in after_run.tables}
    after = after_run.totals()
    return {"open_day_pass": before, "closed_day_pass": after, "tables": per_table,
            "bytes_over_live": round(after["bytes"] / after["live_bytes"], 3) if after["live_bytes"] else None,
            "max_data_files_per_partition": max(t["max_data_files_per_partition"] for t in per_table.values())}


WORKERS = {"refresh": worker_refresh, "rebuild": worker_rebuild, "digests": worker_digests,
           "compaction": worker_compaction}


def run_worker(kind: str, data_dir: Path, day: dt.date) -> dict[str, Any]:
    from benchmarks.workload import run_worker as run

    return run(f"fleet-{kind}", data_dir, day=day.isoformat())


# --- watching the deployment ----------------------------------------------------------------------


def _category(cmdline: str) -> str:
    if "dagster-webserver" in cmdline or "dagster_webserver" in cmdline:
        return "webserver"
    if "dagster-daemon" in cmdline or "dagster._daemon" in cmdline:
        return "daemon"
    if "api grpc" in cmdline or "code-server" in cmdline:
        return "code server"
    if "execute_run" in cmdline or "execute_step" in cmdline or "api execute" in cmdline:
        return "runs"
    if " dev" in cmdline:
        return "dagster dev"
    return "other"


@dataclass
class Watcher:
    """CPU and peak RSS of every process in the deployment's process group, sampled in a thread.

    The CPU used so far is, over the processes alive now, their own time (utime + stime) plus what
    their exited and reaped children used (cutime + cstime): a run's time moves from its own
    process into its parent's children time when the parent reaps it, so nothing is counted twice
    and nothing drops out (only a process orphaned to init loses its time when it exits: Dagster's
    small ``watch_orphans`` helpers). A process launched by the code server or by a run (Dagster
    starts runs as ``multiprocessing`` children) is a run.
    """

    group: int
    ticks: float = field(default_factory=lambda: os.sysconf("SC_CLK_TCK"))
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    peak_rss_mb: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    series: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> dict[str, float]:
        found: dict[int, tuple[int, str, float, float]] = {}  # pid -> parent, command, own, children
        peak: dict[int, float] = {}
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) != self.group:  # pgrp
                    continue
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = Path(f"/proc/{pid}/status").read_text()
            except (OSError, IndexError, ValueError):
                continue
            found[pid] = (int(stat[1]), cmdline, (int(stat[11]) + int(stat[12])) / self.ticks,
                          (int(stat[13]) + int(stat[14])) / self.ticks)
            peak[pid] = next((int(line.split()[1]) / 1024 for line in status.splitlines()
                              if line.startswith("VmHWM:")), 0.0)
        totals: dict[str, float] = defaultdict(float)
        for pid, (_, cmdline, own, children) in found.items():
            category = self._category_of(pid, found)
            self.peak_rss_mb[category] = max(self.peak_rss_mb[category], peak[pid])
            if cmdline:
                self.seen[category].add(" ".join(cmdline.split()[:6])[:160])
            totals[category] += own
            # A code server's reaped children are the runs it launched.
            totals["runs" if category == "code server" else category] += children
        return dict(totals)

    @staticmethod
    def _category_of(pid: int, found: dict[int, tuple[int, str, float, float]]) -> str:
        parent, cmdline, _, _ = found[pid]
        category = _category(cmdline)
        if category == "other" and parent in found and Watcher._category_of(parent, found) in ("code server", "runs"):
            return "runs"
        return category

    def run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.series.append((time.monotonic(), self.sample()))

    def stop(self) -> None:
        self._stop.set()


def _gold_rows(catalog: Any, day: dt.date) -> dict[str, int]:
    from pyiceberg.expressions import EqualTo

    rows = catalog.load_table("packetx_gold.daily_user_bandwidth").scan(
        row_filter=EqualTo("log_date", day.isoformat()), selected_fields=("user", "rows")).to_arrow()
    hourly = catalog.load_table("packetx_gold.user_hourly").scan(
        row_filter=EqualTo("log_date", day.isoformat()), selected_fields=("user", "rows")).to_arrow()
    by_hourly: dict[str, int] = defaultdict(int)
    for user, count in zip(hourly.column("user").to_pylist(), hourly.column("rows").to_pylist()):
        by_hourly[user] += count
    # Visible when both hold the rows (they are committed one after the other in one step).
    return {user: min(count, by_hourly.get(user, 0))
            for user, count in zip(rows.column("user").to_pylist(), rows.column("rows").to_pylist())}


def _served_rows(database: Path, day: dt.date) -> dict[str, int] | None:
    import duckdb

    try:
        with duckdb.connect(str(database), read_only=True) as con:
            return dict(con.execute("SELECT \"user\", \"rows\" FROM gold.daily_user_bandwidth WHERE log_date = ?",
                                    [day]).fetchall())
    except (duckdb.Error, OSError) as error:
        SERVED_ERRORS.add(f"{type(error).__name__}: {str(error)[:120]}")
        return None  # the serving step holds the database for a moment


@dataclass
class Visibility:
    """When each device-minute's rows were first seen in gold and in the serving copy."""

    appended: dict[tuple[str, int], float] = field(default_factory=dict)
    expected: dict[tuple[str, int], int] = field(default_factory=dict)
    gold: dict[tuple[str, int], float] = field(default_factory=dict)
    served: dict[tuple[str, int], float] = field(default_factory=dict)

    def see(self, where: dict[tuple[str, int], float], rows: dict[str, int], at: float) -> None:
        for key, needed in self.expected.items():
            if key not in where and rows.get(key[0], 0) >= needed:
                where[key] = at

    def latencies(self, where: dict[tuple[str, int], float]) -> list[float]:
        return [where[key] - self.appended[key] if key in where else float("inf") for key in self.appended]


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(statistics.median(ordered), 1), "p95": round(pick(0.95), 1), "max": round(ordered[-1], 1),
            "never_seen": sum(v == float("inf") for v in ordered)}


# --- the measurement ------------------------------------------------------------------------------


def measure_fleet(n: int, minutes: float, *, keep_equal_check: bool = True) -> dict[str, Any]:
    """The whole ``--fleet N`` measurement (see the module docstring)."""
    from packetx_lakehouse.settings import Settings
    from packetx_lakehouse_harness.devserver import DagsterDev

    day = dt.datetime.now(dt.UTC).date()
    root = Path(tempfile.mkdtemp(prefix="packetx-fleet-"))
    out: dict[str, Any] = {"devices": n, "minutes": minutes, "day": day.isoformat(),
                           "rows_per_device_minute": PAIRS_PER_MINUTE}
    try:
        devices = fleet(n, day)
        data_dir = root / "data"
        landing = data_dir / "traffic_log"
        out["refresh_cpu"] = refresh_at_two_hours(devices, day, root)
        for device in devices:
            device.written = 0
        started = time.perf_counter()
        for hour in WARM_UP_HOURS:
            write_up_to(devices, landing, day, hour)
            warm = run_worker("refresh", data_dir, day)
            assert warm["success"], warm
        out["warm_up_seconds"] = round(time.perf_counter() - started, 1)
        settings = Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=day.isoformat())
        window = _live_window(devices, day, settings, root, minutes, DagsterDev)
        out.update(window)
        if keep_equal_check:
            out["tables_equal_to_a_rebuild"] = tables_equal_to_rebuild(data_dir, landing, day, root)
        out["compaction"] = run_worker("compaction", data_dir, day)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return out


def refresh_at_two_hours(devices: list[Device], day: dt.date, root: Path) -> dict[str, Any]:
    """CPU of one refresh after one minute of growth, at 01:00 and at 23:00 (a lakehouse each)."""
    out: dict[str, Any] = {}
    for hour in (1, START_HOUR):
        data_dir = root / f"at-{hour:02d}"
        for device in devices:
            device.written = 0
        for warm in (h for h in (*WARM_UP_HOURS, hour) if h <= hour):
            write_up_to(devices, data_dir / "traffic_log", day, warm)
            run_worker("refresh", data_dir, day)
        write_up_to(devices, data_dir / "traffic_log", day, hour, 1)  # one more minute for every device
        measured = run_worker("refresh", data_dir, day)
        out[f"{hour:02d}:00"] = {"seconds": round(measured["seconds"], 2), "cpu_seconds": round(measured["cpu_seconds"], 2)}
        shutil.rmtree(data_dir, ignore_errors=True)
    out["ratio_23_over_01_cpu"] = round(out["23:00"]["cpu_seconds"] / out["01:00"]["cpu_seconds"], 2)
    return out


def _live_window(devices: list[Device], day: dt.date, settings: Any, root: Path, minutes: float,
                 dagster_dev: Any) -> dict[str, Any]:
    """Append a minute per device per minute under a real ``dagster dev``; watch gold and the processes."""
    from packetx_lakehouse.defs.resources import open_catalog

    landing = settings.traffic_log_dir
    visibility = Visibility()
    totals = {d.user: sum(d.rows[: START_HOUR * 60]) for d in devices}
    catalog = open_catalog(settings)
    with dagster_dev.start(root / "dev", env={"PACKETX_START_DATE": day.isoformat(),
                                              "PACKETX_DATA_DIR": str(settings.data_dir)}) as server:
        sensor = server.start_sensor("landing_sensor")
        watcher = Watcher(os.getpgid(server.process.pid))
        watcher.sample()
        sampling = threading.Thread(target=watcher.run, daemon=True)
        sampling.start()
        begin, begin_wall = time.monotonic(), time.time()
        end = begin + minutes * 60
        count = len(devices)
        schedule = sorted((begin + 60 * k + 60 * i / count, i, k) for k in range(int(minutes)) for i in range(count))
        cpu_start = watcher.sample()
        for at, i, k in schedule:
            while time.monotonic() < at:
                _poll(visibility, catalog, settings, day, min(at, time.monotonic() + POLL_SECONDS))
            device = devices[i]
            minute = START_HOUR * 60 + k
            with (landing / f"{device.user}-{day.isoformat()}.csv").open("ab") as handle:
                handle.write(device.data[device.starts[minute]: device.starts[minute + 1]])
            totals[device.user] += device.rows[minute]
            visibility.appended[device.user, k] = time.monotonic()
            visibility.expected[device.user, k] = totals[device.user]
        appended_until = time.monotonic()
        cpu_end = watcher.sample()
        # Drain: what was appended last becomes visible (or the wait gives up).
        drain_deadline = time.monotonic() + 180
        while (len(visibility.gold) < len(visibility.appended) or len(visibility.served) < len(visibility.appended)) \
                and time.monotonic() < drain_deadline:
            _poll(visibility, catalog, settings, day, time.monotonic() + POLL_SECONDS)
        watcher.stop()
        sampling.join()
        server.stop_sensor(sensor["id"])
        _wait_for_runs_to_end(server)
    runs = runs_of_window(root / "dev" / "dagster_home", begin_wall)
    wall = appended_until - begin
    cpu = {name: round(cpu_end.get(name, 0) - cpu_start.get(name, 0), 1) for name in set(cpu_end) | set(cpu_start)}
    per_minute = _cpu_per_minute(watcher.series, begin, appended_until)
    return {
        "window_seconds": round(wall, 1),
        "device_minutes": len(visibility.appended),
        "gold_latency_seconds": _percentiles(visibility.latencies(visibility.gold)),
        "served_latency_seconds": _percentiles(visibility.latencies(visibility.served)),
        "cpu_seconds": cpu,
        "cpu_cores_average": round(sum(cpu.values()) / wall, 3),
        "cpu_seconds_per_minute": per_minute,
        "peak_rss_mb": {name: round(mb) for name, mb in watcher.peak_rss_mb.items()},
        "processes": {name: sorted(commands) for name, commands in watcher.seen.items()},
        "serving_read_errors": sorted(SERVED_ERRORS)[:5],
        "runs": runs,
    }


#: What a run logs when it cannot continue its day and reads or rebuilds it whole (defs/).
WHOLE_DAY_MESSAGES = (": read whole", ": rebuilt whole")


def runs_of_window(dagster_home: Path, since: float) -> dict[str, Any]:
    """The runs the deployment launched in the window, by who launched them: how many, how long
    they took (start to end), and how many had to read or rebuild their day whole."""
    import dagster as dg

    from packetx_lakehouse.defs.transform import DAILY_STEP

    kinds: dict[str, list[float]] = defaultdict(list)
    whole: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    # What every run that is not a landing refresh was for: which assets of which day.
    launched: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for record in instance.get_run_records(filters=dg.RunsFilter(created_after=dt.datetime.fromtimestamp(since, dt.UTC))):
            run = record.dagster_run
            kind = ("landing refresh" if "packetx/refresh" in run.tags else run.tags.get("dagster/sensor_name")
                    or run.tags.get("dagster/schedule_name") or run.job_name)
            if record.start_time and record.end_time:
                kinds[kind].append(record.end_time - record.start_time)
            failed[kind] += run.status != dg.DagsterRunStatus.SUCCESS
            logs = instance.all_logs(run.run_id)
            # A refresh says when it fell back to its day whole; any other run of the daily step
            # (a schedule's, a backfill's, automation's) builds its days whole by design.
            whole[kind] += (any(any(m in (event.message or "") for m in WHOLE_DAY_MESSAGES) for event in logs)
                            if kind == "landing refresh" else any(event.step_key == DAILY_STEP for event in logs))
            if kind != "landing refresh":
                launched[kind].append({"partition": run.tags.get("dagster/partition"),
                                       "assets": sorted(k.to_user_string() for k in run.asset_selection or ())})
    return {kind: {"runs": len(seconds), "seconds": _percentiles(seconds), "not_success": failed[kind],
                   "read_or_rebuilt_whole": whole[kind], **({"launched": launched[kind]} if kind in launched else {})}
            for kind, seconds in kinds.items()}


def _poll(visibility: Visibility, catalog: Any, settings: Any, day: dt.date, until: float) -> None:
    now = time.monotonic()
    try:
        visibility.see(visibility.gold, _gold_rows(catalog, day), now)
    except Exception:  # noqa: BLE001 - a table not created yet, a commit in flight: the next poll sees it
        pass
    served = _served_rows(settings.data_dir / "serving" / "packetx.duckdb", day)
    if served is not None:
        visibility.see(visibility.served, served, now)
    time.sleep(max(0.0, until - time.monotonic()))


def _cpu_per_minute(series: list[tuple[float, dict[str, float]]], begin: float, end: float) -> list[float]:
    """Total CPU seconds of the deployment in each minute of the window."""
    points = [(at, sum(values.values())) for at, values in series if begin <= at <= end]
    minutes = []
    for m in range(int((end - begin) // 60)):
        start = [v for at, v in points if at >= begin + 60 * m]
        stop = [v for at, v in points if at >= begin + 60 * (m + 1)]
        if start and stop:
            minutes.append(round(stop[0] - start[0], 1))
    return minutes


def _wait_for_runs_to_end(server: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = server.graphql('{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) '
                              '{ ... on Runs { results { runId } } } }')["runsOrError"]["results"]
        if not runs:
            return
        time.sleep(2)


def tables_equal_to_rebuild(data_dir: Path, landing: Path, day: dt.date, root: Path) -> dict[str, Any]:
    """Every table of the live lakehouse against a fresh lakehouse that read the final files whole."""
    caught_up = run_worker("refresh", data_dir, day)  # whatever the sensor had not taken in yet
    rebuilt = root / "rebuilt"
    shutil.copytree(landing, rebuilt / "traffic_log")
    rebuild = run_worker("rebuild", rebuilt, day)
    live, fresh = run_worker("digests", data_dir, day)["digests"], run_worker("digests", rebuilt, day)["digests"]
    differ = sorted(name for name in live.keys() | fresh.keys() if live.get(name) != fresh.get(name))
    shutil.rmtree(rebuilt, ignore_errors=True)
    return {"equal": not differ, "tables_compared": len(live), "differ": differ,
            "last_refresh_success": caught_up["success"], "rebuild_seconds": round(rebuild["seconds"], 1)}


def format_fleet(result: dict[str, Any]) -> str:
    gold, served = result.get("gold_latency_seconds", {}), result.get("served_latency_seconds", {})
    refresh = result.get("refresh_cpu", {})
    lines = [
        f"fleet of {result['devices']} busy devices, {result.get('device_minutes', 0)} device-minutes over "
        f"{result.get('window_seconds', 0)} s",
        f"  append -> gold (Iceberg)    p50 {gold.get('p50')} s, p95 {gold.get('p95')} s, max {gold.get('max')} s"
        f" (never seen: {gold.get('never_seen')})",
        f"  append -> serving (DuckDB)  p50 {served.get('p50')} s, p95 {served.get('p95')} s, max {served.get('max')} s",
        f"  CPU, all processes          {result.get('cpu_cores_average')} cores on average; by process: "
        f"{result.get('cpu_seconds')}",
        f"  CPU per minute of wall      {result.get('cpu_seconds_per_minute')}",
        f"  peak RSS (MB)               {result.get('peak_rss_mb')}",
        *(f"  runs: {kind:<20} {r['runs']} runs, p50 {r['seconds'].get('p50')} s, max {r['seconds'].get('max')} s, "
          f"{r['read_or_rebuilt_whole']} read or rebuilt their day whole, {r['not_success']} not successful"
          + "".join(f"\n      {run['partition'] or 'no partition'}: {', '.join(run['assets'])}" for run in r.get("launched", []))
          for kind, r in result.get("runs", {}).items()),
        f"  one refresh after a minute  01:00 {refresh.get('01:00')}, 23:00 {refresh.get('23:00')}, "
        f"23:00 / 01:00 CPU {refresh.get('ratio_23_over_01_cpu')}x",
        f"  tables vs a rebuild         {result.get('tables_equal_to_a_rebuild')}",
        f"  after compaction            {result.get('compaction', {}).get('max_data_files_per_partition')} data files "
        f"at most per partition, storage {result.get('compaction', {}).get('bytes_over_live')}x live",
    ]
    return "\n".join(lines)


def main(n: int, minutes: float, json_path: str | None) -> int:
    result = measure_fleet(n, minutes)
    print(format_fleet(result))
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 10, None))
