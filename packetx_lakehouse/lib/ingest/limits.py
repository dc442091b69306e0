"""Hard bounds on what one landing file may cost, and the file-level refusals they imply.

A landing file is text a device wrote, or bytes anyone could drop there: every bound is enforced
before or while the bytes are taken (the object's size, then the decompressed size while
decompressing), never after. A file past a bound is refused with the reason; the day's other
files still ingest.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default bound on a file's decompressed size.
MAX_FILE_BYTES = 128 << 20
#: Default bound on a line: a PacketX line is under 200 bytes (two IPv6 addresses included).
MAX_LINE_BYTES = 4096
#: Default bound on a file's lines.
MAX_FILE_LINES = 2_000_000


@dataclass(frozen=True)
class IngestLimits:
    """Per-file bounds (``PACKETX_MAX_FILE_BYTES``, ``PACKETX_MAX_LINE_BYTES``, ``PACKETX_MAX_FILE_LINES``).

    The defaults hold a device writing ~1,400 IP pairs every minute of the day, twice the
    benchmark's largest day (1 M rows, 67 MB). At them the worst hostile files measured (a 1 GiB
    gzip bomb, a 127 MiB line, 2 M one-byte junk lines) cost under 1 GB of peak RSS for a whole run
    and under 1 MB of Dagster event log (``benchmarks/hostile_input.py``).

    Attributes:
        max_file_bytes: Decompressed size of one file.
        max_line_bytes: Length of one line; a longer one is quarantined and stored cut to it.
        max_file_lines: Lines in one file (each costs a row or a quarantine record).
    """

    max_file_bytes: int = MAX_FILE_BYTES
    max_line_bytes: int = MAX_LINE_BYTES
    max_file_lines: int = MAX_FILE_LINES

    def __post_init__(self) -> None:
        if min(self.max_file_bytes, self.max_line_bytes, self.max_file_lines) < 1:
            raise ValueError(f"ingest limits must be positive: {self}")


def text_refusal(text: bytes, limits: IngestLimits) -> str | None:
    """Why a decompressed file is refused as a whole, or None: too many lines, or lone-CR line ends
    (of a text: binary data has as many CR as LF bytes by chance, and is refused as not text).

    Counting bytes runs at memory speed and allocates nothing, so this is checked before any
    per-line work.
    """
    lines = text.count(b"\n")
    if lines > limits.max_file_lines:
        return f"{lines:,} lines, more than the {limits.max_file_lines:,}-line bound (PACKETX_MAX_FILE_LINES)"
    carriage_returns = text.count(b"\r")
    if carriage_returns:
        lone = carriage_returns - text.count(b"\r\n")
        if lone > lines:
            binary = _binary_evidence(text)
            if binary:
                return f"binary data, not a text file ({binary}): a traffic log is CSV text"
            # Classic Mac line ends: read by LF, the whole file would be one line.
            return f"lone CR line ends ({lone:,} CR without LF, {lines:,} LF): save the file with LF line ends"
    return None


def _binary_evidence(data: bytes) -> str | None:
    """What shows ``data`` is not text (NUL bytes, or bytes that are not UTF-8), or None."""
    if b"\0" in data:
        return "NUL bytes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte {exc.object[exc.start]:#04x} at offset {exc.start:,} is not UTF-8"
    return None


def text_lines(text: bytes) -> int:
    """Complete lines: what "longest version" compares (PacketX only appends whole lines)."""
    return text.count(b"\n")
