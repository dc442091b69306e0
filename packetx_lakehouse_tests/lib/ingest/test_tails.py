"""A refresh reads only what landing files gained, and reads it as a whole-file read would."""

import datetime as dt
import gzip

import pyarrow as pa
import pytest

from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.ingest.archive import (
    BOUNDARY_BYTES,
    collect_day,
    collect_tails,
    load_manifest,
    retract,
)
from packetx_lakehouse.lib.ingest.bronze import ingest_days, ingest_tails
from packetx_lakehouse.lib.ingest.problems import RETRACTED
from packetx_lakehouse.lib.ingest.reader import read_traffic_log_bytes
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore

DAY = dt.date(2026, 11, 20)
START = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
ALICE, BOB = "alice-2026-11-20.csv", "bob-2026-11-20.csv"


def capture(user: str, bad_lines: int = 4) -> bytes:
    return generate_day(user, DAY, seed=5, options=GeneratorOptions(minutes_per_day=120, pairs_per_minute=15,
                                                                   bad_lines=bad_lines, restarts=1))


@pytest.fixture
def stores(tmp_path):
    return LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "archive")


def tails(stores, since: int, minute: int = 0):
    landing, archive = stores
    return collect_tails(landing, archive, DAY, landing.list_flat().objects, since=since,
                         now=START + dt.timedelta(minutes=minute))


def rows_of(batch) -> list[tuple]:
    table = batch.packets.drop_columns(["ingested_at"])
    return sorted(zip(*(table.column(n).to_pylist() for n in table.column_names)))


def quarantined(batch) -> list[tuple]:
    q = batch.quarantine
    return sorted(zip(q.column("source_file").to_pylist(), q.column("line_number").to_pylist(),
                      q.column("reason").to_pylist()))


def test_a_file_read_in_pieces_gives_the_rows_and_quarantine_of_one_read():
    data = capture("alice", bad_lines=7)
    cut = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    whole = read_traffic_log_bytes(data, source_file=ALICE, log_date=DAY, ingested_at=START)
    pieces, start, line = [], 0, 1
    for end in cut[5::37] + [len(data)]:
        piece = read_traffic_log_bytes(data[start:end], source_file=ALICE, log_date=DAY, ingested_at=START,
                                       first_line=line)
        pieces.append(piece)
        line += data[start:end].count(b"\n")
        start = end
    assert pa.concat_tables([p.rows for p in pieces]) == whole.rows
    assert pa.concat_tables([p.quarantine for p in pieces]) == whole.quarantine
    assert sum(p.lines_read for p in pieces) == whole.lines_read
    assert sum(p.headers for p in pieces) == whole.headers


def test_refreshes_archive_and_read_only_what_files_gained_and_add_up_to_one_whole_read(stores):
    landing, archive = stores
    files = {ALICE: capture("alice"), BOB: capture("bob")}
    batches, generation = [], 0
    for minute, fraction in enumerate((0.1, 0.35, 0.35, 0.8, 1.0)):
        for name, data in files.items():
            cut = int(len(data) * fraction)
            landing.put(name, data[:cut])  # a last line still being written, most of the time
        found = tails(stores, generation, minute)
        batch = ingest_tails(found, DAY)
        batches.append(batch)
        generation = found.generation
        if minute == 2:  # nothing new: nothing read (a waiting last line is reported, not read)
            assert batch.packets.num_rows == 0 and all(not t.text for t in found.tails)
            assert {f.archive_state for f in batch.files} <= {"waiting line"}
    assert load_manifest(archive, DAY).generation == generation == 4
    parts = load_manifest(archive, DAY).files[ALICE].parts
    assert [p.generation for p in parts] == [1, 2, 3, 4] and sum(p.size for p in parts) == len(files[ALICE])
    whole = ingest_days(landing, archive, [DAY], {DAY: landing.list_flat().objects}, now=START)
    assert sorted(r for b in batches for r in rows_of(b)) == rows_of(whole)
    assert sorted(q for b in batches for q in quarantined(b)) == quarantined(whole)
    # Each row's ingest time is when its part was archived, whichever way it was read.
    stamped = {(r["source_file"], r["line_number"]): r["ingested_at"] for b in batches for r in b.packets.to_pylist()}
    assert all(stamped[r["source_file"], r["line_number"]] == r["ingested_at"] for r in whole.packets.to_pylist())
    assert len(set(stamped.values())) == 4


def test_a_table_that_fell_behind_gets_the_archived_parts_it_lacks_first(stores):
    landing, _ = stores
    data = capture("alice", bad_lines=0)
    landing.put(ALICE, data[: len(data) // 3])
    first = tails(stores, 0)
    landing.put(ALICE, data[: 2 * len(data) // 3])
    tails(stores, first.generation, 1)  # archived, but its rows never reached the table
    landing.put(ALICE, data)
    caught_up = tails(stores, first.generation, 2)
    assert caught_up.generation == 3 and [t.entry.source_file for t in caught_up.tails] == [ALICE]
    text = caught_up.tails[0].text
    assert data.endswith(text) and len(text) > len(data) // 2
    assert caught_up.tails[0].first_line == data[: len(data) // 3].count(b"\n") + 1


@pytest.mark.parametrize("change", ["shrunk", "rewritten", "second copy", "gone", "retracted since"])
def test_anything_but_plain_growth_is_left_to_the_careful_whole_read(stores, change, tmp_path):
    landing, archive = stores
    data = capture("alice", bad_lines=0)
    landing.put(ALICE, data[: len(data) // 2])
    landing.put(BOB, capture("bob", bad_lines=0))
    done = tails(stores, 0)
    if change == "shrunk":
        landing.put(ALICE, data[: len(data) // 4])
    elif change == "rewritten":  # same bytes appended, one changed just before the point reached
        half = bytearray(data[: len(data) // 2])
        half[-BOUNDARY_BYTES // 2] ^= 1
        landing.put(ALICE, bytes(half) + data[len(data) // 2:])
    elif change == "second copy":
        landing.put(ALICE + ".gz", gzip.compress(data))
    elif change == "gone":
        (tmp_path / "landing" / ALICE).unlink()
    elif change == "retracted since":
        retract(archive, BOB, by="ops", reason="test", now=START)
    assert tails(stores, done.generation, 1) is None


def test_a_retracted_file_still_written_to_is_reported_not_read(stores):
    landing, archive = stores
    landing.put(ALICE, capture("alice", bad_lines=0))
    landing.put(BOB, capture("bob", bad_lines=0))
    collect_day(landing, archive, DAY, landing.list_flat().objects, now=START)
    _, after = retract(archive, BOB, by="ops", reason="wrong device", now=START)
    landing.put(BOB, capture("bob", bad_lines=0) + b"bob,2026-11-20 23:59,8.8.8.8,192.168.1.2,1,1\n")
    found = tails(stores, after.generation, 1)
    assert found.tails == [] and found.generation == after.generation
    assert [(p.object_key, p.kind) for p in found.problems] == [(BOB, RETRACTED)]
