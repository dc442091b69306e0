"""Hostile landing input: peak RSS and Dagster event-log growth of a run fed a decompression bomb
or a giant line (``packetx-lakehouse bench --hostile``; see benchmarks/README.md).

Each case is one fresh lakehouse and one fresh Dagster instance (SQLite storage in a temporary
directory) in a child process: the landing area holds the hostile file next to a small, clean
file of another user for the same day, and the whole ``daily_pipeline`` runs for that day twice.
The child reports its peak RSS; the parent measures the instance's storage after each run (the
event log is where materialisation metadata lands) and kills a child whose RSS passes a cap, so
an unbounded case cannot take the machine down.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2026, 11, 20)
HEADER = b"User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth\n"
MIB = 1 << 20
#: A child above this resident size is killed: the figure is then "> cap".
DEFAULT_RSS_CAP_MB = 8192


def _gzip_of_zeros(path: Path, size: int) -> None:
    from packetx_lakehouse_harness.hostile import gzip_of_zeros

    path.write_bytes(gzip_of_zeros(size))


def _giant_line(path: Path, size: int) -> None:
    path.write_bytes(HEADER + b"alice,2026-11-20 10:00,8.8.8.8,192.168.1.20," + b"9" * size + b",1\n")


def _junk_lines(path: Path, lines: int) -> None:
    path.write_bytes(b"x\n" * lines)


#: name -> (file name, writer, size in bytes or lines)
CASES = {
    "gzip_1gib_zeros": ("alice-2026-11-20.csv.gz", _gzip_of_zeros, 1024 * MIB),
    "gzip_100mib_zeros": ("alice-2026-11-20.csv.gz", _gzip_of_zeros, 100 * MIB),
    # The largest single line PACKETX_MAX_FILE_BYTES lets through by default (128 MiB).
    "gzip_zeros_just_under_the_size_bound": ("alice-2026-11-20.csv.gz", _gzip_of_zeros, 127 * MIB),
    "single_5mb_line": ("alice-2026-11-20.csv", _giant_line, 5 * MIB),
    # As many one-byte lines as PACKETX_MAX_FILE_LINES allows by default: each becomes a quarantine row.
    "junk_lines_at_the_line_bound": ("alice-2026-11-20.csv", _junk_lines, 2_000_000),
    "clean_reference": (None, None, 0),
}


def _clean_file(landing: Path) -> None:
    rows = b"".join(b"bob,2026-11-20 10:%02d,8.8.8.8,192.168.1.30,%d,%d\n" % (m, m + 1, 10 * (m + 1)) for m in range(30))
    (landing / "bob-2026-11-20.csv").write_bytes(HEADER + rows)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- in the child ------------------------------------------------------------------------------


def _child(data_dir: Path, home: Path, runs: int) -> dict[str, Any]:
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.runner import materialize_range
    from packetx_lakehouse.settings import Settings

    settings = Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date="2026-11-01")
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.local_temp(str(home))
    out: dict[str, Any] = {"runs": []}
    before = _dir_bytes(home)
    for _ in range(runs):
        started = time.perf_counter()
        result = materialize_range(defs, DAY, DAY, instance=instance, raise_on_error=False, log_level="ERROR")
        after = _dir_bytes(home)
        failure = next((e.message for e in result.all_events if e.is_step_failure), None)
        out["runs"].append({"seconds": round(time.perf_counter() - started, 1), "success": result.success,
                            "event_log_growth_mb": round((after - before) / MIB, 2),
                            "failure": (failure or "")[:300]})
        before = after
    from packetx_lakehouse.defs.resources import open_catalog

    catalog = open_catalog(settings)
    out["bronze_rows"] = catalog.load_table("packetx_raw.packets").scan().to_arrow().num_rows
    quarantine = catalog.load_table("packetx_raw.quarantine").scan().to_arrow()
    out["quarantined_lines"] = quarantine.num_rows
    out["largest_raw_line_bytes"] = max((len(v.as_py().encode()) for v in quarantine.column("raw_line")), default=0)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


# --- in the parent -----------------------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure_case(name: str, root: Path, *, runs: int = 2, rss_cap_mb: float = DEFAULT_RSS_CAP_MB) -> dict[str, Any]:
    """Build the case's landing area, run the child under the RSS cap, return what it reported."""
    file_name, writer, size = CASES[name]
    data_dir, home = root / name / "data", root / name / "dagster_home"
    landing = data_dir / "traffic_log"
    landing.mkdir(parents=True)
    home.mkdir(parents=True)
    _clean_file(landing)
    if writer:
        writer(landing / file_name, size)
    project = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "AWS_", "DAGSTER_"))}
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.hostile_input", "--child", json.dumps(
            {"data_dir": str(data_dir), "home": str(home), "runs": runs})],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = 0.0
    while child.poll() is None:  # a watchdog, not a synchronisation: the cap protects a shared machine
        seen = max(seen, _rss_mb(child.pid))
        if seen > rss_cap_mb:
            child.kill()
            child.wait()
            return {"case": name, "killed": f"RSS passed the {rss_cap_mb:,.0f} MB cap", "peak_rss_mb": round(seen)}
        time.sleep(0.05)
    stdout, stderr = child.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("HOSTILE_RESULT ")]
    if not lines:
        return {"case": name, "crashed": stderr[-2000:]}
    return {"case": name, "landing_file_bytes": (landing / file_name).stat().st_size if file_name else 0,
            **json.loads(lines[-1].removeprefix("HOSTILE_RESULT "))}


def main(cases: list[str], rss_cap_mb: float = DEFAULT_RSS_CAP_MB, runs: int = 2) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="packetx-hostile-"))
    results = []
    try:
        for name in cases:
            result = measure_case(name, root, runs=runs, rss_cap_mb=rss_cap_mb)
            results.append(result)
            print(json.dumps(result), flush=True)
            shutil.rmtree(root / name, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_input", description=__doc__)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: every case")
    parser.add_argument("--rss-cap-mb", type=float, default=DEFAULT_RSS_CAP_MB)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if args.child:
        params = json.loads(args.child)
        print("HOSTILE_RESULT " + json.dumps(_child(Path(params["data_dir"]), Path(params["home"]), params["runs"])))
    else:
        main(args.case or list(CASES), args.rss_cap_mb, args.runs)
