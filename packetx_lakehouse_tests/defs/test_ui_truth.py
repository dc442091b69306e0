"""What the UI shows is what is true (issue 24): a day's failed check stays failed until that day
is fixed, whatever day ran last, and one misdated file fails its own day only."""

import datetime as dt

import dagster as dg

from packetx_lakehouse.defs.bronze.assets import LANDING_PROBLEMS_CHECK, PROBLEMS_TAG, SOURCES_INTACT
from packetx_lakehouse.defs.conventions import RAW_ARCHIVE_KEY
from packetx_lakehouse.devices.generator import generate_day
from packetx_lakehouse.devices.samples import SAMPLES_DIR
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
