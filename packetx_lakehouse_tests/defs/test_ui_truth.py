"""What the UI shows is what is true (issue 24): a day's failed check stays failed until that day
is fixed, whatever day ran last, and one misdated file fails its own day only."""

import datetime as dt

import dagster as dg
import duckdb
import pytest

from packetx_lakehouse import cli
from packetx_lakehouse.defs.bronze.assets import (
    LANDING_PROBLEMS_CHECK,
    PROBLEMS_TAG,
    ROWS_ON_FILE_DATE,
    SOURCES_INTACT,
)
from packetx_lakehouse.defs.conventions import RAW_ARCHIVE_KEY
from packetx_lakehouse.devices.generator import GeneratorOptions, generate, generate_day
from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.ingest.archive import retract
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import materialize_range

SAMPLE_DAY, NEXT_DAY = dt.date(2026, 11, 21), dt.date(2026, 11, 22)
ALICE = "alice-2026-11-21.csv"
SAMPLE = (SAMPLES_DIR / ALICE).read_bytes()


def check_days(defs: dg.Definitions, instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> dict[str, set[str]]:
    """The days in each status of a day-partitioned check, as the UI's check list reads them."""
    partitions = defs.resolve_asset_graph().get(key).partitions_def
    state = instance.event_log_storage.get_asset_check_state([(key, partitions)])[key]
    return {status.value: set(subset.subset_value.get_partition_keys())
            for status, subset in state.subsets.items() if not subset.is_empty}


def test_a_shrunk_files_day_stays_failed_after_another_day_ran_and_turns_green_once_fixed(lakehouse):
    """24.1: the shrunk file's day failed ``sources_intact``; the next run of another day passed it,
    and the UI then showed the check "Succeeded"."""
    instance = dg.DagsterInstance.ephemeral()
    path = lakehouse.write_log(ALICE, "")
    path.write_bytes(SAMPLE)
    lakehouse.write_log(f"bob-{NEXT_DAY}.csv", generate_day("bob", NEXT_DAY, seed=1).decode().split("\n", 1)[1])
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance).success
    path.write_bytes(b"\n".join(SAMPLE.split(b"\n")[:158]) + b"\n")

    shrunk = materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance)
    # The run keeps the longer version, so it succeeds, and says what it found.
    tags = instance.get_run_by_id(shrunk.run_id).tags
    assert tags[PROBLEMS_TAG] == f"landing_problems failed on {SAMPLE_DAY}; sources_intact failed on {SAMPLE_DAY}"
    other = materialize_range(lakehouse.defs, NEXT_DAY, NEXT_DAY, instance=instance)
    assert other.success and PROBLEMS_TAG not in instance.get_run_by_id(other.run_id).tags

    for name in (SOURCES_INTACT, LANDING_PROBLEMS_CHECK):
        days = check_days(lakehouse.defs, instance, dg.AssetCheckKey(RAW_ARCHIVE_KEY, name))
        assert days == {"FAILED": {str(SAMPLE_DAY)}, "SUCCEEDED": {str(NEXT_DAY)}}, name

    path.write_bytes(SAMPLE)  # the full file is back
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance).success
    days = check_days(lakehouse.defs, instance, dg.AssetCheckKey(RAW_ARCHIVE_KEY, SOURCES_INTACT))
    assert days == {"SUCCEEDED": {str(SAMPLE_DAY), str(NEXT_DAY)}}


def _misdated_range(lakehouse) -> tuple[list[dt.date], str]:
    """Three generated days; the middle day's first file is a renamed copy of the first day's."""
    days = [SAMPLE_DAY + dt.timedelta(days=n) for n in range(3)]
    generate(lakehouse.landing, users=2, days=3, start=days[0], seed=4,
             options=GeneratorOptions(minutes_per_day=20, pairs_per_minute=4))
    first, *_ = sorted(lakehouse.landing.glob(f"*-{days[0]}.csv"))
    renamed = first.name.replace(str(days[0]), str(days[1]))
    (lakehouse.landing / renamed).write_bytes(first.read_bytes())
    return days, renamed


def _gold_days(lakehouse) -> set[dt.date]:
    return set(lakehouse.table("daily_user_bandwidth", "packetx_gold").column("log_date").to_pylist())


def test_one_misdated_file_fails_its_own_day_and_the_range_s_other_days_are_built(lakehouse):
    """24.11: the README demo's one run over a range built nothing when one day had a renamed copy."""
    days, renamed = _misdated_range(lakehouse)
    instance = dg.DagsterInstance.ephemeral()

    with pytest.raises(dg.Failure, match=rf"{renamed}: \d+ of \d+ rows are not on the file's date {days[1]}"):
        materialize_range(lakehouse.defs, days[0], days[-1], instance=instance)
    assert _gold_days(lakehouse) == {days[0], days[2]}
    with duckdb.connect(str(lakehouse.settings.serving_path), read_only=True) as con:
        served = {row[0] for row in con.execute("SELECT DISTINCT log_date FROM gold.daily_user_bandwidth").fetchall()}
    assert served == {days[0], days[2]}
    # In the UI: the bad day is failed downstream of bronze (its run failed), the others materialised.
    silver = dg.AssetKey(["packetx_silver", "packets"])
    status = instance.get_status_by_partition(silver, [str(d) for d in days],
                                              lakehouse.defs.resolve_assets_def(silver).partitions_def)
    assert status == {str(days[0]): dg.AssetPartitionStatus.MATERIALIZED,
                      str(days[1]): dg.AssetPartitionStatus.FAILED,
                      str(days[2]): dg.AssetPartitionStatus.MATERIALIZED}

    # Fixed: the copy is retracted (it was archived, so deleting it alone would keep it served).
    retract(LocalObjectStore(lakehouse.settings.archive_dir), renamed, by="test", reason="a renamed copy",
            now=dt.datetime.now(dt.UTC))
    assert materialize_range(lakehouse.defs, days[1], days[1], instance=instance).success
    assert _gold_days(lakehouse) == set(days)
    # Retracting resolved it: the day's checks pass (the retraction stays on record, as resolved).
    for key in (dg.AssetCheckKey(dg.AssetKey(["packetx_raw", "packets"]), ROWS_ON_FILE_DATE),
                dg.AssetCheckKey(RAW_ARCHIVE_KEY, LANDING_PROBLEMS_CHECK)):
        assert check_days(lakehouse.defs, instance, key) == {"SUCCEEDED": {str(d) for d in days}}, key


def test_an_acknowledged_problem_stops_failing_its_day_and_stays_on_record(lakehouse, monkeypatch, capsys):
    """A file cleaned out of the landing area after ingestion warns on every run of its day until an
    operator acknowledges it (the archive keeps serving it)."""
    monkeypatch.setenv("PACKETX_DATA_DIR", str(lakehouse.settings.data_dir))
    monkeypatch.setenv("PACKETX_TRAFFIC_LOG_DIR", str(lakehouse.landing))
    instance = dg.DagsterInstance.ephemeral()
    path = lakehouse.write_log(ALICE, "")
    path.write_bytes(SAMPLE)
    assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance).success
    path.unlink()
    for _ in range(2):  # the first run fails sources_intact, later ones warn
        assert materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance).success
    warning = dg.AssetCheckKey(RAW_ARCHIVE_KEY, LANDING_PROBLEMS_CHECK)
    assert check_days(lakehouse.defs, instance, warning) == {"FAILED": {str(SAMPLE_DAY)}}

    assert cli.main(["acknowledge", ALICE, "--reason", "cleaned up after upload", "--no-run"]) == 0
    assert f"Acknowledged {ALICE} on {SAMPLE_DAY} (gone:" in capsys.readouterr().out
    result = materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance)
    assert check_days(lakehouse.defs, instance, warning) == {"SUCCEEDED": {str(SAMPLE_DAY)}}
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == LANDING_PROBLEMS_CHECK]
    assert f"{ALICE}: " in evaluation.metadata["resolved"].value and "(acknowledged)" in evaluation.metadata[
        "resolved"].value
    assert [p["kind"] for p in lakehouse.table("landing_problems").to_pylist()] == ["gone"]  # still on record

    assert cli.main(["acknowledge", ALICE, "--undo", "--no-run"]) == 0
    materialize_range(lakehouse.defs, SAMPLE_DAY, SAMPLE_DAY, instance=instance)
    assert check_days(lakehouse.defs, instance, warning) == {"FAILED": {str(SAMPLE_DAY)}}
