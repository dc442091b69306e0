import datetime as dt
import gzip
import hashlib

import dagster as dg
import pyarrow.compute as pc

from packetx_lakehouse.defs.bronze.assets import (
    BRONZE_PACKETS_KEY,
    BRONZE_QUARANTINE_KEY,
    RAW_ARCHIVE_KEY,
)
from packetx_lakehouse.defs.partitions import check_partition_key, daily_partitions
from packetx_lakehouse.lib.ingest.archive import load_manifest
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import HEADER, TEST_START_DATE

DAY = dt.date(2026, 11, 20)
DAILY_PARTITIONS = daily_partitions(Settings(start_date=TEST_START_DATE))
ALICE = "alice-2026-11-20.csv"
BLOCK_1 = (
    "alice,2026-11-20 09:53,8.8.8.8,192.168.1.20,210,1158.17\n"
    "alice,2026-11-20 09:53,192.168.1.20,142.250.1.1,948.173,1158.17\n"
)
BLOCK_2 = (
    "alice,2026-11-20 09:54,8.8.8.8,192.168.1.20,1.6833e+06,1683500\n"
    "alice,2026-11-20 09:54,999.1.1.1,192.168.1.20,200,1683500\n"
)


def _run(lakehouse, first=DAY, last=DAY):
    return materialize_range(lakehouse.defs, first, last, selection="group:bronze")


def _table(lakehouse, name):
    return lakehouse.catalog().load_table(f"packetx_raw.{name}").scan().to_arrow()


def test_rerunning_a_day_replaces_it_and_a_grown_file_adds_exactly_the_new_rows(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1)
    for _ in range(3):
        assert _run(lakehouse).success
        packets = _table(lakehouse, "packets")
        assert packets.num_rows == 2
    assert sorted(packets.column("line_number").to_pylist()) == [2, 3]

    lakehouse.append_log(ALICE, BLOCK_2)
    _run(lakehouse)
    _run(lakehouse)
    packets, quarantine = _table(lakehouse, "packets"), _table(lakehouse, "quarantine")
    assert packets.num_rows == 3
    assert pc.max(packets.column("kb_bandwidth")).as_py() == 1683300.0
    assert quarantine.to_pylist()[0] | {"ingested_at": None} == {
        "log_date": DAY,
        "source_file": ALICE,
        "line_number": 5,
        "raw_line": "alice,2026-11-20 09:54,999.1.1.1,192.168.1.20,200,1683500",
        "reason": "bad Source IP '999.1.1.1'",
        "ingested_at": None,
    }


def test_rerun_keeps_identical_rows_including_ingest_time(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1)
    _run(lakehouse)
    first = _table(lakehouse, "packets").sort_by("line_number")
    _run(lakehouse)
    assert _table(lakehouse, "packets").sort_by("line_number").equals(first)


def test_other_days_are_untouched_and_a_range_is_one_commit_per_table(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1)
    lakehouse.write_log("bob-smith-2026-11-21.csv", BLOCK_1.replace("alice", "bob-smith").replace("11-20", "11-21"))
    result = _run(lakehouse, DAY, DAY + dt.timedelta(days=1))
    assert result.success
    table = lakehouse.catalog().load_table("packetx_raw.packets")
    snapshots_before = len(table.snapshots())
    lakehouse.append_log(ALICE, BLOCK_2)
    _run(lakehouse)
    packets = _table(lakehouse, "packets")
    by_day = pc.value_counts(packets.column("log_date")).to_pylist()
    assert {entry["values"]: entry["counts"] for entry in by_day} == {DAY: 3, DAY + dt.timedelta(days=1): 2}
    assert set(packets.column("user").to_pylist()) == {"alice", "bob-smith"}
    # Replacing a day's partition is one commit of one overwrite snapshot.
    assert len(lakehouse.catalog().load_table("packetx_raw.packets").snapshots()) - snapshots_before == 1


def test_archive_is_content_addressed_and_bronze_replays_from_it(lakehouse):
    path = lakehouse.write_log(ALICE, BLOCK_1)
    _run(lakehouse)
    lakehouse.append_log(ALICE, BLOCK_2)
    result = _run(lakehouse)
    archive = LocalObjectStore(lakehouse.settings.archive_dir)
    keys = [info.key for info in archive.list() if info.key.endswith(".gz")]
    manifest = load_manifest(archive, DAY)
    assert manifest.generation == 2  # one per change archived
    # The grown file's version is the first read plus a part with its new bytes, each stored once,
    # named by its SHA-256 and never overwritten.
    parts = manifest.files[ALICE].parts
    assert sorted(keys) == sorted(p.key for p in parts) and len(parts) == 2
    text = path.read_bytes()
    assert [p.sha256 for p in parts] == [hashlib.sha256(text[: parts[0].size]).hexdigest(),
                                         hashlib.sha256(text[parts[0].size:]).hexdigest()]
    assert all(p.sha256[:16] in p.key for p in parts)
    materialization = result.asset_materializations_for_node("bronze_to_gold")
    archive_md = next(m for m in materialization if m.asset_key == RAW_ARCHIVE_KEY).metadata
    assert archive_md["files"].value == 1 and archive_md["newly_archived"].value == 1

    path.unlink()  # the device cleaned up its landing file: nothing may be lost
    _run(lakehouse)
    assert _table(lakehouse, "packets").num_rows == 3


def test_metadata_shows_counts_and_preview(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1 + BLOCK_2 + "\n" + "garbage")
    result = _run(lakehouse)
    by_key = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("bronze_to_gold")}
    packets_md = by_key[BRONZE_PACKETS_KEY]
    assert packets_md["dagster/row_count"].value == 3
    assert packets_md["quarantined"].value == 2  # bad IP + unterminated last line
    assert packets_md["blank_lines"].value == 1
    assert "192.168.1.20" in packets_md["preview"].value
    assert "incomplete last line" in by_key[BRONZE_QUARANTINE_KEY]["top_reasons"].value


def test_day_without_files_succeeds_with_no_rows(lakehouse):
    result = _run(lakehouse)
    assert result.success
    assert _table(lakehouse, "packets").num_rows == 0


def test_out_of_range_dates_get_a_clear_message():
    assert "before the first partition 2025-01-01" in check_partition_key(
        DAILY_PARTITIONS, dt.date(2024, 12, 31), "alice-2024-12-31.csv"
    )
    far = dt.date.today() + dt.timedelta(days=3)
    assert "after today's partition" in check_partition_key(DAILY_PARTITIONS, far, "x")
    assert check_partition_key(DAILY_PARTITIONS, dt.date.today(), "today's file") is None


def test_a_run_for_a_day_after_the_partitions_is_refused_naming_the_file_and_the_range(lakehouse):
    far = dt.date.today() + dt.timedelta(days=200)
    name = f"alice-{far}.csv"
    lakehouse.write_log(name, BLOCK_1.replace("2026-11-20", far.isoformat()))
    result = materialize_range(lakehouse.defs, far, far, raise_on_error=False)

    assert not result.success
    assert result.get_asset_materialization_events() == []  # no layer, serving included, was touched
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == "bronze_to_gold"
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith(f"1 day(s) of the run are outside the partitions {TEST_START_DATE} .. {dt.date.today()} "
                              "(PACKETX_START_DATE through today in PACKETX_TIMEZONE=UTC); nothing was ingested: ")
    assert f"{name} is dated {far}, after today's partition" in message
    assert list(LocalObjectStore(lakehouse.settings.archive_dir).list()) == []  # not even archived


def test_gzip_upload_still_being_written_gives_its_rows_and_quarantines_the_cut_line(lakehouse):
    full = gzip.compress((HEADER + BLOCK_1 + BLOCK_2).encode())
    lakehouse.landing.mkdir(parents=True, exist_ok=True)
    (lakehouse.landing / "alice-2026-11-20.csv.gz").write_bytes(full[: len(full) - 30])
    assert _run(lakehouse).success
    packets, quarantine = _table(lakehouse, "packets"), _table(lakehouse, "quarantine")
    assert packets.num_rows >= 2 and packets.num_rows + quarantine.num_rows <= 5
    assert "incomplete last line" in quarantine.column("reason").to_pylist()[-1]


def test_plain_and_gzip_copies_of_one_file_are_one_source_and_the_longer_wins(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1 + BLOCK_2)
    (lakehouse.landing / f"{ALICE}.gz").write_bytes(gzip.compress((HEADER + BLOCK_1).encode()))
    _run(lakehouse)
    first = _table(lakehouse, "packets").sort_by("line_number")
    assert first.num_rows == 3  # the grown plain file, not the older upload; no double counting
    assert set(first.column("source_file").to_pylist()) == {ALICE}
    _run(lakehouse)
    assert _table(lakehouse, "packets").sort_by("line_number").equals(first)


def test_landing_problems_keep_when_they_were_first_seen_and_leave_once_fixed(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1)
    lakehouse.write_log("bob-2026-11-20.csv", "")  # a header only
    lakehouse.write_log("notes.txt", "")
    _run(lakehouse)
    first = {p["object_key"]: p for p in _table(lakehouse, "landing_problems").to_pylist()}
    assert {key: (p["log_date"], p["reason"]) for key, p in first.items()} == {
        "bob-2026-11-20.csv": (DAY, "header only"), "notes.txt": (None, "not named <user>-<YYYY-MM-DD>.csv[.gz]")}
    _run(lakehouse)
    second = {p["object_key"]: p for p in _table(lakehouse, "landing_problems").to_pylist()}
    assert all(second[k]["first_seen"] == first[k]["first_seen"] < second[k]["last_seen"] for k in first)
    lakehouse.append_log("bob-2026-11-20.csv", BLOCK_1.replace("alice", "bob"))
    (lakehouse.landing / "notes.txt").unlink()
    _run(lakehouse)
    assert _table(lakehouse, "landing_problems").num_rows == 0


def test_a_header_only_file_is_recorded_with_its_size(lakehouse):
    lakehouse.write_log("bob-2026-11-20.csv", "")
    _run(lakehouse)
    [problem] = _table(lakehouse, "landing_problems").to_pylist()
    assert (problem["reason"], problem["size"]) == ("header only", len(HEADER))


def _warnings(instance, result):
    return [e.user_message for e in instance.all_logs(result.run_id) if e.level >= 30]


def test_a_badly_named_file_is_warned_about_once_per_version_and_stays_recorded(lakehouse):
    lakehouse.write_log(ALICE, BLOCK_1)
    lakehouse.write_log("notes.txt", "")
    instance = dg.DagsterInstance.ephemeral()
    runs = [materialize_range(lakehouse.defs, DAY, DAY, selection="group:bronze", instance=instance)
            for _ in range(2)]
    told = [[w for w in _warnings(instance, run) if "notes.txt" in w] for run in runs]
    assert len(told[0]) == 1 and told[1] == []
    assert [p["object_key"] for p in _table(lakehouse, "landing_problems").to_pylist()] == ["notes.txt"]
    lakehouse.append_log("notes.txt", "a new version is told again\n")
    again = materialize_range(lakehouse.defs, DAY, DAY, selection="group:bronze", instance=instance)
    assert len([w for w in _warnings(instance, again) if "notes.txt" in w]) == 1
