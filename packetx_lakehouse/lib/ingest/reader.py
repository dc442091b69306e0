"""Read a PacketX traffic log into bronze rows and quarantined lines.

The reader sits on the hot path of every ingest, so it is vectorised: numpy finds the line and
field boundaries, Arrow copies the fields out of the file's buffer in one ``take`` and validates
them, and big files are read in parallel pieces of bounded size. Python only touches the
*distinct* users, time stamps, totals and IP addresses of a file (a few thousand at most) and, in
the rare non-UTF-8 or over-long case, the offending lines. It never raises on file content: every
physical line ends up counted as a row, a quarantined line, a header or a blank.

What a row must be (the data contract), checked in this order, the first failure naming the reason:

1. The line: at most ``max_line_bytes`` long, valid UTF-8, ended by a newline, not preceded by a
   UTF-8 byte-order mark, with exactly six fields (a header or a blank line is counted, not read).
2. ``User``: not empty, no control characters or surrounding spaces, and equal to the user in the
   file name (``file user bob != row user alice``).
3. ``Time Stamp``: exactly ``%Y-%m-%d %H:%M`` and on the file's date: PacketX writes the device's
   local time and names the day's file by the same clock, so a row stamped on another local date
   (a renamed file, a wrong device clock, 00:00 of the next day) is quarantined with both dates.
4. ``Source IP``, ``Destination IP``: IPv4 or IPv6 addresses.
5. ``KB Bandwidth``, ``Total KB Bandwidth``: unsigned numbers as C++ ``ostream`` prints them, at
   most ``MAX_KB`` (KB in one minute).

Most files are clean, so they first take a fast path: Arrow's C++ CSV reader splits the lines and
fields (faster than the numpy splitter), and the same field rules (``_parse``) judge them. It takes
only files where the line rules cannot fail (see ``_read_clean``) and every row passes; anything
else is read again by the careful path, so the result is the same either way.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from packetx_lakehouse.lib.ingest.filenames import (
    parse_log_file_name,
    user_name_problem,
)
from packetx_lakehouse.lib.ingest.gzipio import decompress_landing
from packetx_lakehouse.lib.ingest.limits import MAX_FILE_BYTES, MAX_LINE_BYTES
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    BRONZE_QUARANTINE,
    CSV_COLUMNS,
    CSV_HEADER,
)

INCOMPLETE_LAST_LINE = "incomplete last line (no newline: file still being written?)"
NOT_UTF8 = "not valid UTF-8"
UTF8_BOM = "UTF-8 BOM at the start of the file (PacketX never writes one: saved by an editor?)"
#: KB in one minute, for one pair or the whole device: ~1 TB a minute (~140 Gbit/s) is beyond any
#: capture PacketX makes; anything above is a corrupt number, and would make every sum meaningless.
MAX_KB = 1e9
#: How every "not on the file's date" reason starts.
OFF_DATE_PREFIX = "Time Stamp on "
#: How much of a failing value a reason quotes.
_QUOTED_CHARS = 40
_BOM = b"\xef\xbb\xbf"

# What C++ ostream prints with default precision (no sign, no inf/nan, lower-case 'e'), and the
# same exponent written by hand without its sign: "1e9" is the number "1e+09" is.
_UNSIGNED = r"[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?"
_NUMBER, _NEGATIVE_NUMBER = f"^{_UNSIGNED}$", f"^-{_UNSIGNED}$"
_NUMBER_RE = re.compile(_UNSIGNED)
_COMMA, _LF, _CR = b",\n\r"
#: What "blank" and "surrounding whitespace" mean: ASCII only, as Arrow's ascii_trim_whitespace.
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
_EPOCH, _MICROSECOND = dt.datetime(1970, 1, 1), dt.timedelta(microseconds=1)
_USER, _TIME_STAMP, _SOURCE_IP, _DESTINATION_IP, _KB, _TOTAL_KB = CSV_COLUMNS


@dataclass(frozen=True)
class ReadResult:
    """The outcome of reading one file: bronze rows, quarantined lines and line counts."""

    rows: pa.Table
    quarantine: pa.Table
    lines_read: int
    headers: int
    blank: int
    #: Whether the fast path read the file (clean), rather than the careful parser.
    fast_path: bool = False

    @property
    def off_date(self) -> int:
        """Rows quarantined only because they are not on the file's date."""
        if not self.quarantine.num_rows:
            return 0
        return pc.sum(pc.starts_with(self.quarantine.column("reason"), OFF_DATE_PREFIX)).as_py()

    @property
    def good(self) -> int:
        return self.rows.num_rows

    @property
    def quarantined(self) -> int:
        return self.quarantine.num_rows


def read_traffic_log(
    path: str | Path,
    *,
    log_date: dt.date | None = None,
    ingested_at: dt.datetime | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ReadResult:
    """Read a ``.csv``, ``.csv.gz`` or ``.gz`` traffic log from disk.

    Args:
        path: The file; gzip is recognised by its magic bytes (a ``.gz`` name must be gzip).
        log_date: The partition date; defaults to the date in the file name.
        ingested_at: Lineage time stamp; defaults to now (UTC).
        max_file_bytes: Bound on the (decompressed) size, enforced while decompressing.
        max_line_bytes: Longer lines are quarantined, stored cut to this length.

    Raises:
        ValueError: If no ``log_date`` is given and the file name breaks the naming contract.
        FileRefused: If the file is named ``.gz`` but not gzip, a corrupt gzip stream or larger than
            ``max_file_bytes``.
    """
    path = Path(path)
    if log_date is None:
        parsed = parse_log_file_name(path.name)
        if parsed is None:
            raise ValueError(f"cannot take the log date from file name {path.name!r}")
        log_date = parsed.date
    text, _ = decompress_landing(path.read_bytes(), max_file_bytes, named_gzip=path.name.endswith(".gz"))
    return read_traffic_log_bytes(
        text,
        source_file=path.name,
        log_date=log_date,
        ingested_at=ingested_at or dt.datetime.now(dt.timezone.utc),
        max_line_bytes=max_line_bytes,
    )


def read_traffic_log_bytes(
    data: bytes,
    *,
    source_file: str,
    log_date: dt.date,
    ingested_at: dt.datetime,
    file_user: str | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    fast_path: bool = True,
    first_line: int = 1,
) -> ReadResult:
    """Parse the text of one traffic log (or of its lines from ``first_line`` on) into bronze rows and quarantine.

    Args:
        data: The file's text (decompressed: see ``gzipio.decompress_landing``).
        source_file: Base name recorded as lineage on every output row.
        log_date: The partition date recorded on every output row; rows stamped on another
            date are quarantined.
        ingested_at: Lineage time stamp; naive values are taken as UTC.
        file_user: The user every row must name; defaults to the user in ``source_file`` (no
            check when that name breaks the contract).
        max_line_bytes: Longer lines are quarantined and stored cut to this length, marked.
        fast_path: Whether a clean file may take the fast path; False forces the careful parser
            (the result is the same: for comparisons).
        first_line: The line number of ``data``'s first line: a refresh reads only the lines a
            file gained. Every rule judges a line on its own, so they get the verdicts a read of
            the whole file gives them (a byte-order mark only counts on line 1).
    """
    if file_user is None:
        parsed = parse_log_file_name(source_file)
        file_user = parsed.user if parsed else None
    ingested_at = (
        ingested_at.replace(tzinfo=dt.timezone.utc)
        if ingested_at.tzinfo is None
        else ingested_at.astimezone(dt.timezone.utc)
    )
    rules = _Rules(log_date, file_user, max_line_bytes)
    context = _Context(source_file, log_date, ingested_at)
    clean = _read_clean(data, rules, context, first_line) if fast_path else None
    if clean is not None:
        return clean
    complete = data.endswith(b"\n")
    if data and not complete:
        # A virtual newline makes the cut line a line like any other; its verdict is forced.
        data += b"\n"
    bounds = _chunk_bounds(data)
    views = [memoryview(data)[start:end] for start, end in zip(bounds, bounds[1:])]
    flags = [(i == 0 and first_line == 1 and data.startswith(_BOM), i == len(views) - 1 and not complete)
             for i in range(len(views))]
    if len(views) > 1:
        # numpy and Arrow release the GIL, so threads give real parallelism on big files; at most
        # one piece per thread is in flight, which bounds the transient memory of a huge file.
        with ThreadPoolExecutor(max_workers=min(len(views), _THREADS)) as pool:
            chunks = list(pool.map(lambda view, flag: _read_chunk(view, *flag, rules), views, flags))
    else:
        chunks = [_read_chunk(view, *flag, rules) for view, flag in zip(views, flags)]

    chunk_start = np.cumsum([0] + [chunk.lines for chunk in chunks]) + (first_line - 1)
    return ReadResult(
        rows=context.rows_table(
            {name: _concat([c.fields[name] for c in chunks], type_) for name, type_ in _FIELD_TYPES.items()},
            _line_numbers([c.good for c in chunks], chunk_start),
        ),
        quarantine=context.quarantine_table(
            _concat([c.raw_lines for c in chunks], pa.string()),
            _line_numbers([c.quarantined for c in chunks], chunk_start),
            _concat([c.reasons for c in chunks], pa.string()),
        ),
        lines_read=int(chunk_start[-1]) - (first_line - 1),
        headers=sum(chunk.headers for chunk in chunks),
        blank=sum(chunk.blank for chunk in chunks),
    )


_FIELD_TYPES = {name: BRONZE_PACKETS.schema.field(name).type for name in (
    "user", "time_stamp", "source_ip", "destination_ip", "kb_bandwidth", "total_kb_bandwidth")}
#: Below this a file is read in one piece: threads would cost more than they save.
_MIN_CHUNK_BYTES = 2 << 20
#: Above this a piece is cut again: the per-byte work arrays of a piece stay bounded.
_MAX_CHUNK_BYTES = 32 << 20
_THREADS = min(os.cpu_count() or 1, 8)


def _piece_count(size: int) -> int:
    """Pieces for ``size`` bytes: at least one per CPU (when big enough), each at most about
    ``_MAX_CHUNK_BYTES``."""
    return max(min(_THREADS, size // _MIN_CHUNK_BYTES), -(-size // _MAX_CHUNK_BYTES), 1)


def _chunk_bounds(data: bytes) -> list[int]:
    """Byte offsets that cut ``data`` (ending in LF) after an LF, into ``_piece_count`` pieces
    (a piece is longer only when a line is)."""
    pieces = _piece_count(len(data))
    bounds = [0]
    for k in range(1, pieces):
        cut = data.find(b"\n", k * len(data) // pieces) + 1
        if cut > bounds[-1]:
            bounds.append(cut)
    if len(data) > bounds[-1]:
        bounds.append(len(data))
    return bounds


_HEADER_LINE = (CSV_HEADER + "\n").encode()
_FIELDS = list(_FIELD_TYPES)
# Arrow's reader only splits: no quoting, escapes or nulls (the careful path knows none), no
# blank line skipped (the line numbers would shift), every field a string for ``_parse``.
_CLEAN_CSV_PARSE = pa_csv.ParseOptions(
    delimiter=",", quote_char=False, double_quote=False, escape_char=False, newlines_in_values=False,
    ignore_empty_lines=False)
_CLEAN_CSV_CONVERT = pa_csv.ConvertOptions(
    column_types=dict.fromkeys(_FIELDS, pa.large_string()), null_values=[], strings_can_be_null=False,
    quoted_strings_can_be_null=False)


def _read_clean(data: bytes, rules: _Rules, context: _Context, first_line: int = 1) -> ReadResult | None:
    """The fast path: a clean file read with Arrow's CSV reader, or None for the careful path to read.

    Arrow splits the lines and fields; the careful path's own ``_parse`` judges every row. The line
    rules Arrow cannot see are ruled out around it: the file must be ASCII (so valid UTF-8 with no
    BOM), hold no CR, end with its newline, have no line past the bound and give rows that account
    for every byte after an optional exact header (so no blank line was skipped and each line is
    one row, in order). A line the careful path would quarantine, or count as blank or as a header
    further down, fails one of these or ``_parse``, and the file is declined whole: a dirty file
    costs both reads, a clean one only this.
    """
    # Byte scans at memory speed that allocate nothing, cheaper than any per-line pass.
    if not data.endswith(b"\n") or not data.isascii() or b"\r" in data:
        return None
    header = data.startswith(_HEADER_LINE)
    if header and len(CSV_HEADER) > rules.max_line_bytes:
        return None
    body = pa.py_buffer(data)[len(_HEADER_LINE) if header else 0:]
    read_options = pa_csv.ReadOptions(column_names=_FIELDS, block_size=-(-body.size // _piece_count(body.size)))
    try:
        table = pa_csv.read_csv(pa.BufferReader(body), read_options=read_options,
                                parse_options=_CLEAN_CSV_PARSE, convert_options=_CLEAN_CSV_CONVERT)
    except pa.ArrowInvalid:  # a wrong field count
        return None
    if not table.num_rows:
        return None
    pieces, line_bytes_total = [], 0
    for batch in table.to_batches():
        if not batch.num_rows:  # a block inside a line longer than itself
            continue
        fields = batch.columns
        # No CR: a line is its six fields and five commas, then LF.
        line_bytes = sum(pc.binary_length(field).to_numpy() for field in fields) + 5
        if line_bytes.max() > rules.max_line_bytes:
            return None
        line_bytes_total += int(line_bytes.sum()) + len(line_bytes)
        good, typed, _ = _parse(fields, rules)
        if not good.all():
            return None
        pieces.append(typed)
    if line_bytes_total != body.size:
        return None
    first = first_line + header
    return ReadResult(
        rows=context.rows_table(
            {name: pa.chunked_array([piece[name] for piece in pieces], type_) for name, type_ in _FIELD_TYPES.items()},
            pa.array(np.arange(first, first + table.num_rows, dtype=np.int64)),
        ),
        quarantine=context.quarantine_table(pa.array([], pa.string()), pa.array([], pa.int64()),
                                            pa.array([], pa.string())),
        lines_read=table.num_rows + header,
        headers=int(header),
        blank=0,
        fast_path=True,
    )


def _concat(arrays: list[pa.Array], type_: pa.DataType) -> pa.Array:
    if len(arrays) == 1:
        return arrays[0]
    return pa.concat_arrays(arrays) if arrays else pa.array([], type_)


def _line_numbers(local: list[np.ndarray], first_line: np.ndarray) -> pa.Array:
    """1-based line numbers of the file from each chunk's 0-based line indices."""
    if not local:
        return pa.array([], pa.int64())
    return pa.array(np.concatenate([lines + offset + 1 for lines, offset in zip(local, first_line)]))


@dataclass(frozen=True)
class _Chunk:
    """What one run of whole lines yields; line indices are 0-based within the chunk."""

    fields: dict[str, pa.Array]
    good: np.ndarray
    quarantined: np.ndarray
    raw_lines: pa.StringArray
    reasons: pa.StringArray
    lines: int
    headers: int
    blank: int


def _read_chunk(data: memoryview, starts_with_bom: bool, cut_short: bool, rules: _Rules) -> _Chunk:
    """Classify every line of ``data``, a run of whole LF-terminated lines.

    Args:
        data: The lines.
        starts_with_bom: Whether the first line is the file's first and starts with a UTF-8 BOM.
        cut_short: Whether the last line is the file's incomplete last line.
        rules: What a row must be.
    """
    lines = _Lines(data, rules.max_line_bytes)
    n = len(lines.start)

    # Whole-line verdicts, the later overriding the earlier: the most telling reason wins.
    forced_lines, forced_reasons = [np.flatnonzero(lines.bad_utf8)], [[NOT_UTF8] * int(lines.bad_utf8.sum())]
    if cut_short and n:
        forced_lines.append(np.array([n - 1]))
        forced_reasons.append([INCOMPLETE_LAST_LINE])
    if starts_with_bom and n:
        forced_lines.append(np.array([0]))
        forced_reasons.append([UTF8_BOM])
    long_lines = np.flatnonzero(lines.length > rules.max_line_bytes)
    forced_lines.append(long_lines)
    forced_reasons.append([f"line of {length:,} bytes, longer than the {rules.max_line_bytes:,}-byte bound "
                           "(PACKETX_MAX_LINE_BYTES)" for length in lines.length[long_lines].tolist()])
    forced_index, forced_reason = _last_wins(forced_lines, forced_reasons)
    forced = np.zeros(n, dtype=bool)
    forced[forced_index] = True
    quarantined = [(forced_index, pa.array(forced_reason, pa.string()))]

    # Blank lines have no comma, so only the rare comma-less lines need their text examined.
    wrong_count = np.flatnonzero((lines.commas != 5) & ~forced)
    no_comma = wrong_count[lines.commas[wrong_count] == 0]
    blank = no_comma[_numpy(pc.equal(pc.ascii_trim_whitespace(lines.text(no_comma)), ""))]
    wrong_count = np.setdiff1d(wrong_count, blank, assume_unique=True)
    quarantined.append((wrong_count, pc.binary_join_element_wise(
        "expected 6 fields, found ", pa.array(lines.commas[wrong_count] + 1).cast(pa.string()), "")))

    six = np.flatnonzero((lines.commas == 5) & ~forced)
    # A header's second field is as long as "Time Stamp" (a real time stamp is longer): only
    # those few lines need their text compared.
    maybe_header = six[lines.field_length(six, 1) == len(_TIME_STAMP)]
    header = maybe_header[_numpy(pc.equal(pc.ascii_trim_whitespace(lines.text(maybe_header)), CSV_HEADER))]
    six = np.setdiff1d(six, header, assume_unique=True) if len(header) else six

    good, parsed, reasons = _parse(lines.fields(six), rules)
    quarantined.append((six[~good], reasons))

    index = np.concatenate([i for i, _ in quarantined])
    order = np.argsort(index, kind="stable")
    index = index[order]
    return _Chunk(
        fields=parsed,
        good=six[good],
        quarantined=index,
        raw_lines=lines.text(index, escape=lines.bad_utf8[index], cap=rules.max_line_bytes),
        reasons=pa.concat_arrays([r.cast(pa.string()) for _, r in quarantined]).take(order),
        lines=n,
        headers=len(header),
        blank=len(blank),
    )


def _last_wins(lines: list[np.ndarray], reasons: list[list[str]]) -> tuple[np.ndarray, list[str]]:
    """Sorted line indices with one reason each; where a line is listed twice the later list wins."""
    index = np.concatenate(lines) if lines else np.array([], np.int64)
    flat = [reason for group in reasons for reason in group]
    if not len(index):
        return index.astype(np.int64), []
    # The last occurrence of each line: unique over the reversed order.
    unique, first_in_reversed = np.unique(index[::-1], return_index=True)
    keep = len(index) - 1 - first_in_reversed
    return unique.astype(np.int64), [flat[k] for k in keep.tolist()]


@dataclass(frozen=True)
class _Rules:
    """What every row of one file must satisfy beyond its own fields."""

    log_date: dt.date
    file_user: str | None
    max_line_bytes: int

    @property
    def day_micros(self) -> tuple[int, int]:
        """The file's date as ``[start, end)`` in microseconds since the epoch (local, naive)."""
        start = (dt.datetime.combine(self.log_date, dt.time()) - _EPOCH) // _MICROSECOND
        return start, start + 86_400_000_000


class _Lines:
    """The physical lines of a file as positions in its buffer: nothing is copied until needed."""

    def __init__(self, data: memoryview, max_line_bytes: int) -> None:
        self.data = data
        self.buffer = pa.py_buffer(data)
        array = np.frombuffer(data, dtype=np.uint8)
        separators = np.flatnonzero((array == _COMMA) | (array == _LF))
        self.separators = separators
        self.newline_at = np.flatnonzero(array[separators] == _LF)
        end = separators[self.newline_at]
        self.start = np.concatenate(([0], end[:-1] + 1))[: len(end)].astype(np.int64)
        self.commas = np.diff(self.newline_at, prepend=-1) - 1
        # Strip one CR so that CRLF files read like LF files.
        self.end = end - ((end > self.start) & (array[end - 1] == _CR))
        self.length = self.end - self.start
        self.bad_utf8 = np.zeros(len(end), dtype=bool)
        if len(array) and array.max() >= 0x80:
            self._find_bad_utf8(array, end, max_line_bytes)

    def _find_bad_utf8(self, array: np.ndarray, end: np.ndarray, max_line_bytes: int) -> None:
        # Only lines holding a byte >= 0x80 can be invalid: find them without a loop over all lines.
        # Over-long lines are quarantined for their length whatever their bytes: not decoded here.
        lines = np.unique(np.searchsorted(end, np.flatnonzero(array >= 0x80)))
        for line in lines[self.length[lines] <= max_line_bytes].tolist():
            try:
                bytes(self.data[self.start[line]: end[line]]).decode("utf-8")
            except UnicodeDecodeError:
                self.bad_utf8[line] = True

    def fields(self, lines: np.ndarray) -> list[pa.StringArray]:
        """The six fields of the given six-field, valid UTF-8 lines, one array per column."""
        # One zero-copy view of the whole file alternates field and separator (",", "\n" or
        # "\r\n"): element 2 * i is the field that ends at separator i.
        # 64-bit offsets: the fields come out as large strings, bronze's type, with no cast copy.
        offsets = np.empty(2 * len(self.separators) + 1, dtype=np.int64)
        offsets[0] = 0
        offsets[1::2] = self.separators
        offsets[1::2][self.newline_at] = self.end
        offsets[2::2] = self.separators + 1
        view = _view(self.buffer, offsets, pa.large_string())
        first = 2 * (self.newline_at[lines] - 5)
        # A single take (field-major) is markedly faster than one per column.
        columns = _take(view, (first + np.arange(0, 12, 2)[:, None]).ravel())
        return [columns.slice(k * len(lines), len(lines)) for k in range(6)]

    def field_length(self, lines: np.ndarray, k: int) -> np.ndarray:
        """Byte length of field ``k`` (not the first or last) of the given six-field lines."""
        first_comma = self.newline_at[lines] - 5
        return self.separators[first_comma + k] - self.separators[first_comma + k - 1] - 1

    def text(self, lines: np.ndarray, escape: np.ndarray | None = None, cap: int | None = None) -> pa.StringArray:
        """The given lines without line ends.

        Args:
            lines: Line indices.
            escape: Marks non-UTF-8 lines, whose bad bytes are backslash-escaped.
            cap: Longer lines are cut to ``cap`` bytes and marked ``…[+N bytes cut]``.
        """
        end = self.end[lines] if cap is None else np.minimum(self.end[lines], self.start[lines] + cap)
        offsets = np.stack([self.start[lines], end], axis=1).astype(_offset_type(self.buffer))
        raw = _take(_view(self.buffer, offsets, pa.binary()), np.arange(0, 2 * len(lines), 2))
        cut = self.end[lines] > end
        special = cut if escape is None else (escape | cut)
        if special.any():
            # Few lines: the bad bytes of either kind, and a cut that may split a character.
            fixed = [
                bytes(self.data[self.start[i]: stop]).decode("utf-8", errors="backslashreplace").encode()
                + (f"…[+{self.end[i] - stop:,} bytes cut]".encode() if self.end[i] > stop else b"")
                for i, stop in zip(lines[special].tolist(), end[special].tolist())
            ]
            raw = pc.replace_with_mask(raw, pa.array(special), pa.array(fixed, raw.type))
        return raw.cast(pa.string())


def _offset_type(buffer: pa.Buffer) -> type[np.signedinteger]:
    return np.int64 if buffer.size >= 2**31 else np.int32


def _view(buffer: pa.Buffer, offsets: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A zero-copy array over ``buffer`` whose elements are delimited by ``offsets`` (row-major).

    Wanted slices and the gaps between them alternate, so no byte is copied until a ``take``.
    """
    if not offsets.size:
        return pa.array([], type_)
    if offsets.dtype == np.int64:
        type_ = pa.large_string() if type_ in (pa.string(), pa.large_string()) else pa.large_binary()
    return pa.Array.from_buffers(type_, offsets.size - 1, [None, pa.py_buffer(offsets.ravel()), buffer])


def _take(view: pa.Array, indices: np.ndarray) -> pa.Array:
    return view.take(pa.array(indices)) if len(indices) else pa.array([], view.type)


@dataclass(frozen=True)
class _Context:
    """Lineage stamped on every output row of one file."""

    source_file: str
    log_date: dt.date
    ingested_at: dt.datetime

    def _table(self, schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.Table:
        n = len(columns["line_number"])
        columns = {
            "log_date": pa.repeat(pa.scalar(self.log_date, pa.date32()), n),
            "source_file": pa.repeat(pa.scalar(self.source_file, schema.field("source_file").type), n),
            "ingested_at": pa.repeat(pa.scalar(self.ingested_at, schema.field("ingested_at").type), n),
            **columns,
        }
        return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)

    def rows_table(self, fields: dict[str, pa.Array], line_numbers: pa.Array) -> pa.Table:
        """Bronze rows in exactly the BRONZE_PACKETS schema."""
        return self._table(BRONZE_PACKETS.schema, {**fields, "line_number": line_numbers})

    def quarantine_table(self, raw_lines: pa.Array, line_numbers: pa.Array, reasons: pa.Array) -> pa.Table:
        return self._table(
            BRONZE_QUARANTINE.schema,
            {"raw_line": raw_lines, "line_number": line_numbers, "reason": reasons},
        )


def _numpy(mask: pa.BooleanArray) -> np.ndarray:
    return mask.to_numpy(zero_copy_only=False)


def _parse(fields: list[pa.StringArray], rules: _Rules) -> tuple[np.ndarray, dict[str, pa.Array], pa.StringArray]:
    """Validate six-field lines.

    Returns:
        The good mask, the typed fields of the good lines and the reasons of the bad ones.
    """
    user, time_stamp, source_ip, destination_ip, kb, total_kb = fields
    user_ok, user_reasons = _distinct_verdicts(user, lambda text: _user_problem(text, rules.file_user))
    time_stamp_ok, micros, time_stamp_reasons = _time_stamps(time_stamp, rules)
    total_ok, totals = _map_distinct(total_kb, _parse_number, np.float64)
    kb_ok = pc.match_substring_regex(kb, _NUMBER)
    kb_values = (kb if pc.all(kb_ok).as_py() else pc.if_else(kb_ok, kb, "0")).cast(pa.float64())
    # "1e+999" has the right shape but overflows to inf, which is above the bound too.
    kb_ok = _numpy(kb_ok) & (kb_values.to_numpy() <= MAX_KB)
    # (passes, reasons of the failing rows): the order is the order of the checks; the first failure wins.
    checks: list[tuple[np.ndarray, Callable[[np.ndarray], pa.Array]]] = [
        (user_ok, user_reasons),
        (time_stamp_ok, time_stamp_reasons),
        (_map_distinct(source_ip, _parse_ip)[0], lambda bad: _reason(_SOURCE_IP, source_ip.filter(bad))),
        (_map_distinct(destination_ip, _parse_ip)[0], lambda bad: _reason(_DESTINATION_IP, destination_ip.filter(bad))),
        (kb_ok, lambda bad: _reason(_KB, kb.filter(bad))),
        (total_ok, lambda bad: _reason(_TOTAL_KB, total_kb.filter(bad))),
    ]
    good = np.logical_and.reduce([passes for passes, _ in checks])
    typed = {
        "user": user,
        "time_stamp": pa.array(micros.view("datetime64[us]")),
        "source_ip": source_ip,
        "destination_ip": destination_ip,
        "kb_bandwidth": kb_values,
        "total_kb_bandwidth": pa.array(totals),
    }
    if good.all():
        return good, typed, pa.array([], pa.string())
    bad = ~good
    # Reasons are built only for the failing lines, so clean files pay nothing for them.
    reasons = pc.case_when(
        pa.StructArray.from_arrays([pa.array(~passes[bad]) for passes, _ in checks],
                                   names=[str(k) for k in range(len(checks))]),
        *(reasons_of(bad).cast(pa.string()) for _, reasons_of in checks),
    )
    keep = pa.array(good)
    return good, {name: values.filter(keep) for name, values in typed.items()}, reasons


def _quote(values: pa.StringArray) -> pa.StringArray:
    """Values cut to ``_QUOTED_CHARS`` characters (marked), so a reason stays short whatever the input."""
    short = pc.utf8_slice_codeunits(values, 0, _QUOTED_CHARS)
    return pc.if_else(pc.greater(pc.utf8_length(values), _QUOTED_CHARS), pc.binary_join_element_wise(short, "…", ""),
                      short)


def _reason(column: str, values: pa.StringArray) -> pa.StringArray:
    values = values.cast(pa.string())  # only the failing lines: small
    shown = _quote(values)
    quoted = pc.binary_join_element_wise(f"bad {column} '", shown, "'", "")
    if column in (_KB, _TOTAL_KB):
        negative = pc.binary_join_element_wise(f"negative {column} '", shown, "'", "")
        # A number of the right shape fails only by its size.
        too_big = pc.binary_join_element_wise(f"{column} '", shown, f"' out of range (above {MAX_KB:g} KB a minute)", "")
        quoted = pc.if_else(pc.match_substring_regex(values, _NEGATIVE_NUMBER), negative,
                            pc.if_else(pc.match_substring_regex(values, _NUMBER), too_big, quoted))
    return pc.if_else(pc.equal(pc.ascii_trim_whitespace(values), ""), f"empty {column}", quoted)


def _distinct_verdicts(
    values: pa.StringArray, verdict: Callable[[str], str | None]
) -> tuple[np.ndarray, Callable[[np.ndarray], pa.Array]]:
    """A Python ``verdict`` (a reason, or None when valid) applied to the distinct values only.

    Returns:
        The valid mask, and a function giving the reasons of the rows a mask selects.
    """
    encoded = pc.dictionary_encode(values)
    reasons = [verdict(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices.to_numpy()
    ok = np.array([r is None for r in reasons], dtype=bool)[indices]
    reason_array = pa.array(reasons, pa.string())
    return ok, lambda rows: reason_array.take(pa.array(indices[rows]))


def _map_distinct(
    values: pa.StringArray, parse: Callable[[str], object | None], dtype: type[np.number] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply a Python ``parse`` (None = invalid) to the distinct values only, then map back.

    A day has at most 1440 time stamps and a few hundred addresses, so this keeps Python out of
    the per-row path while the checks stay as strict as the standard library.

    Returns:
        The valid mask and, if ``dtype`` is given, the parsed values (undefined where invalid).
    """
    encoded = pc.dictionary_encode(values)
    parsed = [parse(v) for v in encoded.dictionary.to_pylist()]
    indices = encoded.indices.to_numpy()
    ok = np.array([p is not None for p in parsed], dtype=bool)[indices]
    if dtype is None:
        return ok, None
    distinct = np.array([0 if p is None else p for p in parsed], dtype=dtype)
    return ok, distinct[indices]


def _time_stamps(values: pa.StringArray, rules: _Rules) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], pa.Array]]:
    """Parse the distinct time stamps and hold them to the file's date.

    Returns:
        The valid mask, microseconds since the epoch (undefined where invalid), and the reasons of
        the rows a mask selects.
    """
    encoded = pc.dictionary_encode(values)
    texts = encoded.dictionary.to_pylist()
    parsed = [_parse_time_stamp(text) for text in texts]
    start, end = rules.day_micros
    reasons = [
        (f"empty {_TIME_STAMP}" if not text.strip(_ASCII_WHITESPACE) else f"bad {_TIME_STAMP} '{_cut(text)}'")
        if micros is None
        else None if start <= micros < end
        else f"{OFF_DATE_PREFIX}{text[:10]}, not on the file's date {rules.log_date}"
        for text, micros in zip(texts, parsed)
    ]
    indices = encoded.indices.to_numpy()
    ok = np.array([r is None for r in reasons], dtype=bool)[indices]
    distinct = np.array([0 if p is None else p for p in parsed], dtype=np.int64)
    reason_array = pa.array(reasons, pa.string())
    return ok, distinct[indices], lambda rows: reason_array.take(pa.array(indices[rows]))


def _cut(text: str) -> str:
    return text if len(text) <= _QUOTED_CHARS else text[:_QUOTED_CHARS] + "…"


def _parse_time_stamp(text: str) -> int | None:
    """Microseconds since the epoch of a naive "%Y-%m-%d %H:%M" time stamp."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # The round trip pins the exact form "%Y-%m-%d %H:%M": fromisoformat accepts many others.
    if value.isoformat(" ", "minutes") != text:
        return None
    return (value - _EPOCH) // _MICROSECOND


def _user_problem(text: str, file_user: str | None) -> str | None:
    """Why a ``User`` value is not the file's device, or None."""
    if not text.strip(_ASCII_WHITESPACE):
        return f"empty {_USER}"
    problem = user_name_problem(text, _USER)
    if problem:
        return problem
    if file_user is not None and text != file_user:
        return f"file user {file_user} != row user {_cut(text)}"
    return None


def _parse_number(text: str) -> float | None:
    # "1e+999" has the right shape but overflows to inf, which is above the bound too.
    value = float(text) if _NUMBER_RE.fullmatch(text) else math.inf
    return value if value <= MAX_KB else None


def _parse_ip(text: str) -> bool | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return True
