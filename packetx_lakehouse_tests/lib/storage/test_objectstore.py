"""The object store's compare-and-swap, locally (a lock file) and on S3 (conditional writes, in aws/)."""

import concurrent.futures
import multiprocessing

import pytest

from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore, ObjectChangedError


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
