"""End to end through the real webserver and daemon: `dagster dev`, driven over GraphQL.

``packetx_lakehouse_harness.devserver`` runs the server: a temporary DAGSTER_HOME and PACKETX_DATA_DIR keep
it away from the developer's ``data/``. One server serves both tests; the sensor test stops its
sensor, so the backfill sees only the runs it launched.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from packetx_lakehouse.definitions import defs as load_defs
from packetx_lakehouse.defs.automation.jobs import DAILY_PIPELINE
from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.storage.objectstore import write_bytes_atomically
from packetx_lakehouse.runner import RANGE_END_TAG, RANGE_START_TAG
from packetx_lakehouse_harness.devserver import DagsterDev, poll
from packetx_lakehouse_tests.conftest import TEST_START_DATE

#: The day counts as through the lakehouse once this gold table has it.
TARGET = dg.AssetKey(["packetx_gold", "daily_user_bandwidth"])
BRONZE_PACKETS_KEY = dg.AssetKey(["packetx_raw", "packets"])
OPTIONS = GeneratorOptions(minutes_per_day=20, pairs_per_minute=10)


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    # The backfill test's days are before the default start (the samples' day) on some dates.
    server = DagsterDev.start(tmp_path_factory.mktemp("e2e"), env={"PACKETX_START_DATE": TEST_START_DATE})
    try:
        yield server
    finally:
        server.stop(timeout=10)


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    """The code location the server loads, as ``dagster dev`` loads it: from an empty directory (no
    developer's ``.env``), with the environment the server gets; what loading it sets is undone after."""
    with pytest.MonkeyPatch.context() as env:
        env.chdir(tmp_path_factory.mktemp("code_location"))
        env.setenv("PACKETX_START_DATE", TEST_START_DATE)
        saved = dict(os.environ)
        try:
            return load_defs()
        finally:
            os.environ.clear()
            os.environ.update(saved)


def finished_runs(server: DagsterDev, backfill_id: str) -> list[dict[str, Any]] | None:
    """The backfill's runs once there are some and all have finished."""
    runs = server.backfill_runs(backfill_id)
    return runs if runs and all(run["status"] in ("SUCCESS", "FAILURE", "CANCELED") for run in runs) else None


def test_a_dropped_then_grown_file_reaches_gold(dagster_dev: DagsterDev, defs: dg.Definitions,
                                                record_testsuite_property):
    assert TARGET in defs.resolve_job_def(DAILY_PIPELINE).asset_layer.selected_asset_keys
    sensor = dagster_dev.start_sensor("landing_sensor")
    assert sensor["status"] == "RUNNING", sensor
    try:
        drop_seconds, grow_seconds = drop_and_grow_a_file(dagster_dev)
    finally:  # the backfill test's files are for the backfill alone
        assert dagster_dev.stop_sensor(sensor["id"]) == "STOPPED"
    # Each refresh names every asset and check of the job, so automation sees that the run which
    # updated silver built gold too, and never asks for gold again (a whole-day rebuild).
    job = defs.resolve_job_def(DAILY_PIPELINE)
    refreshes = dagster_dev.runs_tagged("dagster/sensor_name", "landing_sensor")
    assert len(refreshes) >= 2
    for run in refreshes:
        assert {dg.AssetKey(a["path"]) for a in run["assetSelection"]} == job.asset_layer.selected_asset_keys
        assert {dg.AssetCheckKey(dg.AssetKey(c["assetKey"]["path"]), c["name"]) for c in run["assetCheckSelection"]} \
            == set(job.asset_layer.asset_graph.asset_check_keys)
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
    run_id = poll(f"{TARGET.to_user_string()} {today}",
                  lambda: dagster_dev.materializations(TARGET.path, str(today)))[0]["runId"]
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
        newest_bronze = max(dagster_dev.materializations(BRONZE_PACKETS_KEY.path, str(today)),
                            key=lambda m: float(m["timestamp"]))["runId"]
        gold_runs = {m["runId"] for m in dagster_dev.materializations(TARGET.path, str(today))}
        return newest_bronze if newest_bronze in gold_runs - {run_id} else None

    poll(f"{TARGET.to_user_string()} {today} to be re-materialised with the new rows", regrown_gold)
    grow_seconds = time.monotonic() - grown
    return drop_seconds, grow_seconds


def test_a_backfill_range_from_the_ui_is_one_run_with_every_day(dagster_dev: DagsterDev, defs: dg.Definitions):
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=n) for n in (12, 11, 10)]
    landing = dagster_dev.data_dir / "traffic_log"
    landing.mkdir(parents=True, exist_ok=True)
    expected = {}
    for seed, day in enumerate(days):
        data = generate_day("carol", day, seed=seed, options=OPTIONS)
        write_bytes_atomically(landing / f"carol-{day}.csv", data)
        expected[day] = data.count(b"\n") - 1
    # A backfill of the daily job (its partitions page in the UI): every asset, dimensions,
    # anomalies and serving included, for the whole range in one run launched by the daemon.
    keys = defs.resolve_job_def(DAILY_PIPELINE).asset_layer.selected_asset_keys
    try:
        backfill_id = dagster_dev.launch_backfill([str(day) for day in days], job=DAILY_PIPELINE)
        runs = poll("the backfill's run", lambda: finished_runs(dagster_dev, backfill_id))
    finally:  # the device cleans up; the archive keeps the files
        for day in days:
            (landing / f"carol-{day}.csv").unlink()
    assert len(runs) == 1
    tags = {tag["key"]: tag["value"] for tag in runs[0]["tags"]}
    assert (runs[0]["status"], tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == ("SUCCESS", str(days[0]), str(days[-1]))
    assert (runs[0]["jobName"], runs[0]["assetSelection"]) == (DAILY_PIPELINE, None)  # the whole job
    in_run = {key for key in keys for m in dagster_dev.materializations(key.path, str(days[-1]))
              if m["runId"] == runs[0]["runId"]}
    partitioned = {key for key in keys if defs.resolve_asset_graph().get(key).is_partitioned}
    assert in_run == partitioned and len(partitioned) > 10
    assert {day: dagster_dev.bronze_rows(day) for day in days} == expected
    # Freshness is about now, not these old days: the backfill never evaluated it.
    executions = dagster_dev.graphql(
        """{ assetCheckExecutions(assetKey: {path: ["packetx_gold", "daily_user_bandwidth"]},
                                  checkName: "yesterday_is_fresh", limit: 10) { runId status } }""")
    assert [e for e in executions["assetCheckExecutions"] if e["runId"] == runs[0]["runId"]] == []


def test_the_ui_shows_columns_descriptions_and_no_noise_on_a_fresh_start(dagster_dev: DagsterDev):
    """What a new user sees before anything ran: described columns, a described job, no tour, no warnings."""
    node = dagster_dev.graphql("""{ assetNodeOrError(assetKey: {path: ["packetx_gold", "hourly_bandwidth"]}) {
        ... on AssetNode { description metadataEntries { label
          ... on TableSchemaMetadataEntry { schema { columns { name type description } } } } } } }""")
    entries = {e["label"]: e for e in node["assetNodeOrError"]["metadataEntries"]}
    columns = entries["dagster/column_schema"]["schema"]["columns"]
    assert [c["name"] for c in columns] == ["log_date", "user", "hour_utc", "remote_ip", "direction", "kb", "minutes"]
    assert all(len(c["description"]) > 10 for c in columns) and columns[2]["type"] == "timestamptz"
    assert "dagster/column_lineage" in entries
    job = dagster_dev.graphql(
        """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) { ... on Pipeline { description } } }""",
        selector={"repositoryLocationName": dagster_dev.location, "repositoryName": dagster_dev.repository,
                  "pipelineName": DAILY_PIPELINE})
    assert job["pipelineOrError"]["description"].startswith("Every asset of the lakehouse")
    assert dagster_dev.graphql("{ shouldShowNux }") == {"shouldShowNux": False}
    assert not (dagster_dev.data_dir.parent / "dagster_home" / ".nux").exists()
    log = dagster_dev.log_path.read_text(errors="replace")
    assert not [line for line in log.splitlines() if "Warning" in line and "packetx_lakehouse" in line]
