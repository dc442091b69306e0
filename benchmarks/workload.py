"""The benchmarks' shared workload: the fixed data set, its sizes, and a measurement's worker process.

Every benchmark module imports this one and nothing of each other's (``run.py`` alone assembles
them), so there is no import cycle. A measurement that runs the pipeline runs in a fresh child
process (``python -m benchmarks.run worker KIND PARAMS``) with its own temporary data directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Fixed dates keep the data set byte-identical on every machine and every day it is run.
BENCH_START = dt.date(2025, 3, 3)
SEED = 7
ALL_MINUTES = 1440


@dataclass(frozen=True)
class Profile:
    """How much data each measurement uses.

    Attributes:
        users, days, pairs_per_minute: The main range (every user writes every minute of
            every day; 165 pairs a minute is ~250,000 rows per user-day).
        history_days, history_pairs: One user, one single-day run per day, for day-N vs day-1.
        rss_pairs: Pairs a minute of the one user-day whose peak RSS is measured (700 = 1 M rows).
        sensor_pairs: Pairs a minute of the file dropped for the sensor latency.
        one_day_pairs: Pairs a minute of the landing sensor's one device-day run (165: ~250 k rows).
    """

    name: str
    users: int
    days: int
    pairs_per_minute: int
    history_days: int
    history_pairs: int
    rss_pairs: int
    sensor_pairs: int
    one_day_pairs: int


FULL = Profile("full", users=3, days=7, pairs_per_minute=165, history_days=30, history_pairs=165,
               rss_pairs=700, sensor_pairs=165, one_day_pairs=165)
SMALL = Profile("small", users=2, days=3, pairs_per_minute=20, history_days=30, history_pairs=5,
                rss_pairs=165, sensor_pairs=20, one_day_pairs=165)


def generator_options(pairs: int):
    from packetx_lakehouse.devices.generator import GeneratorOptions

    return GeneratorOptions(minutes_per_day=ALL_MINUTES, pairs_per_minute=pairs)


def generate_logs(out: Path, *, users: int, days: int, pairs: int, start: dt.date = BENCH_START) -> list[Path]:
    """The deterministic data set: ``users`` x ``days`` full days at ``pairs`` pairs a minute."""
    from packetx_lakehouse.devices.generator import generate

    return generate(out, users=users, days=days, start=start, seed=SEED, options=generator_options(pairs))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_settings(data_dir: Path):
    from packetx_lakehouse.settings import Settings

    return Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=BENCH_START.isoformat())


def worker_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "AWS_", "DAGSTER_"))}
    return env | {"PACKETX_DATA_DIR": str(data_dir), "PACKETX_START_DATE": BENCH_START.isoformat(),
                  "PACKETX_ENV": "local"}


def run_worker(kind: str, data_dir: Path, **params: Any) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return what it reported."""
    project = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "worker", kind, json.dumps({"data_dir": str(data_dir), **params})],
        cwd=project, env=worker_env(data_dir), capture_output=True, text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"benchmark worker {kind} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1].removeprefix("BENCH_RESULT "))
