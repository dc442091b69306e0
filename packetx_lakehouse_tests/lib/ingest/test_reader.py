"""The reader against the data contract: real sample files and every kind of damage in the wild."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.devices.samples import SAMPLES_DIR
from packetx_lakehouse.lib.ingest import reader
from packetx_lakehouse.lib.ingest.reader import (
    INCOMPLETE_LAST_LINE,
    NOT_UTF8,
    UTF8_BOM,
    ReadResult,
    read_traffic_log,
    read_traffic_log_bytes,
)
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, BRONZE_QUARANTINE, CSV_HEADER

SAMPLES = SAMPLES_DIR
DAY = dt.date(2026, 11, 21)
INGESTED = dt.datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
HEADER = (CSV_HEADER + "\n").encode()
ROW = "alice,2026-11-21 10:00,8.8.8.8,192.168.1.20,210,948.173"


def check_invariants(result: ReadResult) -> None:
    """Every physical line is counted exactly once, and both tables keep their exact schemas."""
    assert result.rows.schema.equals(BRONZE_PACKETS.schema)
    assert result.quarantine.schema.equals(BRONZE_QUARANTINE.schema)
    assert result.good + result.quarantined + result.headers + result.blank == result.lines_read
    numbers = result.rows["line_number"].to_pylist() + result.quarantine["line_number"].to_pylist()
    assert len(numbers) == len(set(numbers))
    assert all(1 <= n <= result.lines_read for n in numbers)


def read(tmp_path: Path, content: bytes, name: str = "alice-2026-11-21.csv") -> ReadResult:
    path = tmp_path / name
    path.write_bytes(content)
    result = read_traffic_log(path, ingested_at=INGESTED)
    check_invariants(result)
    return result


def quarantine(result: ReadResult) -> list[tuple[int, str, str]]:
    table = result.quarantine
    return list(zip(table["line_number"].to_pylist(), table["raw_line"].to_pylist(), table["reason"].to_pylist()))


def test_alice_sample_counts_every_line() -> None:
    result = read_traffic_log(SAMPLES / "alice-2026-11-21.csv", ingested_at=INGESTED)

    check_invariants(result)
    assert (result.lines_read, result.good, result.headers, result.blank, result.quarantined) == (198, 197, 1, 0, 0)
    assert result.rows["line_number"].to_pylist() == list(range(2, 199))
    assert result.rows.slice(0, 2).to_pylist() == [
        {
            "log_date": DAY,
            "user": "alice",
            "time_stamp": dt.datetime(2026, 11, 21, 9, 53),
            "source_ip": "127.0.0.20",
            "destination_ip": "127.0.0.2",
            "kb_bandwidth": 210.0,
            "total_kb_bandwidth": 339986.0,
            "source_file": "alice-2026-11-21.csv",
            "line_number": 2,
            "ingested_at": INGESTED,
        },
        {
            "log_date": DAY,
            "user": "alice",
            "time_stamp": dt.datetime(2026, 11, 21, 9, 53),
            "source_ip": "127.0.0.2",
            "destination_ip": "127.0.0.19",
            "kb_bandwidth": 948.173,
            "total_kb_bandwidth": 339986.0,
            "source_file": "alice-2026-11-21.csv",
            "line_number": 3,
            "ingested_at": INGESTED,
        },
    ]


def test_bob_sample_parses_scientific_notation_exactly() -> None:
    result = read_traffic_log(SAMPLES / "bob-2026-11-21.csv", ingested_at=INGESTED)

    check_invariants(result)
    assert (result.lines_read, result.good, result.headers, result.quarantined) == (79, 78, 1, 0)
    totals = {
        (row["time_stamp"], row["total_kb_bandwidth"])
        for row in result.rows.select(["time_stamp", "total_kb_bandwidth"]).to_pylist()
    }
    assert totals == {(dt.datetime(2026, 11, 21, 9, 59), 376860.0), (dt.datetime(2026, 11, 21, 10, 0), 1683300.0)}
    assert result.rows["kb_bandwidth"].to_pylist()[-3:] == [690.0, 1063.17, 1249.12]


def test_small_and_zero_numbers_are_valid(tmp_path: Path) -> None:
    result = read(tmp_path, HEADER + b"alice,2026-11-21 10:00,8.8.8.8,192.168.1.20,1e-05,0\n")

    assert result.rows.select(["kb_bandwidth", "total_kb_bandwidth"]).to_pylist() == [
        {"kb_bandwidth": 1e-05, "total_kb_bandwidth": 0.0}
    ]


def test_user_name_with_dashes_keeps_the_date_from_the_file_name(tmp_path: Path) -> None:
    row = b"bob-smith,2026-11-20 23:59,8.8.8.8,192.168.1.20,1,2\n"
    result = read(tmp_path, HEADER + row, name="bob-smith-2026-11-20.csv")

    assert result.good == 1
    row = result.rows.to_pylist()[0]
    assert (row["user"], row["log_date"], row["source_file"]) == ("bob-smith", dt.date(2026, 11, 20),
                                                                  "bob-smith-2026-11-20.csv")


@pytest.mark.parametrize("name", ["alice-2026-11-21.csv.gz", "alice-2026-11-21.gz", "alice-2026-11-21.csv"])
def test_gzip_is_read_whatever_the_extension(tmp_path: Path, name: str) -> None:
    plain = (SAMPLES / "alice-2026-11-21.csv").read_bytes()
    result = read(tmp_path, gzip.compress(plain), name=name)

    assert (result.lines_read, result.good, result.headers) == (198, 197, 1)
    assert result.rows["source_file"].unique().to_pylist() == [name]


def test_truncated_gzip_upload_keeps_what_arrived(tmp_path: Path) -> None:
    compressed = gzip.compress((SAMPLES / "alice-2026-11-21.csv").read_bytes())
    result = read(tmp_path, compressed[: len(compressed) // 2], name="alice-2026-11-21.csv.gz")

    assert 1 < result.good < 197
    assert result.quarantine["reason"].to_pylist() in ([], [INCOMPLETE_LAST_LINE])


def test_cut_short_last_line_is_quarantined_not_misread(tmp_path: Path) -> None:
    # "1.68" would be a valid number, but the producer was still writing "1.6833e+06".
    result = read(tmp_path, HEADER + f"{ROW}\n".encode() + b"alice,2026-11-21 10:01,8.8.8.8,192.168.1.20,1.68")

    assert (result.lines_read, result.good) == (3, 1)
    assert quarantine(result) == [(3, "alice,2026-11-21 10:01,8.8.8.8,192.168.1.20,1.68", INCOMPLETE_LAST_LINE)]


def test_last_line_without_newline_is_quarantined_even_if_complete(tmp_path: Path) -> None:
    result = read(tmp_path, HEADER + ROW.encode())

    assert result.good == 0
    assert quarantine(result) == [(2, ROW, INCOMPLETE_LAST_LINE)]


def test_crlf_line_ends_are_stripped(tmp_path: Path) -> None:
    content = (CSV_HEADER + "\r\n" + ROW + "\r\n" + "alice,2026-11-21 10:00,1.2.3,192.168.1.20,1,2\r\n").encode()
    result = read(tmp_path, content)

    assert (result.lines_read, result.headers, result.good) == (3, 1, 1)
    assert result.rows.select(["destination_ip", "total_kb_bandwidth"]).to_pylist() == [
        {"destination_ip": "192.168.1.20", "total_kb_bandwidth": 948.173}
    ]
    assert quarantine(result) == [(3, "alice,2026-11-21 10:00,1.2.3,192.168.1.20,1,2", "bad Source IP '1.2.3'")]


def test_blank_lines_are_counted_not_quarantined(tmp_path: Path) -> None:
    result = read(tmp_path, HEADER + b"\n" + f"{ROW}\n".encode() + b"   \n\t\r\n" + f"{ROW}\n".encode())

    assert (result.lines_read, result.blank, result.good, result.quarantined) == (6, 3, 2, 0)
    assert result.rows["line_number"].to_pylist() == [3, 6]


def test_repeated_header_is_a_header_wherever_it_appears(tmp_path: Path) -> None:
    content = HEADER + f"{ROW}\n".encode() + HEADER + f"  {CSV_HEADER}  \n{ROW}\n".encode()
    result = read(tmp_path, content)

    assert (result.lines_read, result.headers, result.good, result.quarantined) == (5, 3, 2, 0)
    assert result.rows["line_number"].to_pylist() == [2, 5]


def test_non_utf8_line_is_quarantined_with_nothing_lost(tmp_path: Path) -> None:
    content = HEADER + b"al\xe9ce,2026-11-21 10:00,8.8.8.8,192.168.1.20,1,2\n" + f"{ROW}\n".encode()
    result = read(tmp_path, content)

    assert result.good == 1
    assert quarantine(result) == [(2, "al\\xe9ce,2026-11-21 10:00,8.8.8.8,192.168.1.20,1,2", NOT_UTF8)]


def test_valid_utf8_user_name_is_accepted(tmp_path: Path) -> None:
    result = read(tmp_path, HEADER + "zoë,2026-11-21 10:00,8.8.8.8,192.168.1.20,1,2\n".encode(), name="zoë-2026-11-21.csv")

    assert result.rows["user"].to_pylist() == ["zoë"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("alice,2026-11-21 10:00,8.8.8.8,1", "expected 6 fields, found 4"),
        (ROW + ",extra", "expected 6 fields, found 7"),
        ("garbage", "expected 6 fields, found 1"),
        ("x,y", "expected 6 fields, found 2"),
    ],
)
def test_wrong_column_count(tmp_path: Path, line: str, reason: str) -> None:
    result = read(tmp_path, HEADER + f"{ROW}\n{line}\n".encode())

    assert result.good == 1
    assert quarantine(result) == [(3, line, reason)]


@pytest.mark.parametrize(
    ("kb", "total", "reason"),
    [
        ("-5", "10", "negative KB Bandwidth '-5'"),
        ("5", "-5", "negative Total KB Bandwidth '-5'"),
        ("-1.5e+06", "10", "negative KB Bandwidth '-1.5e+06'"),
        ("nan", "10", "bad KB Bandwidth 'nan'"),
        ("inf", "10", "bad KB Bandwidth 'inf'"),
        ("abc", "10", "bad KB Bandwidth 'abc'"),
        ("1.2.3", "10", "bad KB Bandwidth '1.2.3'"),
        ("5", "1e+", "bad Total KB Bandwidth '1e+'"),
        ("1e+999", "10", "KB Bandwidth '1e+999' out of range (above 1e+09 KB a minute)"),
        ("5", "1e+999", "Total KB Bandwidth '1e+999' out of range (above 1e+09 KB a minute)"),
        ("1e+308", "10", "KB Bandwidth '1e+308' out of range (above 1e+09 KB a minute)"),
        ("5", "1.00001e+09", "Total KB Bandwidth '1.00001e+09' out of range (above 1e+09 KB a minute)"),
        ("+5", "10", "bad KB Bandwidth '+5'"),
        ("", "10", "empty KB Bandwidth"),
        ("5", " ", "empty Total KB Bandwidth"),
    ],
)
def test_bad_numbers(tmp_path: Path, kb: str, total: str, reason: str) -> None:
    line = f"alice,2026-11-21 10:00,8.8.8.8,192.168.1.20,{kb},{total}"
    result = read(tmp_path, HEADER + f"{line}\n{ROW}\n".encode())

    assert result.good == 1
    assert quarantine(result) == [(2, line, reason)]


@pytest.mark.parametrize("fast_path", [True, False])
def test_an_exponent_without_its_sign_is_a_number_up_to_the_bound(fast_path: bool) -> None:
    kbs = ["1e9", "1e+09", "2.5e-3", "1e10"]
    lines = [f"alice,2026-11-21 10:{m:02d},8.8.8.8,192.168.1.20,{kb},1e9" for m, kb in enumerate(kbs)]
    result = read_traffic_log_bytes(HEADER + "\n".join([*lines, ""]).encode(), source_file="alice-2026-11-21.csv",
                                    log_date=dt.date(2026, 11, 21), ingested_at=INGESTED, fast_path=fast_path)

    assert result.rows.column("kb_bandwidth").to_pylist() == [1e9, 1e9, 0.0025]
    assert result.rows.column("total_kb_bandwidth").to_pylist() == [1e9] * 3
    assert quarantine(result) == [(5, lines[3], "KB Bandwidth '1e10' out of range (above 1e+09 KB a minute)")]


@pytest.mark.parametrize(
    ("source", "destination", "reason"),
    [
        ("999.1.1.1", "192.168.1.20", "bad Source IP '999.1.1.1'"),
        ("1.2.3", "192.168.1.20", "bad Source IP '1.2.3'"),
        ("8.8.8.8", "192.168.1.256", "bad Destination IP '192.168.1.256'"),
        ("8.8.8.8", "host.example", "bad Destination IP 'host.example'"),
        ("8.8.8.8", "", "empty Destination IP"),
    ],
)
def test_bad_ips(tmp_path: Path, source: str, destination: str, reason: str) -> None:
    line = f"alice,2026-11-21 10:00,{source},{destination},1,2"
    result = read(tmp_path, HEADER + f"{line}\n".encode())

    assert quarantine(result) == [(2, line, reason)]


def test_ipv6_addresses_are_accepted(tmp_path: Path) -> None:
    content = HEADER + b"alice,2026-11-21 10:00,fe80::1c2a:3bff:fe4d:5e6f,2001:db8::1,12.5,100\n"
    result = read(tmp_path, content)

    assert result.rows.select(["source_ip", "destination_ip"]).to_pylist() == [
        {"source_ip": "fe80::1c2a:3bff:fe4d:5e6f", "destination_ip": "2001:db8::1"}
    ]


@pytest.mark.parametrize(
    "time_stamp",
    ["2026-13-01 10:00", "2026-02-30 10:00", "2026-11-21 24:00", "2026-11-21 1:00", "2026-11-21T10:00",
     "2026-11-21 10:00:00", "yesterday"],
)
def test_bad_time_stamp(tmp_path: Path, time_stamp: str) -> None:
    line = f"alice,{time_stamp},8.8.8.8,192.168.1.20,1,2"
    result = read(tmp_path, HEADER + f"{line}\n".encode())

    assert quarantine(result) == [(2, line, f"bad Time Stamp '{time_stamp}'")]


def test_empty_user(tmp_path: Path) -> None:
    line = ",2026-11-21 10:00,8.8.8.8,192.168.1.20,1,2"
    result = read(tmp_path, HEADER + f"{line}\n".encode())

    assert quarantine(result) == [(2, line, "empty User")]


def test_first_failing_check_wins(tmp_path: Path) -> None:
    line = "alice,2026-11-21 99:00,999.1.1.1,1.2.3,abc,-5"
    result = read(tmp_path, HEADER + f"{line}\n".encode())

    assert quarantine(result) == [(2, line, "bad Time Stamp '2026-11-21 99:00'")]


def test_empty_file(tmp_path: Path) -> None:
    result = read(tmp_path, b"")

    assert (result.lines_read, result.good, result.quarantined, result.headers, result.blank) == (0, 0, 0, 0, 0)


def test_header_only(tmp_path: Path) -> None:
    result = read(tmp_path, HEADER)

    assert (result.lines_read, result.good, result.quarantined, result.headers, result.blank) == (1, 0, 0, 1, 0)


def test_lineage_is_on_quarantine_rows_and_ingest_time_is_utc(tmp_path: Path) -> None:
    path = tmp_path / "alice-2026-11-21.csv"
    path.write_bytes(HEADER + b"bad\n")
    local = dt.datetime(2026, 11, 21, 13, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    result = read_traffic_log(path, log_date=dt.date(2026, 11, 20), ingested_at=local)

    assert result.quarantine.select(["log_date", "source_file", "ingested_at"]).to_pylist() == [
        {"log_date": dt.date(2026, 11, 20), "source_file": "alice-2026-11-21.csv", "ingested_at": INGESTED}
    ]


def test_file_name_without_date_needs_an_explicit_log_date(tmp_path: Path) -> None:
    path = tmp_path / "traffic.csv"
    path.write_bytes(HEADER)

    with pytest.raises(ValueError, match="traffic.csv"):
        read_traffic_log(path)
    assert read_traffic_log(path, log_date=DAY).headers == 1


def test_big_file_line_numbers_stay_exact_across_parallel_chunks() -> None:
    options = GeneratorOptions(minutes_per_day=1440, pairs_per_minute=40, bad_lines=40)
    data = generate_day("alice", DAY, seed=7, options=options)
    assert len(data) > 3_000_000  # large enough to be read in several chunks

    result = read_traffic_log_bytes(data, source_file="alice-2026-11-21.csv", log_date=DAY, ingested_at=INGESTED)

    check_invariants(result)
    physical = data.split(b"\n")
    assert (result.quarantined, result.headers, result.blank) == (40, 2, 1)
    for number, raw, _ in quarantine(result):
        assert physical[number - 1].decode(errors="backslashreplace").removesuffix("\r") == raw
    for row in result.rows.slice(0, 5000).to_pylist() + result.rows.slice(result.good - 5000).to_pylist():
        fields = physical[row["line_number"] - 1].decode().removesuffix("\r").split(",")
        assert fields[0] == row["user"] and fields[2:4] == [row["source_ip"], row["destination_ip"]]
        assert float(fields[4]) == row["kb_bandwidth"]


BASE = generate_day("carol", DAY, seed=3, options=GeneratorOptions(minutes_per_day=4, pairs_per_minute=6, bad_lines=4))

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 40)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 100)),
)


def mutate(data: bytes, op: tuple) -> bytes:
    kind, position, *rest = op
    position %= len(data) + 1
    if kind == "flip":
        return data[:position] + bytes([rest[0]]) + data[position + 1:]
    if kind == "insert":
        return data[:position] + rest[0] + data[position:]
    if kind == "delete":
        return data[:position] + data[position + rest[0]:]
    if kind == "truncate":
        return data[:position]
    lines = data.split(b"\n")
    index = position % len(lines)
    return b"\n".join(lines[: index + 1] + lines[index:])


def check_against_physical_lines(data: bytes, result: ReadResult) -> None:
    """Compare with an independent oracle: the file's own lines, split the plain Python way."""
    check_invariants(result)
    if data[:2] == b"\x1f\x8b":
        return  # read as gzip: the physical lines are those of the decompressed stream
    physical = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        physical.pop()
    assert result.lines_read == len(physical)
    counted = sorted(result.rows["line_number"].to_pylist() + result.quarantine["line_number"].to_pylist())
    expected = [
        n for n, line in enumerate(physical, 1)
        if n == len(physical) and not data.endswith(b"\n")
        or line.strip(b" \t\r\n\x0b\x0c") not in (b"", CSV_HEADER.encode())
    ]
    assert counted == expected
    for number, raw, _ in quarantine(result):
        assert physical[number - 1].decode(errors="backslashreplace").removesuffix("\r") == raw


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=6))
def test_random_corruption_never_raises_and_accounts_for_every_line(ops: list[tuple]) -> None:
    data = BASE
    for op in ops:
        data = mutate(data, op)

    result = read_traffic_log_bytes(data, source_file="carol-2026-11-21.csv", log_date=DAY, ingested_at=INGESTED)

    check_against_physical_lines(data, result)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = read_traffic_log_bytes(data, source_file="x-2026-11-21.csv", log_date=DAY, ingested_at=INGESTED)

    check_against_physical_lines(data, result)


# --- the data contract beyond the fields' own syntax (issue 17, issue 11 point 1) ---------------


def test_a_utf8_bom_is_named_as_such_not_taken_for_a_bad_time_stamp(tmp_path: Path) -> None:
    result = read(tmp_path, b"\xef\xbb\xbf" + HEADER + f"{ROW}\n".encode())

    assert (result.good, result.headers) == (1, 0)
    assert quarantine(result) == [(1, "\ufeff" + CSV_HEADER, UTF8_BOM)]


def test_an_over_long_line_is_quarantined_and_stored_cut_with_the_cut_marked(tmp_path: Path) -> None:
    long_line = "alice," + "é" * 3000  # 6,006 bytes; the bound falls inside a two-byte character
    result = read_traffic_log_bytes(HEADER + f"{long_line}\n{ROW}\n".encode(), source_file="alice-2026-11-21.csv",
                                    log_date=DAY, ingested_at=INGESTED, max_line_bytes=4095)
    check_invariants(result)
    ((number, raw, reason),) = quarantine(result)
    assert (number, reason) == (2, "line of 6,006 bytes, longer than the 4,095-byte bound (PACKETX_MAX_LINE_BYTES)")
    assert raw.startswith("alice,éé") and raw.endswith("…[+1,911 bytes cut]") and "\\xc3" in raw
    assert result.good == 1


def test_a_line_at_the_bound_is_read_as_usual() -> None:
    result = read_traffic_log_bytes(f"{ROW}\n".encode(), source_file="alice-2026-11-21.csv", log_date=DAY,
                                    ingested_at=INGESTED, max_line_bytes=len(ROW))
    assert result.good == 1


@pytest.mark.parametrize(("time_stamp", "reason"), [
    ("2026-11-20 23:59", "Time Stamp on 2026-11-20, not on the file's date 2026-11-21"),
    ("2026-11-22 00:00", "Time Stamp on 2026-11-22, not on the file's date 2026-11-21"),
    ("9999-12-31 23:59", "Time Stamp on 9999-12-31, not on the file's date 2026-11-21"),
    ("0001-01-01 00:00", "Time Stamp on 0001-01-01, not on the file's date 2026-11-21"),
])
def test_rows_off_the_files_date_are_quarantined_naming_both_dates(tmp_path: Path, time_stamp: str, reason: str) -> None:
    line = ROW.replace("2026-11-21 10:00", time_stamp)
    result = read(tmp_path, HEADER + f"{ROW}\n{line}\n".encode())

    assert quarantine(result) == [(3, line, reason)]
    assert result.off_date == 1 and result.good == 1


def test_the_whole_local_day_is_on_date() -> None:
    lines = [ROW.replace("10:00", stamp) for stamp in ("00:00", "23:59")]
    result = read_traffic_log_bytes(("\n".join(lines) + "\n").encode(), source_file="alice-2026-11-21.csv",
                                    log_date=DAY, ingested_at=INGESTED)
    assert result.good == 2 and result.off_date == 0


@pytest.mark.parametrize(("user", "reason"), [
    ("bob", "file user alice != row user bob"),
    ("al\x00ice", "control character in User 'al\\x00ice'"),
    ("alice\x1b[2J", "control character in User 'alice\\x1b[2J'"),
    (" alice", "spaces around User ' alice'"),
    ("alice ", "spaces around User 'alice '"),
    ("   ", "empty User"),
])
def test_the_user_must_be_the_files_device(tmp_path: Path, user: str, reason: str) -> None:
    line = ROW.replace("alice", user, 1)
    result = read(tmp_path, HEADER + f"{line}\n{ROW}\n".encode())

    assert quarantine(result) == [(2, line, reason)]


def test_without_a_user_in_the_file_name_any_clean_user_is_accepted() -> None:
    result = read_traffic_log_bytes(f"{ROW.replace('alice', 'bob')}\n".encode(), source_file="capture.csv",
                                    log_date=DAY, ingested_at=INGESTED)
    assert result.rows["user"].to_pylist() == ["bob"]


def test_a_reason_quotes_at_most_a_few_dozen_characters_of_the_value(tmp_path: Path) -> None:
    line = f"alice,2026-11-21 10:00,{'9' * 1000},192.168.1.20,1,2"
    result = read(tmp_path, HEADER + f"{line}\n".encode())

    assert quarantine(result)[0][2] == f"bad Source IP '{'9' * 40}…'"


def test_pieces_of_bounded_size_give_the_same_result_as_one_piece(monkeypatch) -> None:
    options = GeneratorOptions(minutes_per_day=50, pairs_per_minute=20, bad_lines=20)
    data = generate_day("alice", DAY, seed=5, options=options) + b"alice," + b"x" * 9000 + b"\n" + f"{ROW}\n".encode()
    whole = read_traffic_log_bytes(data, source_file="alice-2026-11-21.csv", log_date=DAY, ingested_at=INGESTED)
    monkeypatch.setattr(reader, "_MAX_CHUNK_BYTES", 4096)
    monkeypatch.setattr(reader, "_MIN_CHUNK_BYTES", 1024)
    assert len(reader._chunk_bounds(data)) > 10
    pieces = read_traffic_log_bytes(data, source_file="alice-2026-11-21.csv", log_date=DAY, ingested_at=INGESTED)
    check_invariants(pieces)
    assert pieces.rows.equals(whole.rows) and pieces.quarantine.equals(whole.quarantine)
    assert (pieces.lines_read, pieces.headers, pieces.blank) == (whole.lines_read, whole.headers, whole.blank)
