"""The raw archive's day manifest: the current version of each file, its history and the day's generation."""

import datetime as dt
import gzip
import hashlib
import json

import pytest

from packetx_lakehouse.lib.ingest.archive import (
    ArchivedFile,
    DayManifest,
    LandingRef,
    Part,
    collect_day,
    lines_to_read,
    load_manifest,
    manifest_at,
    restore,
    retract,
)
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.lib.ingest.problems import (
    ERROR,
    GONE,
    REFUSED,
    RETRACTED,
    SHORTER_COPY,
    SHRUNK,
    WARNING,
)
from packetx_lakehouse.lib.storage.objectstore import (
    LocalObjectStore,
    ObjectChangedError,
)

DAY = dt.date(2026, 11, 20)
NOW = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
HEADER = b"User,Time Stamp,Source IP,Destination IP,KB Bandwidth,Total KB Bandwidth\n"
ALICE = "alice-2026-11-20.csv"


def rows(n: int) -> bytes:
    return b"".join(b"alice,2026-11-20 10:%02d,8.8.8.8,192.168.1.2,%d,1\n" % (m, m + 1) for m in range(n))


@pytest.fixture
def stores(tmp_path):
    return LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")


def collect(stores, **kwargs):
    landing, archive = stores
    return collect_day(landing, archive, DAY, landing.list_flat().objects, now=NOW, **kwargs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def problems(sources):
    return [(p.object_key, p.kind, p.severity) for p in sources.problems]


def test_generation_grows_with_every_change_of_the_source_set_and_only_then(stores):
    landing, archive = stores
    assert load_manifest(archive, DAY).generation == 0
    landing.put(ALICE, HEADER + rows(1))
    assert collect(stores).generation == 1
    assert collect(stores).generation == 1  # nothing new
    landing.put("bob-2026-11-20.csv", HEADER)
    sources = collect(stores)
    assert (sources.generation, sources.newly_archived) == (2, ["bob-2026-11-20.csv"])
    assert load_manifest(archive, DAY).generation == 2
    # New files and new lines only add: each part records the generation that archived it, and
    # no history copy is written (one a minute would pile up); a replacement is (see below).
    assert list(archive.list("date=2026-11-20/manifests/")) == []
    assert [p.generation for p in load_manifest(archive, DAY).files[ALICE].parts] == [1]
    landing.put(ALICE, HEADER + rows(3))  # grown: a part with the new lines
    grown = collect(stores)
    assert [(p.generation, p.lines) for p in load_manifest(archive, DAY).files[ALICE].parts] == [(1, 2), (3, 2)]
    assert grown.files[0][1] == HEADER + rows(3) and list(archive.list("date=2026-11-20/manifests/")) == []
    landing.put(ALICE, HEADER + rows(5).replace(b"8.8.8.8", b"9.9.9.9"))  # rewritten: a new version
    rewritten = collect(stores)
    history = sorted(info.key for info in archive.list("date=2026-11-20/manifests/"))
    # The state before (what generations 1-3 are cut from) and the new one.
    assert rewritten.generation == 4 and history == ["date=2026-11-20/manifests/generation-000003.json",
                                                     "date=2026-11-20/manifests/generation-000004.json"]
    assert [len(json.loads(archive.get(key))["files"][ALICE]["parts"]) for key in history] == [2, 1]


def test_each_version_records_the_landing_object_it_was_read_from(stores):
    landing, archive = stores
    landing.put(ALICE, HEADER + rows(2))
    info = landing.list_flat().objects[0]
    collect(stores)
    manifest = load_manifest(archive, DAY)
    assert manifest.files[ALICE].landing == LandingRef(ALICE, info.size, info.version)
    assert manifest.files[ALICE].lines == 3
    assert manifest.seen == {(ALICE, info.size, info.version)}


def test_the_longest_version_wins_and_a_shrunk_copy_is_a_failing_problem(stores):
    landing, archive = stores
    landing.put(ALICE, HEADER + rows(5))
    first = collect(stores)
    landing.put(ALICE, HEADER + rows(3))  # an earlier copy put back
    shrunk = collect(stores)
    assert shrunk.generation == first.generation == 1 and shrunk.newly_archived == []
    assert problems(shrunk) == [(ALICE, SHRUNK, ERROR)]
    assert "4 lines where the ingested version has 6" in shrunk.problems[0].reason
    assert shrunk.at_stake_after_line == {ALICE: 4}
    assert shrunk.files[0][1] == HEADER + rows(5)  # the longer version is still what bronze reads
    landing.put(ALICE, b"")  # emptied: a shrink too
    assert problems(collect(stores)) == [(ALICE, SHRUNK, ERROR)]
    landing.put(ALICE, HEADER + rows(7))  # grown past it: a new version
    grown = collect(stores)
    assert grown.generation == 2 and problems(grown) == []


def test_of_two_differing_copies_the_shorter_is_recorded_not_ingested(stores):
    landing, _ = stores
    landing.put(ALICE, HEADER + rows(4))
    landing.put(ALICE + ".gz", gzip.compress(HEADER + rows(2)))
    sources = collect(stores)
    assert [archived.source_file for archived, _ in sources.files] == [ALICE]
    assert sources.files[0][1] == HEADER + rows(4)
    assert problems(sources) == [(ALICE + ".gz", SHORTER_COPY, WARNING)]
    assert sources.problems[0].reason == f"3 lines, shorter than {ALICE} (5): not ingested"


def test_a_file_gone_from_landing_fails_once_then_is_served_from_the_archive_with_a_warning(stores, tmp_path):
    landing, _ = stores
    landing.put(ALICE, HEADER + rows(2))
    collect(stores)
    (tmp_path / "landing" / ALICE).unlink()
    noticed = collect(stores)
    assert problems(noticed) == [(ALICE, GONE, ERROR)] and noticed.at_stake_after_line == {ALICE: 0}
    assert noticed.files[0][1] == HEADER + rows(2) and noticed.from_archive_only == [ALICE]
    known = collect(stores)
    assert problems(known) == [(ALICE, GONE, WARNING)] and known.at_stake_after_line == {}
    assert known.files[0][1] == HEADER + rows(2)


def test_a_refused_copy_leaves_the_ingested_version_in_place(stores):
    landing, _ = stores
    landing.put(ALICE, HEADER + rows(2))
    collect(stores)
    landing.put(ALICE, HEADER + rows(2) + b"x" * 100 + b"\n")
    refused = collect(stores, limits=IngestLimits(max_line_bytes=50, max_file_bytes=150))
    assert problems(refused) == [(ALICE, REFUSED, WARNING)]
    assert "larger than the 150-byte bound" in refused.problems[0].reason
    assert refused.files[0][1] == HEADER + rows(2) and refused.generation == 1


def test_a_retracted_file_leaves_the_source_set_is_never_read_again_and_can_be_restored(stores):
    landing, archive = stores
    landing.put(ALICE, HEADER + rows(3))
    landing.put("bob-2026-11-20.csv", HEADER + rows(1).replace(b"alice", b"bob"))
    collect(stores)
    before, after = retract(archive, ALICE + ".gz", by="carol", reason="wrong day", now=NOW)
    assert (before.generation, after.generation) == (1, 2)
    assert ALICE not in after.files and after.retracted[ALICE].retracted_by == "carol"
    with pytest.raises(ValueError, match="already retracted"):
        retract(archive, ALICE, by="carol", reason="again", now=NOW)

    landing.put(ALICE, HEADER + rows(9))  # still written to: stays out
    sources = collect(stores)
    assert [archived.source_file for archived, _ in sources.files] == ["bob-2026-11-20.csv"]
    assert sources.generation == 2 and problems(sources) == [(ALICE, RETRACTED, WARNING)]
    assert "retracted 2026-11-20T12:00:00+00:00 by carol: wrong day; still in the landing area" in sources.problems[0].reason

    _, restored = restore(archive, ALICE)
    assert restored.generation == 3 and ALICE in restored.files
    again = collect(stores)
    assert again.generation == 4 and again.newly_archived == [ALICE]  # the landing copy is longer
    # The history holds the state before the retraction, the retraction and the restore; the growth
    # after it only added lines.
    assert [info.key[-11:] for info in archive.list("date=2026-11-20/manifests/")] == [
        "000001.json", "000002.json", "000003.json"]


def test_each_generation_of_a_day_reads_back_as_it_was_until_retention_deletes_it(stores):
    landing, archive = stores
    landing.put(ALICE, HEADER + rows(2))
    collect(stores)
    landing.put(ALICE, HEADER + rows(5))
    collect(stores)
    # Growth writes no copy: generation 1 is the current manifest cut to its first part.
    assert list(archive.list("date=2026-11-20/manifests/")) == []
    first = manifest_at(archive, DAY, 1).files[ALICE]
    assert (first.lines, first.size) == (3, len(HEADER + rows(2))) and first.sha256 == sha256(HEADER + rows(2))
    retract(archive, ALICE, by="carol", reason="wrong day", now=NOW)
    assert manifest_at(archive, DAY, 0).files == {}
    assert manifest_at(archive, DAY, 1).files[ALICE].lines == 3
    assert manifest_at(archive, DAY, 2).files[ALICE].lines == 6
    assert manifest_at(archive, DAY, 3) == load_manifest(archive, DAY) and ALICE in manifest_at(archive, DAY, 3).retracted
    assert manifest_at(archive, DAY, 4) is None  # not written yet
    # Without the copy of the state before the retraction, the generations before it are unknown.
    archive.delete("date=2026-11-20/manifests/generation-000002.json")
    assert manifest_at(archive, DAY, 1) is None and manifest_at(archive, DAY, 2) is None


def test_a_generation_inside_a_merged_part_is_known_by_its_size_alone(tmp_path):
    """Sixteen refreshes' parts merged into one hold generations 1-5: a generation among them
    has lost its exact line count and digest, the ones at the merge's edges have not."""
    archive = LocalObjectStore(tmp_path)
    merged = Part("date=2026-11-20/m.gz", 500, 10, "aa" * 32, NOW.isoformat(), generation=5, from_generation=1, level=1)
    newest = Part("date=2026-11-20/n.gz", 50, 1, "bb" * 32, NOW.isoformat(), generation=6)
    entry = ArchivedFile(ALICE, "cc" * 32, 550, 11, (merged, newest))
    archive.put("date=2026-11-20/manifest.json", DayManifest(6, {ALICE: entry}).to_json())
    assert manifest_at(archive, DAY, 6).files[ALICE] == entry
    at_five = manifest_at(archive, DAY, 5).files[ALICE]
    assert (at_five.lines, at_five.size, at_five.sha256, at_five.parts) == (10, 500, "aa" * 32, (merged,))
    at_three = manifest_at(archive, DAY, 3).files[ALICE]
    assert (at_three.lines, at_three.size, at_three.sha256) == (None, 0, "")


def test_manifests_written_before_generations_and_before_landing_refs_still_load(tmp_path):
    archive = LocalObjectStore(tmp_path)
    entry = {"source_file": ALICE, "sha256": "ab" * 32, "size": 10,
             "archive_key": "date=2026-11-20/alice-2026-11-20.csv.abababababababab.gz", "archived_at": NOW.isoformat()}
    archive.put("date=2026-11-20/manifest.json", json.dumps({ALICE: entry}).encode())
    manifest = load_manifest(archive, DAY)
    assert manifest.generation == 1 and manifest.files[ALICE].size == 10 and manifest.files[ALICE].landing is None
    archive.put("date=2026-11-20/manifest.json",
                json.dumps({"format": 2, "generation": 4, "files": {ALICE: entry}}).encode())
    manifest = load_manifest(archive, DAY)
    assert (manifest.generation, manifest.retracted, manifest.seen) == (4, {}, frozenset())


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
        def get(self, key: str, max_bytes: int | None = None) -> bytes:
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


def test_the_lines_a_whole_read_reads_count_a_cut_last_line_and_leave_retracted_files_out(stores):
    landing, archive = stores
    landing.put(ALICE, HEADER + rows(3) + b"alice,2026-11-20 10:5")  # a last line still being written
    landing.put("bob-2026-11-20.csv", HEADER + rows(2).replace(b"alice", b"bob"))
    landing.put("carol-2026-11-20.csv", HEADER + rows(1).replace(b"alice", b"carol"))
    collect(stores)
    assert lines_to_read(load_manifest(archive, DAY)) == (4 + 1) + 3 + 2
    retract(archive, "carol-2026-11-20.csv", by="dave", reason="wrong day", now=NOW)
    assert lines_to_read(load_manifest(archive, DAY)) == (4 + 1) + 3
    # A generation inside a merged part has lost its count: nothing to compare with.
    merged = Part("date=2026-11-20/m.gz", 500, 10, "aa" * 32, NOW.isoformat(), generation=5, from_generation=1, level=1)
    unknown = ArchivedFile(ALICE, "", 500, None, (merged,))
    assert lines_to_read(DayManifest(3, {ALICE: unknown})) is None
