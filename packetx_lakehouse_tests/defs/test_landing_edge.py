"""The landing edge under fault injection: every hostile or broken input of the fault-injection
pass (issue 17) ends in a precise reason, as a quarantined line or a refused file, with the line
accounting intact, nothing read from outside the landing directory, and bounded metadata.

Each case is a fresh lakehouse whose landing area holds the case's entries next to a clean file
of another user for the same day, which must always ingest; bronze runs through Dagster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.bronze.assets import (
    BRONZE_PACKETS_KEY,
    LANDING_PROBLEMS_CHECK,
)
from packetx_lakehouse.lib.ingest.gzipio import gunzip
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.lib.storage.objectstore import LocalObjectStore
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_harness.hostile import gzip_of_zeros
from packetx_lakehouse_tests.conftest import HEADER, Lakehouse

DAY = "2026-11-20"
ROW = "alice,2026-11-20 10:00,8.8.8.8,192.168.1.20,210,948.173\n"
CLEAN = "dave-2026-11-20.csv"
CLEAN_ROWS = 3
SECRET = "outside-the-landing-directory"
#: The whole bronze materialisation metadata of a run, whatever the input: a few kilobytes.
METADATA_BOUND = 24_000


def _text(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())



@dataclass(frozen=True)
class Case:
    """One fault: how to build it, then what must come of it."""

    build: Callable[[Path, Path], None]  # (landing directory, a directory outside it)
    #: (object key, reason fragment) of the landing problem, if the case is one.
    problem: tuple[str, str] | None = None
    #: Reason fragments of quarantined lines, in line order.
    quarantined: tuple[str, ...] = ()
    #: Bronze rows of user alice (the case's user), besides the clean file's.
    alice_rows: int = 0
    limits: IngestLimits = IngestLimits()


def _plain(name: str, body: str) -> Callable[[Path, Path], None]:
    return lambda landing, outside: _text(landing / name, HEADER + body)


def _symlink_out(landing: Path, outside: Path) -> None:
    _text(outside / "secret.csv", HEADER + ROW + SECRET + "\n")
    (landing / f"evil-{DAY}.csv").symlink_to(outside / "secret.csv")


def _symlink_inside(landing: Path, outside: Path) -> None:
    (landing / f"alice-{DAY}.csv").symlink_to(landing / CLEAN)


def _dangling(landing: Path, outside: Path) -> None:
    (landing / f"alice-{DAY}.csv").symlink_to(outside / "missing.csv")


def _folder_named_like_a_log(landing: Path, outside: Path) -> None:
    _text(landing / f"alice-{DAY}.csv" / f"bob-{DAY}.csv", HEADER + ROW.replace("alice", "bob"))


def _shadowing_sub_folder(landing: Path, outside: Path) -> None:
    _text(landing / f"alice-{DAY}.csv", HEADER + ROW)
    _text(landing / "old" / f"alice-{DAY}.csv", HEADER + ROW * 5)


def _fifo(landing: Path, outside: Path) -> None:
    os.mkfifo(landing / f"alice-{DAY}.csv")  # reading it would block forever


def _plain_and_gzip_differ(landing: Path, outside: Path) -> None:
    _text(landing / f"alice-{DAY}.csv", HEADER + ROW * 4)
    _text(landing / f"alice-{DAY}.csv.gz", gzip.compress((HEADER + ROW * 2).encode()))


def _truncated_gzip(landing: Path, outside: Path) -> None:
    rows = "".join(ROW.replace("10:00", f"{m // 60:02d}:{m % 60:02d}").replace("210", str(m * 7919 % 1000))
                   for m in range(600))
    whole = gzip.compress((HEADER + rows).encode())
    _text(landing / f"alice-{DAY}.csv.gz", whole[: len(whole) * 2 // 3])


SMALL = IngestLimits(max_file_bytes=1 << 20, max_line_bytes=4096, max_file_lines=10)
OFF_BY_FAR = "2026-11-20 10:00"
#: Bytes with no structure, a few more CR than LF (a wrong upload, a bad disk): once taken for lone-CR line ends.
RANDOM = random.Random(2).randbytes(64 << 10)

CASES: dict[str, Case] = {
    # --- escapes: nothing outside the landing directory, no sub-folder, no hidden entry is read
    "symlink out of the landing area": Case(_symlink_out, (f"evil-{DAY}.csv", "symbolic link")),
    "symlink inside the landing area": Case(_symlink_inside, (f"alice-{DAY}.csv", "symbolic link")),
    "dangling symlink": Case(_dangling, (f"alice-{DAY}.csv", "symbolic link")),
    "folder named like a log": Case(_folder_named_like_a_log, (f"alice-{DAY}.csv/", "sub-folder")),
    "hidden folder": Case(_plain(f".Trash/alice-{DAY}.csv", ROW), (".Trash/", "hidden entry")),
    "hidden file": Case(_plain(f".alice-{DAY}.csv", ROW), (f".alice-{DAY}.csv", "hidden entry")),
    "sub-folder shadowing a log": Case(_shadowing_sub_folder, ("old/", "sub-folder"), alice_rows=1),
    "FIFO": Case(_fifo, (f"alice-{DAY}.csv", "not a regular file")),
    # --- bounds: refused whole, or the over-long line quarantined and stored cut
    "gzip bomb past the size bound": Case(
        lambda landing, _: _text(landing / f"alice-{DAY}.csv.gz", gzip_of_zeros(8 << 20)),
        (f"alice-{DAY}.csv.gz", "larger than 1,048,576 bytes once decompressed"), limits=SMALL),
    "plain file past the size bound": Case(
        _plain(f"alice-{DAY}.csv", ROW * 20_000), (f"alice-{DAY}.csv", "bytes, larger than the 1,048,576-byte bound"),
        limits=dataclasses.replace(SMALL, max_file_lines=100_000)),
    "too many lines": Case(_plain(f"alice-{DAY}.csv", ROW * 20), (f"alice-{DAY}.csv", "21 lines, more than the 10-line"),
                           limits=SMALL),
    "gzip of zeros under the size bound": Case(
        lambda landing, _: _text(landing / f"alice-{DAY}.csv.gz", gzip_of_zeros(1 << 20)),
        quarantined=("line of 1,048,576 bytes, longer than the 4,096-byte bound",)),
    "5 MB single line": Case(_plain(f"alice-{DAY}.csv", "alice," + "9" * (5 << 20) + "\n" + ROW),
                             quarantined=("line of 5,242,886 bytes, longer than the 4,096-byte bound",), alice_rows=1),
    # --- values held to the contract
    "time stamp 9999-12-31": Case(_plain(f"alice-{DAY}.csv", ROW + ROW.replace(OFF_BY_FAR, "9999-12-31 23:59")),
                                  quarantined=("Time Stamp on 9999-12-31, not on the file's date 2026-11-20",),
                                  alice_rows=1),
    "time stamp 0001-01-01": Case(_plain(f"alice-{DAY}.csv", ROW + ROW.replace(OFF_BY_FAR, "0001-01-01 00:00")),
                                  quarantined=("Time Stamp on 0001-01-01, not on the file's date 2026-11-20",),
                                  alice_rows=1),
    "midnight of the next day": Case(_plain(f"alice-{DAY}.csv", ROW + ROW.replace(OFF_BY_FAR, "2026-11-21 00:00")),
                                     quarantined=("Time Stamp on 2026-11-21, not on the file's date 2026-11-20",),
                                     alice_rows=1),
    "KB 1e+308": Case(_plain(f"alice-{DAY}.csv", ROW + ROW.replace("210", "1e+308")),
                      quarantined=("KB Bandwidth '1e+308' out of range",), alice_rows=1),
    "NUL in the user name": Case(_plain(f"alice-{DAY}.csv", ROW + "al\0ice" + ROW[5:]),
                                 quarantined=("control character in User 'al\\x00ice'",), alice_rows=1),
    "leading space in the user name": Case(_plain(f"alice-{DAY}.csv", ROW + " " + ROW),
                                           quarantined=("spaces around User ' alice'",), alice_rows=1),
    "row of another user": Case(_plain(f"alice-{DAY}.csv", ROW + ROW.replace("alice", "bob")),
                                quarantined=("file user alice != row user bob",), alice_rows=1),
    # --- broken files: a precise reason, never "incomplete last line" for what is not one
    "corrupt gzip": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv.gz", b"\x1f\x8b\x08\x00garbage" * 20),
                         (f"alice-{DAY}.csv.gz", "corrupt gzip stream")),
    "random bytes named .gz": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv.gz", RANDOM),
                                   (f"alice-{DAY}.csv.gz", "not a gzip file: named .gz")),
    "random bytes named .csv": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv", RANDOM),
                                    (f"alice-{DAY}.csv", "binary data, not a text file")),
    "lone CR line ends": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv", (HEADER + ROW * 3).replace("\n", "\r")),
                              (f"alice-{DAY}.csv", "lone CR line ends")),
    "UTF-8 BOM": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv", b"\xef\xbb\xbf" + (HEADER + ROW).encode()),
                      quarantined=("UTF-8 BOM at the start of the file",), alice_rows=1),
    "truncated gzip": Case(_truncated_gzip, (f"alice-{DAY}.csv.gz", "gzip stream cut short"),
                           quarantined=("incomplete last line",), alice_rows=-1),
    "plain and gzip copies differ": Case(_plain_and_gzip_differ, (f"alice-{DAY}.csv.gz", "3 lines, shorter than"),
                                         alice_rows=4),
    "empty file": Case(lambda landing, _: _text(landing / f"alice-{DAY}.csv", b""), (f"alice-{DAY}.csv", "empty file")),
    "header only": Case(_plain(f"alice-{DAY}.csv", ""), (f"alice-{DAY}.csv", "header only")),
    "not a date": Case(_plain("notadate.csv", ROW), ("notadate.csv", "not named <user>-<YYYY-MM-DD>.csv[.gz]")),
    "invalid date": Case(_plain("bob-2026-13-45.csv", ROW), ("bob-2026-13-45.csv", "invalid date 2026-13-45")),
}


def _lakehouse(tmp_path: Path, limits: IngestLimits) -> Lakehouse:
    settings = Lakehouse.default_settings(tmp_path).model_copy(update=dataclasses.asdict(limits))
    return Lakehouse(settings, build_definitions(settings))


@pytest.mark.parametrize("name", list(CASES))
def test_every_fault_ends_in_a_precise_reason_with_every_line_accounted_for(tmp_path, name):
    case = CASES[name]
    lakehouse = _lakehouse(tmp_path / "lake", case.limits)
    lakehouse.write_log(CLEAN, ROW.replace("alice", "dave") * CLEAN_ROWS)
    case.build(lakehouse.landing, tmp_path / "outside")

    day = dt.date.fromisoformat(DAY)
    result = materialize_range(lakehouse.defs, day, day, selection="group:bronze")
    assert result.success
    metadata = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("bronze_to_gold")}
    packets_md = metadata[BRONZE_PACKETS_KEY]
    # Accounting: every line of every file read is a row, a quarantined line, a header or a blank.
    accounted = (packets_md["dagster/partition_row_count"].value + packets_md["quarantined"].value
                 + packets_md["headers"].value + packets_md["blank_lines"].value)
    assert accounted == packets_md["lines_read"].value
    assert sum(len(str(value.value)) for md in metadata.values() for value in md.values()) < METADATA_BOUND

    packets, quarantine, problems = (lakehouse.table(t) for t in ("packets", "quarantine", "landing_problems"))
    users = pc.value_counts(packets.column("user")).to_pylist()
    rows = {entry["values"]: entry["counts"] for entry in users}
    assert rows.pop("dave") == CLEAN_ROWS  # the day's other files always ingest
    if case.alice_rows >= 0:
        assert rows == ({"alice": case.alice_rows} if case.alice_rows else {})
    else:
        assert set(rows) == {"alice"}  # what arrived of a cut stream
    reasons = quarantine.sort_by("line_number").column("reason").to_pylist()
    assert len(reasons) == len(case.quarantined) and all(f in r for f, r in zip(case.quarantined, reasons)), reasons
    # Stored lines are capped: the cut is marked, and never larger than the line bound plus the mark.
    for raw in quarantine.column("raw_line").to_pylist():
        assert len(raw.encode()) <= case.limits.max_line_bytes + 40
        assert len(raw.encode()) < case.limits.max_line_bytes or "bytes cut]" in raw

    recorded = [(p["object_key"], p["reason"]) for p in problems.to_pylist()]
    # What is not a regular file in the landing area has no size; every file's problem gives its size.
    assert all(p["size"] is not None for p in problems.to_pylist() if p["kind"] != "skipped"), problems.to_pylist()
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    if case.problem:
        key, fragment = case.problem
        assert any(k == key and fragment in reason for k, reason in recorded), recorded
        assert checks[LANDING_PROBLEMS_CHECK] is False
    else:
        assert recorded == [] and checks[LANDING_PROBLEMS_CHECK] is True

    # Nothing from outside the landing directory is ever copied anywhere.
    archive = LocalObjectStore(lakehouse.settings.archive_dir)
    archived = b"".join(gunzip(archive.get(i.key)) for i in archive.list() if i.key.endswith(".gz"))
    assert SECRET.encode() not in archived
    assert not any(SECRET in raw for raw in quarantine.column("raw_line").to_pylist())
