"""Hostile landing input for tests and benchmarks, made cheaply."""

import struct
import zlib

_BLOCK = 1 << 20


def gzip_of_zeros(size: int) -> bytes:
    """A valid gzip stream of ``size`` NUL bytes (a multiple of 1 MiB): a decompression bomb.

    One fully flushed deflate segment of a mebibyte of zeros is repeated: after a full flush the
    compressor starts afresh, so the segments are identical, and a gibibyte costs ~1 MB and half a
    second instead of compressing it.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = compressor.compress(bytes(_BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // _BLOCK):
        crc = zlib.crc32(bytes(_BLOCK), crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no mtime
    return header + segment * (size // _BLOCK) + compressor.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)
