"""CPU seconds of the bronze reader on generated files: fast path, careful parser, pyarrow's read.

    python -m benchmarks.reader --users 3 --days 7 --pairs 165 --repeats 3

Rounds are interleaved and CPU time is reported (threads included), as the machine may be busy.
The careful figure is the reader before the fast path existed (``fast_path=False`` runs only it).

Measured 2026-12-01 on the shared 2-core machine (load 3-4), CPU seconds, min / median:

| data | careful (before) | fast path | pyarrow ``read_csv`` |
|---|---:|---:|---:|
| one day, 237 k rows, 15.6 MB | 0.15-0.18 / 0.19-0.22 | 0.13-0.14 / 0.15-0.18 | 0.07-0.08 / 0.09-0.10 |
| 3 users x 7 days, 5.0 M rows, 332 MB | 3.5-4.5 / 4.2-4.6 | 2.6-3.6 / 3.5-3.6 | 1.4-2.0 / 1.4-2.0 |

A declined file (one bad row) pays both reads: ~0.36-0.41 s instead of ~0.22 s for that day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from benchmarks.workload import BENCH_START, generate_logs
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.reader import read_traffic_log_bytes

INGESTED = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def _reader(files: list[tuple[str, bytes]], fast_path: bool) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        rows = taken = 0
        for name, data in files:
            result = read_traffic_log_bytes(data, source_file=name, log_date=parse_log_file_name(name).date,
                                            ingested_at=INGESTED, fast_path=fast_path)
            rows, taken = rows + result.good, taken + result.fast_path
        return rows, taken

    return read


def _pyarrow(files: list[tuple[str, bytes]]) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        return sum(pa_csv.read_csv(pa.BufferReader(data)).num_rows for _, data in files), 0

    return read


def measure(directory: Path, repeats: int) -> dict[str, object]:
    files = [(path.name, path.read_bytes()) for path in sorted(directory.glob("*.csv"))]
    tasks = {"careful": _reader(files, False), "fast": _reader(files, True), "pyarrow": _pyarrow(files)}
    cpu: dict[str, list[float]] = {name: [] for name in tasks}
    rows: dict[str, tuple[int, int]] = {}
    for _ in range(repeats):
        for name, task in tasks.items():
            started = time.process_time()
            rows[name] = task()
            cpu[name].append(time.process_time() - started)
    return {
        "files": len(files), "mb": round(sum(len(data) for _, data in files) / 1e6, 1), "rows": rows["careful"][0],
        "fast_path_files": rows["fast"][1],
        **{f"{name}_cpu_min": round(min(values), 3) for name, values in cpu.items()},
        **{f"{name}_cpu_median": round(statistics.median(values), 3) for name, values in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=165, help="pairs a minute (165 = ~250 k rows a day)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_logs(Path(tmp), users=args.users, days=args.days, pairs=args.pairs, start=BENCH_START)
        print(json.dumps(measure(Path(tmp), args.repeats)))


if __name__ == "__main__":
    main()
