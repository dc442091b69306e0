"""The landing area is read flat and contained; the archive keeps its nested layout."""

import os

import pytest

from packetx_lakehouse.lib.storage.objectstore import (
    HIDDEN_ENTRY,
    NOT_A_FILE,
    SUB_FOLDER,
    SYMBOLIC_LINK,
    LocalObjectStore,
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
