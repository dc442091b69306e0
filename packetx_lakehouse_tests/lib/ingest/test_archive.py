"""The raw archive's day manifest: the current version of each file and the day's generation."""

import datetime as dt
import json

import pytest

from packetx_lakehouse.lib.ingest.archive import collect_day, load_manifest
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore, ObjectChangedError

DAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
HEADER = b"User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth\n"


def test_generation_grows_with_every_change_of_the_source_set_and_only_then(tmp_path):
    landing, archive = LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")
    assert load_manifest(archive, DAY).generation == 0
    landing.put("alice-2026-11-20.csv", HEADER + b"alice,2026-11-20 10:00,8.8.8.8,192.168.1.2,1,1\n")
    assert collect_day(landing, archive, DAY, landing.list(), now=NOW).generation == 1
    assert collect_day(landing, archive, DAY, landing.list(), now=NOW).generation == 1  # nothing new
    landing.put("bob-2026-11-20.csv", HEADER)
    sources = collect_day(landing, archive, DAY, landing.list(), now=NOW)
    assert (sources.generation, sources.newly_archived) == (2, ["bob-2026-11-20.csv"])
    assert load_manifest(archive, DAY).generation == 2


def test_a_manifest_written_before_generations_reads_as_generation_one(tmp_path):
    archive = LocalObjectStore(tmp_path)
    entry = {"source_file": "alice-2026-11-20.csv", "sha256": "ab" * 32, "size": 10,
             "archive_key": "date=2026-11-20/alice-2026-11-20.csv.abababababababab.gz", "archived_at": NOW.isoformat()}
    archive.put("date=2026-11-20/manifest.json", json.dumps({"alice-2026-11-20.csv": entry}).encode())
    manifest = load_manifest(archive, DAY)
    assert manifest.generation == 1 and manifest.files["alice-2026-11-20.csv"].size == 10


def test_two_runs_archiving_a_day_at_once_never_reuse_or_lose_a_generation(tmp_path):
    """Run A reads the manifest and the landing file, B archives a grown file meanwhile: A's
    manifest write must fail (it would give generation 1 to the old text and drop B's), and A,
    redoing from fresh input, finds B's version current."""
    landing, archive = LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")
    row = b"alice,2026-11-20 10:00,8.8.8.8,192.168.1.2,1,1\n"
    landing.put("alice-2026-11-20.csv", HEADER + row)
    listing = landing.list()
    text_a = landing.get("alice-2026-11-20.csv")  # what A reads, before the file grows

    class StalledLanding(LocalObjectStore):
        def get(self, key: str) -> bytes:
            landing.put("alice-2026-11-20.csv", HEADER + row + row)  # the file grows ...
            collect_day(landing, archive, DAY, landing.list(), now=NOW)  # ... and B archives it
            return text_a

    with pytest.raises(ObjectChangedError):
        collect_day(StalledLanding(tmp_path / "landing"), archive, DAY, listing, now=NOW)
    manifest = load_manifest(archive, DAY)
    assert manifest.generation == 1
    assert manifest.files["alice-2026-11-20.csv"].size == len(HEADER + row + row)
    again = collect_day(landing, archive, DAY, landing.list(), now=NOW)
    assert (again.generation, again.newly_archived) == (1, [])
