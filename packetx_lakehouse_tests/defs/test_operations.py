"""The fleet_watch job on a generated fleet, through the real pipeline: silent devices named and cleared,
and each day's gold totals given a history (growth, retraction) with its run and files."""

import dataclasses
import datetime as dt

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.operations.silence import DEVICES_SENDING, SILENCE_KEY
from packetx_lakehouse.defs.operations.watch import WATCH_JOB
from packetx_lakehouse.devices.generator import GeneratorOptions, Outage, generate
from packetx_lakehouse.lib.ingest.archive import retract
from packetx_lakehouse.lib.schemas import (
    DAILY_TOTAL_CHANGES,
    DEVICE_SILENCE,
    DEVICE_STATUS,
    GOLD_DAILY_USER_BANDWIDTH,
)
from packetx_lakehouse.lib.storage.iceberg import RECENT_SNAPSHOTS, ensure_table
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.lib.transform.silence import GAP_IN_DAY, SENDING, SILENT, STOPPED_GROWING
from packetx_lakehouse.lib.transform.total_changes import FILE_GREW, FIRST_RECORDED, RETRACTED
from packetx_lakehouse.runner import materialize_range

FIRST = dt.date(2026, 11, 11)
TODAY = FIRST + dt.timedelta(days=4)
SERVER = GeneratorOptions(minutes_per_day=1440, pairs_per_minute=2)
LAPTOP = GeneratorOptions(minutes_per_day=900, pairs_per_minute=2, awake_hours=(7, 23))


def at(hh: int, mm: int = 0, day: dt.date = TODAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), dt.UTC)


def local(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=None)


def write_fleet(lakehouse, alice_off: Outage) -> None:
    """alice: a server; bob-smith: a laptop awake 07-23; carol: a server off 10:00-12:30 today."""
    generate(lakehouse.landing, users=3, days=5, start=FIRST, seed=3, options=SERVER,
             device_options={"bob-smith": LAPTOP},
             outages={"alice": [alice_off], "carol": [Outage(local(at(10)), local(at(12, 30)))]})


@dataclasses.dataclass
class Fleet:
    """A generated fleet's lakehouse, with one Dagster instance for every run (as a deployment has)."""

    lakehouse: object
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def run(self, first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
        result = materialize_range(self.defs, first, last, instance=self.instance, log_level="WARNING")
        assert result.success
        return result

    def watch(self, moment: dt.datetime) -> dg.ExecuteInProcessResult:
        run_config = {"ops": {"device_silence": {"config": {"at": moment.isoformat()}}}}
        return self.defs.resolve_job_def(WATCH_JOB).execute_in_process(run_config=run_config, instance=self.instance)

    def table(self, table_def) -> list[dict]:
        return self.lakehouse.table(table_def.name, table_def.namespace).to_pylist()


def silence_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == DEVICES_SENDING]
    assert evaluation.asset_key == SILENCE_KEY
    return evaluation


@pytest.fixture
def fleet(lakehouse):
    settings = lakehouse.settings.model_copy(update={"silence_minutes": 30})
    write_fleet(lakehouse, Outage(local(at(14, 7))))
    with dg.DagsterInstance.ephemeral() as instance:
        fleet = Fleet(lakehouse, build_definitions(settings), instance)
        fleet.run(FIRST, TODAY)
        yield fleet


def test_a_server_that_stops_fails_the_check_by_name_until_it_resumes(fleet):
    early = silence_check(fleet.watch(at(14, 30)))
    assert early.passed  # 23 minutes: within the 30 allowed

    late = silence_check(fleet.watch(at(15)))
    assert not late.passed
    assert "alice: silent since 2026-11-15 14:07 UTC (53 minutes of its active hours" in late.metadata[
        "problems"].value
    status = {row["user"]: row for row in fleet.table(DEVICE_STATUS)}
    assert {user: row["status"] for user, row in status.items()} == {"alice": SILENT, "bob-smith": SENDING,
                                                                     "carol": SENDING}
    assert status["alice"]["last_seen_utc"] == at(14, 6) and status["bob-smith"]["active_hours"] == "07:00-23:00"
    silences = {(r["user"], r["reason"], r["silent_from"], r["silent_to"]) for r in fleet.table(DEVICE_SILENCE)}
    assert silences == {("alice", STOPPED_GROWING, at(14, 7), None), ("carol", GAP_IN_DAY, at(10), at(12, 30))}

    # alice's capture comes back at 15:30: the next run ingests it, the next evaluation clears the check.
    write_fleet(fleet.lakehouse, Outage(local(at(14, 7)), local(at(15, 30))))
    fleet.run(TODAY, TODAY)
    cleared = silence_check(fleet.watch(at(15, 45)))
    assert cleared.passed, cleared.metadata["problems"].value
    assert ("alice", GAP_IN_DAY, at(15, 30)) in {(r["user"], r["reason"], r["silent_to"])
                                                 for r in fleet.table(DEVICE_SILENCE)}


def test_each_days_total_gets_a_history_of_its_changes_with_run_files_and_amounts(fleet):
    fleet.watch(at(15))
    first = fleet.table(DAILY_TOTAL_CHANGES)
    users = ["alice", "bob-smith", "carol"]
    assert [(r["log_date"], r["user"], r["kind"]) for r in first] == [
        (FIRST + dt.timedelta(days=n), user, FIRST_RECORDED) for n in range(5) for user in users]
    kb = {(r["log_date"], r["user"]): r["total_kb"] for r in fleet.table(GOLD_DAILY_USER_BANDWIDTH)}
    assert {(r["log_date"], r["user"]): r["kb_after"] for r in first} == pytest.approx(kb)
    assert first[0]["files"].startswith(f"alice-{FIRST}.csv (") and first[0]["kb_before"] is None

    # Today's file grows, twice (alice comes back at 15:40, and the minutes from 15:30 turn up too);
    # watches with nothing new record nothing.
    lines = [(fleet.lakehouse.landing / f"alice-{TODAY}.csv").read_bytes().count(b"\n")]
    for back in (local(at(15, 40)), local(at(15, 30))):
        write_fleet(fleet.lakehouse, Outage(local(at(14, 7)), back))
        lines.append((fleet.lakehouse.landing / f"alice-{TODAY}.csv").read_bytes().count(b"\n"))
        grown = fleet.run(TODAY, TODAY)
        fleet.watch(at(16))
    fleet.watch(at(16, 5))
    fleet.watch(at(16, 10))
    # A file of Tuesday's is retracted, as `packetx-lakehouse retract` does, and Tuesday re-run; then
    # today is refreshed more times than a table keeps writes before the next watch, so Iceberg thins
    # out Tuesday's snapshot.
    tuesday = FIRST + dt.timedelta(days=1)
    retract(LocalObjectStore(fleet.lakehouse.settings.archive_dir), f"carol-{tuesday}.csv", by="ops",
            reason="test rig", now=at(16, 20))
    retracted = fleet.run(tuesday, tuesday)
    for _ in range(RECENT_SNAPSHOTS + 1):
        fleet.run(TODAY, TODAY)
    gold = ensure_table(fleet.lakehouse.catalog(), GOLD_DAILY_USER_BANDWIDTH)
    assert retracted.run_id not in {s.summary.get("dagster.run_id") for s in gold.snapshots()}
    fleet.watch(at(16, 30))

    changes = fleet.table(DAILY_TOTAL_CHANGES)
    later = [r for r in changes if r["kind"] != FIRST_RECORDED]
    assert [(r["log_date"], r["user"], r["kind"]) for r in later] == [(tuesday, "carol", RETRACTED),
                                                                       (TODAY, "alice", FILE_GREW)]
    retraction, growth = later
    assert retraction["run_id"] == retracted.run_id  # Dagster's record: Iceberg no longer has the snapshot
    assert retraction["files"] == f"carol-{tuesday}.csv retracted 2026-11-15T16:20:00+00:00 by ops: test rig"
    assert (retraction["kb_before"], retraction["kb_after"]) == (pytest.approx(kb[(tuesday, "carol")]), 0.0)
    assert retraction["delta_kb"] == pytest.approx(-kb[(tuesday, "carol")]) and retraction["rows_after"] == 0
    assert retraction["source_generation"] == retraction["source_generation_before"] + 1
    # Two growths of today's file, one row: from the first state recorded to the last, by the last run.
    assert (growth["updates"], growth["run_id"]) == (2, grown.run_id)
    assert growth["kb_before"] == pytest.approx(kb[(TODAY, "alice")]) and growth["delta_kb"] > 0
    assert growth["files"] == f"alice-{TODAY}.csv grew {lines[0]:,} -> {lines[2]:,} lines"
    assert growth["first_changed_at"] < growth["changed_at"]
    assert len(changes) == 15 + 2  # the other user-days kept their one row; re-runs with equal totals add none
