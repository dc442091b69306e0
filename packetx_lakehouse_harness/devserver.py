"""Start and stop a throw-away ``dagster dev`` and talk to it over GraphQL.

Used by the end-to-end tests and the benchmarks: a temporary DAGSTER_HOME (holding the project's
``dagster.yaml``, which keeps every storage under its home) and a temporary PACKETX_DATA_DIR keep
the server away from the developer's ``data/``.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar


PROJECT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
#: How long a wait for something that must happen (a run, a sensor tick, a server) may take before it
#: counts as hung: generous, since a loaded 2-core machine is slow, not wrong. A test's own timeout
#: (packetx_lakehouse_tests/conftest.py) bounds the test as a whole.
PATIENCE = 600.0


def poll(what: str, probe: Callable[[], T | None], timeout: float = PATIENCE, interval: float = 0.5) -> T:
    """Call ``probe`` until it returns something truthy: waiting on the event itself, never a fixed sleep.

    Raises:
        TimeoutError: naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_instance_yaml(dagster_home: Path) -> None:
    """The project's instance config in ``dagster_home``: it names no storage path, so everything stays there."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_bytes((PROJECT / "dagster.yaml").read_bytes())


def _restore_sigint() -> None:
    # A background `dagster dev` inherits SIGINT ignored and would then never shut down cleanly.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class GraphQLError(RuntimeError):
    """The server answered with GraphQL errors."""


@dataclass
class DagsterDev:
    """A running ``dagster dev`` (webserver + daemon) on 127.0.0.1."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    location: str = ""
    repository: str = ""
    _log: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls, root: Path, *, env: Mapping[str, str] | None = None, timeout: float = PATIENCE,
        dagster_home: Path | None = None,
    ) -> DagsterDev:
        """Start ``dagster dev`` with DAGSTER_HOME and PACKETX_DATA_DIR under ``root``.

        Args:
            root: An empty directory for the instance, the data and the server log.
            env: Extra environment (e.g. ``PACKETX_START_DATE``); PACKETX_, AWS_ and DAGSTER_
                variables of the caller are not inherited.
            timeout: Seconds to wait for the code location to be served.
            dagster_home: An instance to serve as it is (e.g. the distributed profile's) instead
                of the project's ``dagster.yaml`` copied under ``root``.
        """
        data_dir = root / "data"
        if dagster_home is None:
            dagster_home = root / "dagster_home"
            write_instance_yaml(dagster_home)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKETX_", "AWS_", "DAGSTER_"))}
        child_env |= {"DAGSTER_HOME": str(dagster_home), "PACKETX_DATA_DIR": str(data_dir), "PACKETX_ENV": "local"}
        child_env |= dict(env or {})
        port = free_port()
        return cls.serve(
            [str(Path(sys.executable).parent / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port),
             "-w", str(PROJECT / "workspace.yaml")],
            port=port, cwd=PROJECT, env=child_env, data_dir=data_dir, log_path=root / "dagster_dev.log", timeout=timeout,
        )

    @classmethod
    def serve(
        cls, command: list[str], *, port: int, cwd: Path, env: Mapping[str, str], data_dir: Path, log_path: Path,
        timeout: float = PATIENCE,
    ) -> DagsterDev:
        """Run ``command`` (a ``dagster dev`` on ``port``, however started) and wait for its code location."""
        log = log_path.open("wb")
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_restore_sigint)
        server = cls(f"http://127.0.0.1:{port}", data_dir, process, log_path, _log=log)
        try:
            repo = poll("the webserver to serve the code location", server._repository, timeout=timeout)
        except BaseException:
            server.stop()
            raise
        server.location, server.repository = repo["location"]["name"], repo["name"]
        return server

    def _repository(self) -> dict[str, Any] | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self.process.returncode}; see {self.log_path}")
        try:
            data = self.graphql(
                "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
            )
        except (urllib.error.URLError, ConnectionError):
            return None
        nodes = data["repositoriesOrError"].get("nodes") or []
        return nodes[0] if nodes else None

    def stop(self, timeout: float = 20) -> None:
        """SIGINT the whole process group (webserver, daemon, code server); SIGKILL if it hangs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> DagsterDev:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        if "errors" in body:
            raise GraphQLError(body["errors"])
        return body["data"]

    def launch_backfill(
        self, partitions: list[str], *, asset_keys: list[list[str]] | None = None, job: str | None = None
    ) -> str:
        """Launch a partition backfill of a job's assets or of ``asset_keys`` (paths); return its id.

        A job backfill (what "Launch backfill" on a job's partitions page does) runs the whole
        range of every asset, dimensions and serving included, as one run under the job's
        backfill policy; an asset backfill runs each layer that cannot share a run in its own.
        """
        if (job is None) == (asset_keys is None):
            raise ValueError("give exactly one of asset_keys and job")
        params: dict[str, Any] = {"partitionNames": partitions, "fromFailure": False}
        if job is not None:
            params["selector"] = {
                "partitionSetName": f"{job}_partition_set",
                "repositorySelector": {"repositoryLocationName": self.location, "repositoryName": self.repository},
            }
        else:
            params["assetSelection"] = [{"path": path} for path in asset_keys or []]
        launched = self.graphql(
            """mutation($params: LaunchBackfillParams!) {
                 launchPartitionBackfill(backfillParams: $params) {
                   __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
                 }
               }""",
            params=params,
        )["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {launched}")
        return launched["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        return self.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            id=backfill_id,
        )["partitionBackfillOrError"]["status"]

    def backfill_runs(self, backfill_id: str) -> list[dict[str, Any]]:
        """The backfill's runs (see :meth:`runs_tagged`)."""
        return self.runs_tagged("dagster/backfill", backfill_id)

    def runs_tagged(self, key: str, value: str) -> list[dict[str, Any]]:
        """Runs with a tag: job, status, tags, start/end (epoch s), the assets and checks they
        targeted (null: the whole job, unnamed)."""
        return self.graphql(
            """query($key: String!, $value: String!) {
                 runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
                   ... on Runs { results { runId jobName status startTime endTime tags { key value }
                                           assetSelection { path } assetCheckSelection { name assetKey { path } } } }
                 }
               }""",
            key=key, value=value,
        )["runsOrError"]["results"]

    def _sensor_selector(self, name: str) -> dict[str, str]:
        return {"repositoryLocationName": self.location, "repositoryName": self.repository, "sensorName": name}

    def start_sensor(self, name: str) -> dict[str, str]:
        """Turn a sensor on; return its state: ``id`` (what :meth:`stop_sensor` takes) and ``status``."""
        started = self.graphql(
            """mutation($selector: SensorSelector!) {
                 startSensor(sensorSelector: $selector) {
                   __typename ... on Sensor { sensorState { id status } } ... on PythonError { message }
                 }
               }""",
            selector=self._sensor_selector(name),
        )["startSensor"]
        if started.get("__typename") != "Sensor":
            raise RuntimeError(f"sensor {name} not started: {started}")
        return started["sensorState"]

    def stop_sensor(self, state_id: str) -> str:
        """Turn off the sensor whose state ``id`` :meth:`start_sensor` returned; return its status."""
        stopped = self.graphql(
            """mutation($id: String!) {
                 stopSensor(id: $id) {
                   __typename ... on StopSensorMutationResult { instigationState { status } }
                   ... on PythonError { message }
                 }
               }""",
            id=state_id,
        )["stopSensor"]
        if stopped.get("__typename") != "StopSensorMutationResult":
            raise RuntimeError(f"sensor {state_id} not stopped: {stopped}")
        return stopped["instigationState"]["status"]

    def sensor_ticks(self, name: str, limit: int = 1) -> list[dict[str, Any]]:
        """The sensor's newest ticks: ``status`` (STARTED until the tick is done) and ``timestamp``.

        A tick that is no longer STARTED has stored its cursor, so files dropped after it are new to the next.
        """
        data = self.graphql(
            """query($selector: SensorSelector!, $limit: Int) {
                 sensorOrError(sensorSelector: $selector) {
                   __typename ... on Sensor { sensorState { ticks(limit: $limit) { status timestamp } } }
                 }
               }""",
            selector=self._sensor_selector(name),
            limit=limit,
        )["sensorOrError"]
        if data["__typename"] != "Sensor":
            raise RuntimeError(f"sensor {name} not found: {data}")
        return data["sensorState"]["ticks"]

    def materializations(self, key_path: list[str], partition: str) -> list[dict[str, str]]:
        """Materialisations of one asset partition: ``runId`` and ``timestamp`` (epoch ms)."""
        data = self.graphql(
            """query($key: AssetKeyInput!, $partitions: [String!]) {
                 assetOrError(assetKey: $key) {
                   ... on Asset { assetMaterializations(partitions: $partitions) { runId timestamp } }
                 }
               }""",
            key={"path": key_path},
            partitions=[partition],
        )
        return data["assetOrError"].get("assetMaterializations") or []

    def bronze_rows(self, day: dt.date) -> int:
        """Rows of ``day`` in the server's bronze table, read from its catalog directly (not over GraphQL)."""
        from pyiceberg.expressions import EqualTo

        from packetx_lakehouse.defs.resources import open_catalog
        from packetx_lakehouse.settings import Settings

        catalog = open_catalog(Settings(data_dir=self.data_dir))
        return catalog.load_table("packetx_raw.packets").scan(row_filter=EqualTo("log_date", day)).count()
