"""`packetx-lakehouse ui` as the README has a new user type it, in a fresh clone: one location name,
no warning, and nothing written into the checkout (Dagster's instance, telemetry queues included,
lives under the data directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from packetx_lakehouse_harness.devserver import DagsterDev, free_port

ROOT = Path(__file__).resolve().parents[2]


def clone(target: Path) -> set[str]:
    """The checkout's tracked files copied to ``target`` (a clone, whatever its folder is called)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for name in listed.splitlines():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes((ROOT / name).read_bytes())
    return {str(p.relative_to(target)) for p in target.rglob("*")}


def test_ui_serves_one_location_without_warnings_and_writes_only_under_the_data_directory(tmp_path):
    checkout = tmp_path / "repo"  # the name a clone got when the location name warning flooded the log
    before = clone(checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "AWS_", "DAGSTER_"))}
    port = free_port()
    server = DagsterDev.serve([str(Path(sys.executable).parent / "packetx-lakehouse"), "ui", "--port", str(port)],
                              port=port, cwd=checkout, env=env, data_dir=checkout / "data",
                              log_path=tmp_path / "ui.log")
    try:
        assert server.location == "packetx_lakehouse"
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "does not match" not in log and "Traceback" not in log, log[-3000:]
    after = {str(p.relative_to(checkout)) for p in checkout.rglob("*")}
    # Python's own byte-code caches aside (git ignores them), only the data directory is new.
    assert {name for name in after - before if name.split("/")[0] != "data" and "__pycache__" not in name} == set()
    home = checkout / "data" / "dagster"
    assert (home / "dagster.yaml").read_bytes() == (ROOT / "dagster.yaml").read_bytes()
    assert (home / "history" / "runs.db").is_file()
