"""One in-process run of ``daily_pipeline`` in a process of its own, which can stop itself on cue.

The crash and overlap tests need a run that is exactly at a given point when they kill, stall
or resume it. ``python -m packetx_lakehouse_tests.support.pipeline_process PARAMS_JSON`` runs the
real pipeline; with ``pause_at`` set, the run writes ``marker`` and sends itself SIGSTOP the first
time it gets there, so the test, waiting for the marker and the stopped state, acts on a run
that is certainly there and has certainly not gone further.

Pause points: ``landing-read`` (bronze has read a landing file, before archiving it),
``archived`` (bronze has archived and read the day, before committing), ``tails`` (a refresh has
archived and read the lines its day's files gained, before committing), ``commit:<table>``
(about to commit to that Iceberg table), ``serving`` (about to replace days in DuckDB).

Faults (``fault``): ``reap-fails-once`` makes the first reap of the watcher that runs beside a
waiting run fail as it once did for real (a lazy-import race in SQLAlchemy), so a test can show
that one failed tick does not leave the run waiting forever.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packetx_lakehouse_harness.devserver import PATIENCE

PROJECT = Path(__file__).resolve().parents[2]


def _pause_once(marker: Path) -> Callable[[], None]:
    done: list[bool] = []

    def pause() -> None:
        if not done:
            done.append(True)
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)

    return pause


def _install_pause(pause_at: str, marker: Path) -> None:
    from packetx_lakehouse.defs.bronze import assets as bronze_assets
    from packetx_lakehouse.lib.ingest import archive
    from packetx_lakehouse.lib.serving import duckdb_store
    from packetx_lakehouse.lib.storage import iceberg

    pause = _pause_once(marker)
    if pause_at == "landing-read":
        real_decompress = archive.decompress_landing

        def decompress_then_pause(*args: Any, **kwargs: Any) -> Any:
            found = real_decompress(*args, **kwargs)
            pause()  # the landing file is read: it grows while this run stands still
            return found

        archive.decompress_landing = decompress_then_pause
    elif pause_at == "archived":
        real_ingest = bronze_assets.ingest_days

        def ingest_then_pause(*args: Any, **kwargs: Any) -> Any:
            batch = real_ingest(*args, **kwargs)
            pause()
            return batch

        bronze_assets.ingest_days = ingest_then_pause
    elif pause_at == "tails":
        real_tails = bronze_assets.ingest_tails

        def tails_then_pause(*args: Any, **kwargs: Any) -> Any:
            batch = real_tails(*args, **kwargs)
            pause()  # a refresh archived and read the new lines, before committing them
            return batch

        bronze_assets.ingest_tails = tails_then_pause
    elif pause_at.startswith("commit:"):
        table_name = pause_at.removeprefix("commit:")
        real_commit = iceberg._commit_overwrite

        def pause_then_commit(table: Any, *args: Any, **kwargs: Any) -> None:
            if ".".join(table.name()) == table_name:
                pause()
            real_commit(table, *args, **kwargs)

        iceberg._commit_overwrite = pause_then_commit
    elif pause_at == "serving":
        real_replace = duckdb_store.replace_days

        def pause_then_replace(*args: Any, **kwargs: Any) -> None:
            pause()
            real_replace(*args, **kwargs)

        duckdb_store.replace_days = pause_then_replace
    else:
        raise SystemExit(f"unknown pause point {pause_at!r}")


def _install_fault(fault: str) -> None:
    import threading

    from packetx_lakehouse import runner

    real_reap = runner.reap_dead_runs
    failed: list[bool] = []

    def reap_failing_once_in_a_watcher(*args: Any, **kwargs: Any) -> list[str]:
        if not failed and threading.current_thread() is not threading.main_thread():
            failed.append(True)
            raise AttributeError("partially initialized module 'sqlalchemy.orm.exc' has no attribute "
                                 "'StaleDataError' (most likely due to a circular import)")
        return real_reap(*args, **kwargs)

    if fault != "reap-fails-once":
        raise SystemExit(f"unknown fault {fault!r}")
    runner.reap_dead_runs = reap_failing_once_in_a_watcher


def main(params: dict[str, Any]) -> None:
    import dagster as dg

    from packetx_lakehouse.definitions import build_definitions
    from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
    from packetx_lakehouse.runner import materialize_range
    from packetx_lakehouse.settings import Settings

    if params.get("pause_at"):
        _install_pause(params["pause_at"], Path(params["marker"]))
    if params.get("fault"):
        _install_fault(params["fault"])
    data_dir = Path(params["data_dir"])
    settings = Settings(data_dir=data_dir, traffic_log_dir=data_dir / "traffic_log", start_date=params["start_date"])
    tags = {REFRESH_TAG: NEW_LINES} if params.get("refresh") else {}
    with dg.DagsterInstance.from_config(params["dagster_home"]) as instance:
        result = materialize_range(build_definitions(settings), dt.date.fromisoformat(params["first"]),
                                   dt.date.fromisoformat(params["last"]), instance=instance, raise_on_error=False,
                                   log_level="WARNING", tags=tags)
    print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)


# --- in the test process ---------------------------------------------------------------------


class RunProcess:
    """A run process started by a test; its output goes to ``log`` (a pipe could fill up while it is stopped)."""

    def __init__(self, log: Path, **params: Any) -> None:
        """``params``: data_dir, dagster_home, start_date, first, last[, pause_at, marker, fault, refresh]."""
        self.log = log
        self.marker = Path(params["marker"]) if params.get("marker") else None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "DAGSTER_"))}
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "packetx_lakehouse_tests.support.pipeline_process",
                 json.dumps({k: str(v) for k, v in params.items()})],
                cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text()[-4000:]

    def finish(self, timeout: float = PATIENCE) -> dict[str, Any]:
        """Wait for the run; its ``{"run_id", "success"}`` (killed and reported on timeout)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the run did not finish within {timeout:.0f} s:\n{self.output()}") from None
        lines = [line for line in self.log.read_text().splitlines() if line.startswith('{"run_id"')]
        if self.process.returncode or not lines:
            raise AssertionError(f"run process exited with {self.process.returncode}:\n{self.output()}")
        return json.loads(lines[-1])

    def wait_until_paused(self, timeout: float = PATIENCE) -> None:
        """Until the process has written its marker and is stopped (``T`` in /proc)."""
        assert self.marker is not None, "started without a pause point"
        deadline = time.monotonic() + timeout
        while not (self.marker.exists() and _state(self.pid) == "T"):
            if self.process.poll() is not None:
                raise AssertionError(f"run process ended ({self.process.returncode}) before its pause point:\n"
                                     f"{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("run process never reached its pause point")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL and reap (a stopped process dies of SIGKILL too)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
