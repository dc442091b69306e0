"""End to end through the real webserver and daemon: `dagster dev`, driven over GraphQL.

A temporary DAGSTER_HOME (the project's dagster.yaml with storage moved into it) and a
temporary PACKETX_DATA_DIR keep the run away from the developer's ``data/``. One server serves
both tests; the sensor test stops its sensor, so the backfill sees only the runs it launched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pytest
import yaml
from pyiceberg.expressions import EqualTo

from packetx_lakehouse.definitions import defs
from packetx_lakehouse.defs.jobs import DAILY_PIPELINE
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.lib.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.objectstore import write_bytes_atomically
from packetx_lakehouse.runner import RANGE_END_TAG, RANGE_START_TAG
from packetx_lakehouse.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
#: The day counts as through the lakehouse once this gold table has it.
TARGET = dg.AssetKey(["packetx_gold", "daily_user_bandwidth"])
BRONZE_PACKETS_KEY = dg.AssetKey(["packetx_raw", "packets"])
OPTIONS = GeneratorOptions(minutes_per_day=20, pairs_per_minute=10)
T = TypeVar("T")


@dataclass
class DagsterDev:
    url: str
    data_dir: Path
    location: str
    repository: str

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def bronze_rows(self, day: dt.date) -> int:
        catalog = build_resources(Settings(data_dir=self.data_dir))["iceberg"].load()
        return catalog.load_table("packetx_raw.packets").scan(row_filter=EqualTo("log_date", day)).count()

    def materializations(self, key: dg.AssetKey, partition: str) -> list[dict[str, str]]:
        data = self.graphql(
            """query($key: AssetKeyInput!, $partitions: [String!]) {
                 assetOrError(assetKey: $key) {
                   ... on Asset { assetMaterializations(partitions: $partitions) { runId timestamp } }
                 }
               }""",
            key={"path": key.path},
            partitions=[partition],
        )
        return data["assetOrError"].get("assetMaterializations") or []


def poll(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll until ``probe`` returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_instance_yaml(dagster_home: Path) -> None:
    """The project's instance config with every storage path moved under ``dagster_home``."""
    config = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    config["storage"]["sqlite"]["base_dir"] = str(dagster_home / "storage")
    config["local_artifact_storage"]["config"]["base_dir"] = str(dagster_home)
    config["compute_logs"]["config"]["base_dir"] = str(dagster_home / "logs")
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _restore_sigint() -> None:
    # A background `dagster dev` inherits SIGINT ignored and would then never shut down cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("e2e")
    dagster_home, data_dir = root / "dagster_home", root / "data"
    dagster_home.mkdir()
    write_instance_yaml(dagster_home)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PACKETX_", "AWS_", "DAGSTER_"))}
    env |= {"DAGSTER_HOME": str(dagster_home), "PACKETX_DATA_DIR": str(data_dir), "PACKETX_ENV": "local"}
    port = free_port()
    log = (root / "dagster_dev.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(PROJECT / "workspace.yaml")],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_restore_sigint,
    )
    try:
        server = DagsterDev(f"http://127.0.0.1:{port}", data_dir, "", "")

        def repository() -> dict[str, Any] | None:
            if process.poll() is not None:
                pytest.fail(f"dagster dev exited with {process.returncode}; see {log.name}")
            try:
                data = server.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
            except (urllib.error.URLError, ConnectionError):
                return None
            nodes = data["repositoriesOrError"].get("nodes") or []
            return nodes[0] if nodes else None

        repo = poll("the webserver to serve the code location", repository, timeout=90)
        server.location, server.repository = repo["location"]["name"], repo["name"]
        yield server
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def launch_backfill(server: DagsterDev, keys: Iterable[dg.AssetKey], days: list[dt.date]) -> str:
    launched = server.graphql(
        """mutation($params: LaunchBackfillParams!) {
             launchPartitionBackfill(backfillParams: $params) {
               __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
             }
           }""",
        params={"assetSelection": [{"path": key.path} for key in sorted(keys)],
                "partitionNames": [str(day) for day in days], "fromFailure": False},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def finished_runs(server: DagsterDev, backfill_id: str) -> list[dict[str, Any]] | None:
    """The backfill's runs once there are some and all have finished."""
    runs = server.graphql(
        """query($id: String!) {
             runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
               ... on Runs { results { status tags { key value } assetSelection { path } } }
             }
           }""",
        id=backfill_id,
    )["runsOrError"]["results"]
    return runs if runs and all(run["status"] in ("SUCCESS", "FAILURE", "CANCELED") for run in runs) else None


def test_a_dropped_then_grown_file_reaches_gold(dagster_dev: DagsterDev, record_testsuite_property):
    assert TARGET in defs.resolve_job_def(DAILY_PIPELINE).asset_layer.selected_asset_keys
    started = dagster_dev.graphql(
        """mutation($selector: SensorSelector!) {
             startSensor(sensorSelector: $selector) {
               __typename ... on Sensor { sensorState { id status } } ... on PythonError { message }
             }
           }""",
        selector={"repositoryLocationName": dagster_dev.location, "repositoryName": dagster_dev.repository,
                  "sensorName": "landing_sensor"},
    )["startSensor"]
    assert (started["__typename"], started["sensorState"]["status"]) == ("Sensor", "RUNNING"), started
    try:
        drop_seconds, grow_seconds = drop_and_grow_a_file(dagster_dev)
    finally:  # the backfill test's files are for the backfill alone
        stopped = dagster_dev.graphql(
            """mutation($id: String!) {
                 stopSensor(id: $id) { ... on StopSensorMutationResult { instigationState { status } } }
               }""",
            id=started["sensorState"]["id"],
        )["stopSensor"]
        assert stopped == {"instigationState": {"status": "STOPPED"}}
    record_testsuite_property("file_drop_to_gold_seconds", round(drop_seconds, 1))
    record_testsuite_property("file_growth_to_gold_seconds", round(grow_seconds, 1))
    print(f"\nfile drop -> {TARGET.to_user_string()} materialised: {drop_seconds:.1f} s; "
          f"growth -> re-materialised: {grow_seconds:.1f} s")


def drop_and_grow_a_file(dagster_dev: DagsterDev) -> tuple[float, float]:
    """Seconds from dropping today's file, then from appending to it, to the target materialised."""
    today = dt.datetime.now(dt.UTC).date()
    path = dagster_dev.data_dir / "traffic_log" / f"alice-{today}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    first = generate_day("alice", today, seed=1, options=OPTIONS)
    dropped = time.monotonic()
    write_bytes_atomically(path, first)
    run_id = poll(f"{TARGET.to_user_string()} {today}", lambda: dagster_dev.materializations(TARGET, str(today)),
                  timeout=90)[0]["runId"]
    drop_seconds = time.monotonic() - dropped
    assert dagster_dev.bronze_rows(today) == first.count(b"\n") - 1

    more = generate_day("alice", today, seed=2, options=OPTIONS).split(b"\n", 1)[1]
    expected_rows = first.count(b"\n") - 1 + more.count(b"\n")
    grown = time.monotonic()
    with path.open("ab") as handle:
        handle.write(more)

    def regrown_gold() -> str | None:
        """The run that ingested the grown file, once it has also materialised the target.

        Other runs may materialise the target meanwhile (the automation sensor, or a run that
        saw the append half-written), so the target must come from the run of the newest bronze.
        """
        if dagster_dev.bronze_rows(today) != expected_rows:
            return None
        newest_bronze = max(dagster_dev.materializations(BRONZE_PACKETS_KEY, str(today)),
                            key=lambda m: float(m["timestamp"]))["runId"]
        gold_runs = {m["runId"] for m in dagster_dev.materializations(TARGET, str(today))}
        return newest_bronze if newest_bronze in gold_runs - {run_id} else None

    poll(f"{TARGET.to_user_string()} {today} to be re-materialised with the new rows", regrown_gold, timeout=90)
    grow_seconds = time.monotonic() - grown
    return drop_seconds, grow_seconds


def test_a_backfill_range_from_the_ui_is_one_run_with_every_day(dagster_dev: DagsterDev):
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in (12, 11, 10)]
    landing = dagster_dev.data_dir / "traffic_log"
    landing.mkdir(parents=True, exist_ok=True)
    expected = {}
    for seed, day in enumerate(days):
        data = generate_day("carol", day, seed=seed, options=OPTIONS)
        write_bytes_atomically(landing / f"carol-{day}.csv", data)
        expected[day] = data.count(b"\n") - 1
    # Bronze through the target: what one run can hold. (Assets that look back over several days
    # or read the whole day range, like anomalies and serving, follow in runs of their own.)
    keys = dg.AssetSelection.assets(TARGET).upstream().required_multi_asset_neighbors().resolve(
        defs.resolve_asset_graph()
    )
    try:
        backfill_id = launch_backfill(dagster_dev, keys, days)
        # The daemon (every 30 s) requests the whole range at once; one run that holds every selected
        # asset for every day leaves nothing to request later.
        runs = poll("the backfill's run", lambda: finished_runs(dagster_dev, backfill_id), timeout=120)
    finally:  # the device cleans up; the archive keeps the files
        for day in days:
            (landing / f"carol-{day}.csv").unlink()
    assert len(runs) == 1
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert (runs[0]["status"], tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == ("SUCCESS", str(days[0]), str(days[-1]))
    assert sorted(dg.AssetKey(a["path"]) for a in runs[0]["assetSelection"]) == sorted(keys)
    assert {day: dagster_dev.bronze_rows(day) for day in days} == expected
