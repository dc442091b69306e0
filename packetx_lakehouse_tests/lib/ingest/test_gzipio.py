"""Bounded decompression of landing objects: a bomb stops at the bound, while it decompresses."""

import gzip
import random
import re
import resource

import pytest

from packetx_lakehouse.lib.ingest.gzipio import FileRefused, decompress_landing
from packetx_lakehouse.lib.ingest.limits import (
    MAX_FILE_BYTES,
    IngestLimits,
    text_refusal,
)
from packetx_lakehouse_harness.hostile import gzip_of_zeros

#: Bytes with no structure, a few more CR than LF (a wrong upload, a bad disk): once taken for lone-CR line ends.
RANDOM = random.Random(2).randbytes(64 << 10)
TEXT = b"".join(b"alice,2026-11-20 10:%02d,8.8.8.8,192.168.1.20,%d,1\n" % (m % 60, m) for m in range(5000))



def test_plain_text_passes_through_and_gzip_is_undone_member_by_member():
    assert decompress_landing(TEXT, len(TEXT)) == (TEXT, False)
    two_members = gzip.compress(TEXT) + gzip.compress(b"more\n")
    assert decompress_landing(two_members, 10**9) == (TEXT + b"more\n", False)
    assert decompress_landing(gzip.compress(TEXT) + b"\0" * 8, 10**9) == (TEXT, False)  # zero padding is fine


def test_a_stream_cut_short_gives_what_arrived_and_says_so():
    whole = gzip.compress(TEXT)
    text, cut_short = decompress_landing(whole[: len(whole) // 2], 10**9)
    assert cut_short and 0 < len(text) < len(TEXT) and TEXT.startswith(text)


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x1f\x8b\x08\x00garbage" * 20, "corrupt gzip stream ("),
    (gzip.compress(TEXT)[:-8] + b"\0\0\0\0" + gzip.compress(TEXT)[-4:], "corrupt gzip stream (Error -6 Incorrect checksum"),
    (gzip.compress(TEXT) + b"trailing junk", "corrupt gzip stream (13 bytes of garbage after the data)"),
], ids=["garbage after the magic", "wrong checksum", "trailing garbage"])
def test_corrupt_streams_are_refused_with_the_reason(data, reason):
    with pytest.raises(FileRefused, match="^" + re.escape(reason)):
        decompress_landing(data, 10**9)


def test_bytes_named_gzip_that_are_not_gzip_are_refused_as_not_a_gzip_file():
    for data in (RANDOM, TEXT):
        with pytest.raises(FileRefused, match="^not a gzip file: named .gz, but it starts with [0-9a-f]{2} [0-9a-f]{2}, "
                           "not gzip's magic bytes 1f 8b$"):
            decompress_landing(data, 10**9, named_gzip=True)
    assert decompress_landing(gzip.compress(TEXT), 10**9, named_gzip=True) == (TEXT, False)
    assert decompress_landing(b"", 10**9, named_gzip=True) == (b"", False)  # an upload that has not begun


def test_the_size_bound_holds_for_plain_and_gzip_text_at_the_byte():
    compressed = gzip.compress(TEXT)
    assert decompress_landing(compressed, len(TEXT))[0] == TEXT
    for data in (TEXT, compressed):
        with pytest.raises(FileRefused, match=f"larger than {len(TEXT) - 1:,} bytes once decompressed"):
            decompress_landing(data, len(TEXT) - 1)


def test_a_gibibyte_bomb_stops_at_the_default_bound_while_decompressing():
    bomb = gzip_of_zeros(1 << 30)
    assert len(bomb) < 1_100_000  # ~1 MB on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FileRefused, match="larger than 134,217,728 bytes"):
        decompress_landing(bomb, MAX_FILE_BYTES)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 2 * MAX_FILE_BYTES / (1 << 20)  # the bound, not the gibibyte


@pytest.mark.parametrize(("text", "reason"), [
    (b"a\rb\rc\r", "lone CR line ends (3 CR without LF, 0 LF): save the file with LF line ends"),
    (b"a\r\nb\r\n", None),  # CRLF is fine
    (b"x\n" * 11, "11 lines, more than the 10-line bound (PACKETX_MAX_FILE_LINES)"),
    (b"x\n" * 10, None),
    (b"\xff\xfe\r\r\r\n", "binary data, not a text file (byte 0xff at offset 0 is not UTF-8): a traffic log is CSV text"),
    (b"a\0\rb\r", "binary data, not a text file (NUL bytes): a traffic log is CSV text"),
], ids=["lone CR", "CRLF", "too many lines", "as many lines as the bound", "binary, not UTF-8", "binary, NUL"])
def test_whole_file_refusals(text, reason):
    assert text_refusal(text, IngestLimits(max_file_lines=10)) == reason


def test_random_bytes_are_refused_as_binary_never_for_their_line_ends():
    assert text_refusal(RANDOM, IngestLimits()).startswith("binary data, not a text file (")
