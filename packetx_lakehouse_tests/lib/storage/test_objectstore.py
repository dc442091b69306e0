"""The landing area is read flat and contained; the archive keeps its nested layout; conditional
writes are compare-and-swap, locally (a lock file) and on S3 (conditional writes, in aws/)."""

import concurrent.futures
import multiprocessing
import os

import pytest

from packetx_lakehouse.lib.storage.objectstore import (
    HIDDEN_ENTRY,
    NOT_A_FILE,
    SUB_FOLDER,
    SYMBOLIC_LINK,
    LocalObjectStore,
    ObjectChangedError,
    ObjectTooLarge,
    SkippedEntry,
)


def test_the_flat_listing_takes_regular_files_only_and_says_why_it_skips_the_rest(tmp_path):
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    (landing / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.csv").write_text("secret")
    (landing / "alice-2026-11-20.csv").write_text("a")
    (landing / "sub" / "bob-2026-11-20.csv").write_text("b")
    (landing / ".carol-2026-11-20.csv").write_text("c")
    (landing / ".Trash").mkdir()
    (landing / "out.csv").symlink_to(outside / "secret.csv")
    (landing / "in.csv").symlink_to(landing / "alice-2026-11-20.csv")
    (landing / "dangling.csv").symlink_to(outside / "missing.csv")
    (landing / "linked-dir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(landing / "pipe.csv")

    listing = LocalObjectStore(landing).list_flat()
    assert [info.key for info in listing.objects] == ["alice-2026-11-20.csv"]
    assert listing.skipped == [
        SkippedEntry(".Trash/", HIDDEN_ENTRY), SkippedEntry(".carol-2026-11-20.csv", HIDDEN_ENTRY),
        SkippedEntry("dangling.csv", SYMBOLIC_LINK), SkippedEntry("in.csv", SYMBOLIC_LINK),
        SkippedEntry("linked-dir", SYMBOLIC_LINK), SkippedEntry("out.csv", SYMBOLIC_LINK),
        SkippedEntry("pipe.csv", NOT_A_FILE), SkippedEntry("sub/", SUB_FOLDER),
    ]
    assert LocalObjectStore(tmp_path / "nowhere").list_flat().objects == []


def test_reads_never_follow_a_link_or_open_a_fifo_and_stop_at_the_bound(tmp_path):
    (tmp_path / "secret.csv").write_text("secret")
    (tmp_path / "link.csv").symlink_to(tmp_path / "secret.csv")  # swapped in after the listing
    os.mkfifo(tmp_path / "pipe.csv")
    store = LocalObjectStore(tmp_path)
    with pytest.raises(OSError):
        store.get("link.csv")
    with pytest.raises(OSError, match="not a regular file"):
        store.get("pipe.csv")  # would block forever if opened for reading without O_NONBLOCK
    assert store.get("secret.csv", max_bytes=6) == b"secret"
    with pytest.raises(ObjectTooLarge, match="more than 5 bytes"):
        store.get("secret.csv", max_bytes=5)


@pytest.mark.parametrize("key", ["../escape.csv", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_leave_the_store(tmp_path, key):
    with pytest.raises(ValueError, match="not a plain relative key"):
        LocalObjectStore(tmp_path / "store").get(key)


def test_the_archive_listing_still_descends_into_its_day_folders(tmp_path):
    store = LocalObjectStore(tmp_path)
    store.put("date=2026-11-20/manifest.json", b"{}")
    store.put("date=2026-11-20/alice-2026-11-20.csv.0123456789abcdef.gz", b"x")
    assert [info.key for info in store.list()] == [
        "date=2026-11-20/alice-2026-11-20.csv.0123456789abcdef.gz", "date=2026-11-20/manifest.json"]
    assert [info.key for info in store.list("date=2026-11-20/")] == [info.key for info in store.list()]


def test_a_conditional_write_succeeds_only_on_the_version_it_read(tmp_path):
    store = LocalObjectStore(tmp_path)
    assert store.get_versioned("day/manifest.json") is None
    store.put_if_unchanged("day/manifest.json", b"one", None)
    with pytest.raises(ObjectChangedError, match="changed while this run was using it"):
        store.put_if_unchanged("day/manifest.json", b"other", None)  # someone created it first
    data, version = store.get_versioned("day/manifest.json")
    store.put_if_unchanged("day/manifest.json", b"two", version)
    with pytest.raises(ObjectChangedError):
        store.put_if_unchanged("day/manifest.json", b"three", version)  # lost to "two"
    assert (data, store.get("day/manifest.json")) == (b"one", b"two")
    # The lock file is hidden: listings (and so the sensor and the archive) never see it.
    assert [info.key for info in store.list()] == ["day/manifest.json"]


def _increment(root: str, times: int) -> int:
    """Read-modify-write a counter with compare-and-swap, retrying lost races; the retries made."""
    store, lost = LocalObjectStore(root), 0
    for _ in range(times):
        while True:
            found = store.get_versioned("counter")
            try:
                store.put_if_unchanged("counter", str(int(found[0]) + 1 if found else 1).encode(),
                                       found[1] if found else None)
                break
            except ObjectChangedError:
                lost += 1
    return lost


def test_concurrent_processes_never_lose_an_update(tmp_path):
    with concurrent.futures.ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = [pool.submit(_increment, str(tmp_path), 40) for _ in range(3)]
        [d.result() for d in done]
    assert LocalObjectStore(tmp_path).get("counter") == b"120"
