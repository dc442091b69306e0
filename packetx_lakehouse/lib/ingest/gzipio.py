"""Gzip in both directions, in one place: devices upload it, the archive stores it, readers undo it.

Compression uses ISA-L (plain gzip output, readable by any gunzip); decompression is lenient,
because a landing object may be an upload still in progress or bytes that only look like gzip.
"""

from __future__ import annotations

import gzip
import zlib

from isal import igzip

GZIP_MAGIC = b"\x1f\x8b"
#: ISA-L's level 1 compresses traffic logs ~6.3x at ~1 GB/s, 4x the speed of zlib's level 1
#: (which gave 5.9x); the output is plain gzip, readable by any gunzip.
GZIP_LEVEL = 1


def gzip_deterministic(data: bytes) -> bytes:
    """Gzip with mtime=0: identical content always gives byte-identical objects (and ETags)."""
    return igzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def gunzip(data: bytes) -> bytes:
    """Strict decompression, for objects we wrote ourselves (the archive)."""
    return igzip.decompress(data)


def decompress_if_gzip(data: bytes) -> bytes:
    """Gzip is recognised by its magic bytes, whatever the name says; anything else is returned as is.

    Never raises: a truncated stream (an upload or copy still in progress) gives what arrived,
    its cut last line is then quarantined; bytes that only look like gzip are returned raw and
    their lines quarantined, so nothing is lost either way.
    """
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        pass
    try:
        # A truncated stream (upload in progress): keep what arrived; its cut line is quarantined.
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    except zlib.error:
        # Not gzip after all: its lines are quarantined as non-UTF-8, so nothing is lost.
        return data
