"""Raw-archive retention: every version for a while, then the newest; never what bronze or the manifest needs."""

import dataclasses
import datetime as dt
import os

import pytest

from packetx_lakehouse.lib.ingest.archive import (
    PARTS_PER_MERGE,
    WHOLE_LEVEL,
    DayManifest,
    collect_day,
    load_manifest,
)
from packetx_lakehouse.lib.ingest.retention import (
    ArchiveRetention,
    apply_archive_retention,
)
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore

DAY = dt.date(2026, 11, 20)
HEADER = b"User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth\n"
WEEK = ArchiveRetention(keep_all_for=dt.timedelta(days=7))


def line(minute: int, host: str = "8.8.8.8") -> bytes:
    return f"alice,2026-11-20 10:{minute:02d},{host},192.168.1.2,1,1\n".encode()


def age(archive, keys, at: dt.datetime) -> None:
    for key in keys:
        os.utime(archive.root / key, (at.timestamp(), at.timestamp()))


def rewrite(tmp_path, versions: int, *, start: dt.datetime):
    """Archive ``versions`` different versions of one file (each rewritten, not grown), one a minute."""
    landing, archive = LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")
    for n in range(versions):
        at = start + dt.timedelta(minutes=n)
        landing.put("alice-2026-11-20.csv", HEADER + line(0, host=f"8.8.8.{n}"))
        sources = collect_day(landing, archive, DAY, landing.list(), now=at)
        age(archive, [p.key for p in sources.files[0][0].parts], at)
    return landing, archive


def grow(tmp_path, minutes: int, *, start: dt.datetime):
    """A file growing one line a minute, each growth a part (merged ``PARTS_PER_MERGE`` at a time)."""
    landing, archive = LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")
    for n in range(minutes):
        at = start + dt.timedelta(minutes=n)
        landing.put("alice-2026-11-20.csv", HEADER + b"".join(line(m) for m in range(n + 1)))
        before = {info.key for info in archive.list()}
        collect_day(landing, archive, DAY, landing.list(), now=at)
        age(archive, {info.key for info in archive.list()} - before, at)
    return landing, archive


def up_to_date(archive):
    """Bronze built from the manifest's generation (the normal case)."""
    return lambda day: load_manifest(archive, day).generation


def versions(archive) -> list[str]:
    """The archived file versions (not the manifest nor its history)."""
    return sorted(info.key for info in archive.list() if info.key.endswith(".gz"))


def history(archive) -> list[str]:
    return sorted(info.key.rsplit("/", 1)[1] for info in archive.list() if "/manifests/" in info.key)


def named(archive) -> list[str]:
    return sorted(p.key for entry in load_manifest(archive, DAY).files.values() for p in entry.parts)


def test_every_replaced_version_is_kept_within_the_window_then_only_the_current_one(tmp_path):
    start = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    _, archive = rewrite(tmp_path, 5, start=start)
    assert len(versions(archive)) == 5
    report = apply_archive_retention(archive, now=start + dt.timedelta(days=6), retention=WEEK,
                                     bronze_generation=up_to_date(archive))
    assert (report.versions_deleted, report.versions_kept) == (0, 5)

    report = apply_archive_retention(archive, now=start + dt.timedelta(days=8), retention=WEEK,
                                     bronze_generation=up_to_date(archive))
    assert versions(archive) == named(archive) and len(named(archive)) == 1
    assert report.versions_deleted == 4 and report.bytes_deleted > 0 and report.days_checked == 1
    assert archive.exists("date=2026-11-20/manifest.json")


def test_a_grown_file_keeps_its_parts_and_merged_away_parts_go_after_the_window(tmp_path):
    start = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    landing, archive = grow(tmp_path, PARTS_PER_MERGE + 2, start=start)
    parts = load_manifest(archive, DAY).files["alice-2026-11-20.csv"].parts
    # The first read whole, then sixteen one-line parts merged into one, then one more.
    assert [p.level for p in parts] == [WHOLE_LEVEL, 1, 0] and [p.lines for p in parts] == [2, 16, 1]
    assert len(versions(archive)) == 3 + PARTS_PER_MERGE  # the merged-away parts, until the window passes
    apply_archive_retention(archive, now=start + dt.timedelta(days=8), retention=WEEK,
                            bronze_generation=up_to_date(archive))
    assert versions(archive) == named(archive)
    assert collect_day(landing, archive, DAY, landing.list(), now=start).files[0][1] == landing.get(
        "alice-2026-11-20.csv")


def test_versions_are_all_kept_while_bronze_was_built_from_another_generation(tmp_path):
    start = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    _, archive = rewrite(tmp_path, 3, start=start)
    # The run that archived the third version failed before bronze committed: bronze holds the
    # generation before, whose bytes the manifest no longer names.
    report = apply_archive_retention(archive, now=start + dt.timedelta(days=30), retention=WEEK,
                                     bronze_generation=lambda day: load_manifest(archive, day).generation - 1)
    assert len(versions(archive)) == 3 and report.versions_deleted == 0
    assert report.held_for_bronze == ["2026-11-20/alice-2026-11-20.csv"]


def test_an_older_version_the_manifest_names_again_is_kept(tmp_path):
    start = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    _, archive = rewrite(tmp_path, 3, start=start)
    oldest = min(archive.list(), key=lambda info: info.modified).key
    # The day's source set points back at the first version (as restoring a retraction does).
    manifest = load_manifest(archive, DAY)
    entry = manifest.files["alice-2026-11-20.csv"]
    back = dataclasses.replace(entry, parts=(dataclasses.replace(entry.parts[0], key=oldest),))
    archive.put("date=2026-11-20/manifest.json", DayManifest(
        manifest.generation + 1, {entry.source_file: back}).to_json())
    apply_archive_retention(archive, now=start + dt.timedelta(days=30), retention=WEEK,
                            bronze_generation=up_to_date(archive))
    # The named (oldest) object and the newest object stay; the middle version goes.
    assert oldest in versions(archive) and len(versions(archive)) == 2


def test_objects_that_are_not_file_versions_are_never_touched(tmp_path):
    archive = LocalObjectStore(tmp_path)
    archive.put("date=2026-11-20/notes.txt", b"kept")
    archive.put("date=2026-11-20/alice-2026-11-20.csv.NOTHEX0000000000.gz", b"kept")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).timestamp()
    for path in tmp_path.rglob("*"):
        os.utime(path, (old, old))
    report = apply_archive_retention(archive, now=dt.datetime.now(dt.UTC), retention=WEEK,
                                     bronze_generation=lambda day: 0)
    assert report.versions_deleted == 0 and len(archive.list()) == 2


def test_retention_rejects_a_negative_window():
    with pytest.raises(ValueError, match="negative"):
        ArchiveRetention(keep_all_for=dt.timedelta(days=-1))


def test_manifest_history_keeps_the_newest_and_every_retraction_record_past_the_window(tmp_path):
    from packetx_lakehouse.lib.ingest.archive import restore, retract

    start = dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    _, archive = rewrite(tmp_path, 3, start=start)  # generations 1-3: 2 and 3 replaced the file
    retract(archive, "alice-2026-11-20.csv", by="ops", reason="landed by mistake", now=start)  # 4
    restore(archive, "alice-2026-11-20.csv")  # 5
    for info in archive.list():
        if "/manifests/" in info.key:
            os.utime(archive.root / info.key, (start.timestamp(), start.timestamp()))
    # Each replacement keeps the state before it too (1 before 2).
    assert history(archive) == [f"generation-00000{g}.json" for g in (1, 2, 3, 4, 5)]

    report = apply_archive_retention(archive, now=start + dt.timedelta(days=8), retention=WEEK,
                                     bronze_generation=up_to_date(archive))
    # 1-3 only replaced versions: gone. 4 retracted and 5 restored the file: the audit record stays.
    assert history(archive) == ["generation-000004.json", "generation-000005.json"]
    assert report.history_deleted == 3
    assert load_manifest(archive, DAY).generation == 5
