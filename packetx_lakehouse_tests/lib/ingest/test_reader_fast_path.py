"""The fast path (Arrow's CSV reader) against the careful parser: the same result on any input.

The careful parser is the reference: every file is read both ways and the results must be equal
(rows with their types, line numbers and lineage; quarantine with its reasons; line counts). The
fast path may decline any file, but must take clean ones, or it is not a fast path.
"""

from __future__ import annotations

import datetime as dt
import gzip
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.ingest import reader
from packetx_lakehouse.lib.ingest.reader import ReadResult, read_traffic_log, read_traffic_log_bytes
from packetx_lakehouse.lib.schemas import CSV_HEADER
from packetx_lakehouse_tests.lib.ingest.test_reader import check_invariants, mutate, mutation

DAY = dt.date(2026, 11, 21)
INGESTED = dt.datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
SOURCE = "carol-2026-11-21.csv"
CLEAN = generate_day("carol", DAY, seed=3, options=GeneratorOptions(minutes_per_day=6, pairs_per_minute=8, restarts=1))


def read_both(data: bytes, source_file: str = SOURCE, **kwargs) -> tuple[ReadResult, ReadResult]:
    """The file read with the fast path allowed, and by the careful parser alone; asserts they agree."""
    fast = read_traffic_log_bytes(data, source_file=source_file, log_date=DAY, ingested_at=INGESTED, **kwargs)
    careful = read_traffic_log_bytes(data, source_file=source_file, log_date=DAY, ingested_at=INGESTED,
                                     fast_path=False, **kwargs)
    check_invariants(fast)
    assert not careful.fast_path
    assert fast.rows.schema.equals(careful.rows.schema, check_metadata=True)
    assert fast.rows.equals(careful.rows)
    assert fast.quarantine.schema.equals(careful.quarantine.schema, check_metadata=True)
    assert fast.quarantine.equals(careful.quarantine)
    assert (fast.lines_read, fast.headers, fast.blank) == (careful.lines_read, careful.headers, careful.blank)
    if fast.fast_path:
        # Only a file the careful parser reads without a word may be taken.
        assert careful.quarantined == careful.blank == 0 and careful.headers <= 1
    return fast, careful


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def with_line(data: bytes, number: int, line: bytes) -> bytes:
    """``data`` with its 1-based line ``number`` replaced."""
    lines = lines_of(data)
    lines[number - 1] = line
    return b"\n".join(lines) + b"\n"


def with_field(data: bytes, number: int, field: int, value: bytes) -> bytes:
    fields = lines_of(data)[number - 1].split(b",")
    fields[field] = value
    return with_line(data, number, b",".join(fields))


@pytest.mark.parametrize("name", ["alice-2026-11-21.csv", "bob-2026-11-21.csv"])
def test_real_captures_take_the_fast_path_with_the_same_result(name: str) -> None:
    data = (SAMPLES_DIR / name).read_bytes()

    fast, careful = read_both(data, source_file=name)

    assert fast.fast_path and fast.good == careful.good > 0


def test_a_clean_generated_day_takes_the_fast_path() -> None:
    data = generate_day("carol", DAY, seed=7, options=GeneratorOptions(minutes_per_day=1440, pairs_per_minute=20))

    fast, _ = read_both(data)

    assert fast.fast_path and fast.good == len(lines_of(data)) - 1
    assert fast.rows["line_number"].to_pylist() == list(range(2, len(lines_of(data)) + 1))


def test_a_clean_file_without_its_header_takes_the_fast_path() -> None:
    fast, _ = read_both(CLEAN.removeprefix((CSV_HEADER + "\n").encode()))

    assert fast.fast_path and fast.headers == 0 and fast.rows["line_number"][0].as_py() == 1


def test_a_dirty_generated_day_is_declined_with_the_same_result() -> None:
    data = generate_day("carol", DAY, seed=7, options=GeneratorOptions(minutes_per_day=200, pairs_per_minute=20,
                                                                       bad_lines=30))
    fast, careful = read_both(data)

    assert not fast.fast_path and careful.quarantined == 30


def test_a_bad_row_in_the_last_of_many_pieces_declines_the_file(monkeypatch) -> None:
    monkeypatch.setattr(reader, "_MIN_CHUNK_BYTES", 4096)
    monkeypatch.setattr(reader, "_MAX_CHUNK_BYTES", 8192)
    data = generate_day("carol", DAY, seed=7, options=GeneratorOptions(minutes_per_day=300, pairs_per_minute=20))
    assert reader._piece_count(len(data)) > 10

    clean, _ = read_both(data)
    dirty, _ = read_both(with_field(data, len(lines_of(data)), 4, b"-1"))

    assert clean.fast_path and clean.rows.column("user").num_chunks > 10
    assert not dirty.fast_path and dirty.quarantined == 1


#: (line, field or None for the whole line, new bytes, whether the file stays clean).
EDITS = [
    (2, 1, b"2026-11-21 7:05", False),
    (2, 1, b"2026-11-22 00:00", False),
    (2, 1, b"2026-11-21T07:05", False),
    (2, 1, b"2026-11-21 07:05:00", False),
    (3, 4, b"-1", False),
    (3, 4, b"-0", False),
    (3, 4, b"1e+308", False),
    (3, 4, b"1e+999", False),
    (3, 4, b"inf", False),
    (3, 4, b"nan", False),
    (3, 4, b"1E+05", False),
    (3, 4, b"1e5", True),  # an exponent without its sign: the number 1e+05 is
    (3, 4, b"+5", False),
    (3, 4, b".5", False),
    (3, 4, b"5.", False),
    (3, 4, b" 5", False),
    (3, 4, b"", False),
    (3, 5, b"0x10", False),
    (3, 4, b"1.6833e+06", True),
    (3, 4, b"007", True),
    (3, 4, b"0", True),
    (3, 5, b"1000000000", True),
    (3, 5, b"1000000001", False),
    (4, 0, b"bob", False),
    (4, 0, b"carol ", False),
    (4, 0, b"car\x00ol", False),
    (4, 0, b"car\x01ol", False),
    (4, 0, b"", False),
    (4, 0, "carolé".encode(), False),
    (5, 2, b"8.8.8", False),
    (5, 2, b"fe80::1", True),
    (5, 3, b"2001:db8::1", True),
    (5, 2, b"fe80::1%eth0", True),
    (5, 2, b"fe80::1%" + b"e" * 1500, True),  # longer than two blocks of the property test
    (3, 4, b"9" * 1500, False),
    (5, 2, b'"8.8.8.8"', False),
    (5, None, b"", False),
    (5, None, b"   ", False),
    (5, None, b",,,,,", False),
    (5, None, b"carol,2026-11-21 10:00,8.8.8.8,192.168.1.20,210", False),
    (5, None, b"carol,2026-11-21 10:00,8.8.8.8,192.168.1.20,210,948,1", False),
    (5, None, b'carol,2026-11-21 10:00,"8.8.8.8,192.168.1.20",210,948', False),
    (5, None, CSV_HEADER.encode(), False),
    (5, None, b" " + CSV_HEADER.encode(), False),
    (5, None, b"\xff\xfe", False),
    (1, None, b"\xef\xbb\xbf" + CSV_HEADER.encode(), False),
    (1, None, CSV_HEADER.encode() + b" ", False),
    (1, None, CSV_HEADER.lower().encode(), False),
    (6, None, lines_of(CLEAN)[5] + b"\r", False),
    (6, None, lines_of(CLEAN)[5].replace(b",", b"\r", 1), False),
]


@pytest.mark.parametrize(("number", "field", "value", "stays_clean"), EDITS)
def test_every_rule_of_the_careful_path_declines_the_fast_path(
    number: int, field: int | None, value: bytes, stays_clean: bool
) -> None:
    data = with_line(CLEAN, number, value) if field is None else with_field(CLEAN, number, field, value)

    fast, careful = read_both(data)

    assert fast.fast_path is stays_clean
    if stays_clean:
        assert careful.good == fast.good == len(lines_of(CLEAN)) - 1


@pytest.mark.parametrize("data", [
    b"",
    (CSV_HEADER + "\n").encode(),
    CLEAN[:-1],  # still being written: no final newline
    CLEAN + b"\n",  # a blank last line
    CLEAN.replace(b"\n", b"\r\n"),
    CLEAN + CLEAN,  # the header again, further down
])
def test_whole_file_shapes(data: bytes) -> None:
    fast, _ = read_both(data)

    assert not fast.fast_path


LONGEST = max(len(line) for line in lines_of(CLEAN))


@pytest.mark.parametrize("max_line_bytes", [1, len(CSV_HEADER) - 1, len(CSV_HEADER), LONGEST - 1, LONGEST, 4096])
def test_the_line_bound_declines_exactly_when_a_line_is_past_it(max_line_bytes: int) -> None:
    longest = LONGEST

    fast, careful = read_both(CLEAN, max_line_bytes=max_line_bytes)

    assert fast.fast_path is (longest <= max_line_bytes)
    assert (careful.quarantined > 0) is (longest > max_line_bytes)


def test_a_line_longer_than_arrows_blocks_is_read_the_same(monkeypatch) -> None:
    monkeypatch.setattr(reader, "_MIN_CHUNK_BYTES", 1024)
    long_ip = b"fe80::1%" + b"e" * 5000  # a valid scoped IPv6 address, longer than a block
    data = with_field(CLEAN, 5, 2, long_ip)

    for bound in (4096, 10_000):
        _, careful = read_both(data, max_line_bytes=bound)
        assert careful.quarantined == (bound == 4096)


@pytest.mark.parametrize("lines", [0, 1])
def test_a_file_that_is_one_line_longer_than_arrows_blocks_is_read_the_same(monkeypatch, lines: int) -> None:
    monkeypatch.setattr(reader, "_MIN_CHUNK_BYTES", 1024)
    giant = b"carol,2026-11-21 10:00,8.8.8.8,192.168.1.20," + b"9" * 5000 + b",1\n"

    for bound in (4096, 10_000):
        _, careful = read_both((CSV_HEADER + "\n").encode() + giant + (lines_of(CLEAN)[1] + b"\n") * lines,
                               max_line_bytes=bound)
        assert careful.quarantined == 1


def test_the_file_reader_takes_the_fast_path_for_gzip_too(tmp_path) -> None:
    path = tmp_path / "alice-2026-11-21.csv.gz"
    path.write_bytes(gzip.compress((SAMPLES_DIR / "alice-2026-11-21.csv").read_bytes()))

    assert read_traffic_log(path, ingested_at=INGESTED).fast_path


line_edit = st.tuples(
    st.just("edit"), st.integers(1, 10_000), st.sampled_from([None, *range(6)]),
    st.sampled_from(sorted({value for _, _, value, _ in EDITS})),
)
#: Edits that keep a row valid, so that many examples stay clean and take the fast path.
valid_edit = st.tuples(st.just("edit"), st.integers(1, 10_000)).flatmap(lambda head: st.sampled_from([
    (*head, field, value) for field, value in [
        (0, b"carol"), (1, b"2026-11-21 00:00"), (1, b"2026-11-21 23:59"), (2, b"fe80::1"), (3, b"10.0.0.1"),
        (4, b"0"), (4, b"007"), (4, b"1.6833e+06"), (5, b"1000000000"), (5, b"0.001"),
    ]
]))
structural = st.one_of(
    st.tuples(st.just("drop_header")), st.tuples(st.just("no_final_newline")), st.tuples(st.just("crlf")),
)


def apply(data: bytes, op: tuple) -> bytes:
    if op[0] == "edit":
        _, number, field, value = op
        if not lines_of(data):
            return data
        number = number % len(lines_of(data)) + 1
        if field is not None and lines_of(data)[number - 1].count(b",") == 5:
            return with_field(data, number, field, value)
        return with_line(data, number, value)
    if op[0] == "drop_header":
        return data.removeprefix((CSV_HEADER + "\n").encode())
    if op[0] == "no_final_newline":
        return data.removesuffix(b"\n")
    if op[0] == "crlf":
        return data.replace(b"\n", b"\r\n")
    return mutate(data, op)


#: Clean files to start from, with the name each is read under (``x.csv`` names no user).
BASES = [(CLEAN, SOURCE), (CLEAN, "x.csv")] + [
    ((SAMPLES_DIR / name).read_bytes(), name) for name in ("alice-2026-11-21.csv", "bob-2026-11-21.csv")
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(BASES),
    st.lists(st.one_of(valid_edit, valid_edit, line_edit, structural, mutation), max_size=4),
    st.sampled_from([4096, 80, 50]),
    st.booleans(),
)
def test_fast_path_equals_careful_path_on_clean_and_dirty_files(base: tuple[bytes, str], ops: list[tuple],
                                                                max_line_bytes: int, small_blocks: bool) -> None:
    data, source_file = base
    for op in ops:
        data = apply(data, op)

    # Small blocks: many Arrow blocks and careful pieces, and lines longer than a block.
    with mock.patch.object(reader, "_MIN_CHUNK_BYTES", 256 if small_blocks else reader._MIN_CHUNK_BYTES), \
            mock.patch.object(reader, "_MAX_CHUNK_BYTES", 512 if small_blocks else reader._MAX_CHUNK_BYTES):
        read_both(data, source_file=source_file, max_line_bytes=max_line_bytes)


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_equals_careful_path_on_generated_days(seed: int) -> None:
    options = GeneratorOptions(minutes_per_day=30, pairs_per_minute=10, bad_lines=seed % 4, restarts=seed % 3,
                               truncated_last_line=seed % 7 == 0)
    data = generate_day("carol", DAY, seed=seed, options=options)

    fast, _ = read_both(data)

    assert fast.fast_path is (options.bad_lines == 0 and not options.truncated_last_line)
