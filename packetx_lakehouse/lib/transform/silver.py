"""Bronze -> silver: UTC times, exact-duplicate removal, restart replays and traffic direction.

Everything runs as Polars expressions over the whole table. Python-level work (``ipaddress``,
time-zone names) only ever touches *unique* values, so the cost does not grow with row count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.lib.schemas import SILVER_PACKETS
from packetx_lakehouse.lib.transform.frames import as_text, sorted_by
from packetx_lakehouse.lib.transform.ipscope import dominant_private_ip, scope_lookup

#: A block is a restart replay when at least this share of its rows repeat their pair's last value
#: *and* those repeats cover at least this share of the pairs seen earlier that day.
REPLAY_MIN_SHARE = 0.9
#: ...and it holds at least this many repeats: one or two steady pairs are not a restart.
REPLAY_MIN_ROWS = 2

_USER_DAY = ("user", "log_date")
_PAIR = (*_USER_DAY, "source_ip", "destination_ip")
_ENDS = (("source_ip", "source_is_private"), ("destination_ip", "destination_is_private"))

@dataclass(frozen=True)
class SilverResult:
    """Silver rows plus the counts that let a check prove no bronze row was lost."""

    table: pa.Table
    exact_duplicates: int
    restart_replays: int
    input_rows: int
    #: The same accounting per ``log_date``, so each day of a range can prove its own rows.
    input_rows_by_day: Mapping[dt.date, int] = field(default_factory=dict)
    exact_duplicates_by_day: Mapping[dt.date, int] = field(default_factory=dict)


def to_silver(
    bronze: pa.Table, device_timezones: Mapping[str, str], default_timezone: str = "UTC"
) -> SilverResult:
    """Turn bronze rows (``BRONZE_PACKETS``) into silver rows (``SILVER_PACKETS``).

    - ``ts_utc`` reads ``time_stamp`` in the user's zone (``device_timezones``, else the default).
      A fall-back minute written twice is assigned by line order: the first pass is the earlier
      (summer-time) instant, the second the later (``_second_pass``); a minute that does not
      exist (spring-forward gap) is read with the offset in force before the gap, i.e. it is
      shifted forward by the gap's length, as ``zoneinfo`` does with ``fold=0``.
    - Exact duplicates keep the first copy in file order (a user-day's files by name, then line) and
      are counted.
    - Restart replays are flagged, not dropped (see ``_flag_restart_replays``).
    - Direction is derived around the user-day's device IP (see ``_orient_pairs``).

    Args:
        bronze: Rows of one or more user-days.
        device_timezones: IANA zone per user.
        default_timezone: Zone of users missing from ``device_timezones``.

    Returns:
        The silver table and the counts behind ``input_rows == rows + exact_duplicates``.
    """
    rows = _in_file_order(_polars_rows(bronze))
    input_rows = rows.height
    input_rows_by_day = _rows_by_day(rows)
    # Everything per conversation is computed once per distinct pair and gathered back by id.
    rows, pairs = _with_pair_ids(rows)
    rows = _with_utc_time(rows, device_timezones, default_timezone)
    first_copy = _first_copies(rows)
    # Counted where they are removed, so the conservation check sees any later loss of rows.
    exact_duplicates = int((~first_copy).sum())
    exact_duplicates_by_day = {}
    if exact_duplicates:
        exact_duplicates_by_day = _rows_by_day(rows.filter(~first_copy))
        rows = rows.filter(first_copy)
    rows = _flag_restart_replays(rows)
    counted = rows.filter(~pl.col("is_restart_replay"))["pair_id"].value_counts(name="rows")
    table = _silver_table(bronze, rows, _orient_pairs(pairs, counted))
    return SilverResult(
        table=table,
        exact_duplicates=exact_duplicates,
        restart_replays=int(rows["is_restart_replay"].sum()),
        input_rows=input_rows,
        input_rows_by_day=input_rows_by_day,
        exact_duplicates_by_day=exact_duplicates_by_day,
    )


def _rows_by_day(rows: pl.DataFrame) -> dict[dt.date, int]:
    return dict(rows.group_by("log_date").len().iter_rows())


def _dense_ids(keys: pl.Series) -> pl.Series:
    """0, 1, 2, ... per distinct value of an integer ``keys``, numbered in order of first appearance."""
    distinct = keys.unique(maintain_order=True).to_frame("key").with_row_index("id")
    return keys.to_frame("key").join(distinct, on="key", maintain_order="left")["id"]


#: Bronze text the transform reads; it only ever compares it, so it goes over as categoricals.
_TEXT = ("user", "source_ip", "destination_ip", "source_file")


def _polars_rows(bronze: pa.Table) -> pl.DataFrame:
    """Bronze in Polars with ``bronze_row``, text dictionary-encoded by Arrow on the way.

    Polars would otherwise copy every row's text into its own string views (a day's worth of
    bytes); output text is taken from bronze itself (``_silver_table``).
    """
    names = [name for name in bronze.column_names if name != "ingested_at"]
    columns = [pc.dictionary_encode(bronze.column(n)) if n in _TEXT else bronze.column(n) for n in names]
    return pl.from_arrow(pa.Table.from_arrays(columns, names=names)).with_row_index("bronze_row")


def _silver_table(bronze: pa.Table, rows: pl.DataFrame, oriented: pl.DataFrame) -> pa.Table:
    """Assemble silver in Arrow from bronze's own columns and the per-pair orientation.

    Text is taken from bronze (as is when no row moved or went) and from the small orientation
    table by pair id, so no string column is converted back from Polars: that conversion copied
    every text byte of the table once more.
    """
    picked = rows["bronze_row"]
    unchanged = picked.len() == bronze.num_rows and (picked.len() == 0 or (
        picked.is_sorted() and picked[0] == 0 and picked[-1] == bronze.num_rows - 1))
    source = bronze if unchanged else bronze.take(picked.to_arrow())
    # Polars gathers text as views of the small per-pair table; one export copies the bytes.
    orientation = oriented.select(pl.all().gather(rows["pair_id"])).to_arrow()
    columns = {
        **{name: source.column(name) for name in ("log_date", "user", "source_ip", "destination_ip",
                                                  "source_file", "line_number")},
        "ts_local": source.column("time_stamp"),
        "kb": source.column("kb_bandwidth"),
        "total_kb": source.column("total_kb_bandwidth"),
        "ts_utc": rows["ts_utc"].to_arrow(),
        "is_restart_replay": rows["is_restart_replay"].to_arrow(),
        **{name: orientation.column(name) for name in _ORIENTATION},
    }
    schema = SILVER_PACKETS.schema
    return pa.Table.from_arrays([columns[name] for name in schema.names], names=schema.names).cast(schema)


def _bound(codes: pl.Series) -> int:
    """One more than the largest code (1 when there are none)."""
    return int(codes.max() or 0) + 1


def _with_pair_ids(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Add integer ``user_day``, ``pair_id`` and ``block_id`` (a user-day's minute) columns.

    Returns the rows and the pairs by id.

    Each string is hashed once into a categorical code and the codes are combined into one
    integer key, so grouping, windows and joins per pair or user-day never touch the strings
    (3-4x cheaper than keying on four string columns). Ids follow first appearance.
    """
    def code(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.Categorical).to_physical().cast(pl.UInt64)

    # One chunk: bronze arrives as one chunk per file, and arithmetic across differently
    # chunked series re-aligns them on every operation.
    codes = rows.select(
        user=code("user"),
        day=(pl.col("log_date") - pl.col("log_date").min()).dt.total_days().cast(pl.UInt64),
        source=code("source_ip"),
        destination=code("destination_ip"),
        minute=pl.col("time_stamp").to_physical(),
    ).rechunk()
    # Each product stays below 2**64: codes are below 2**32, dense ids below the row count.
    endpoints = _dense_ids(codes["source"] * (_bound(codes["destination"])) + codes["destination"])
    user_day = _dense_ids(codes["user"] * _bound(codes["day"]) + codes["day"])
    pair_id = _dense_ids(user_day.cast(pl.UInt64) * rows.height + endpoints.cast(pl.UInt64))
    minute = _dense_ids(codes["minute"])
    block_id = _dense_ids(user_day.cast(pl.UInt64) * rows.height + minute.cast(pl.UInt64))
    rows = rows.with_columns(user_day=user_day, pair_id=pair_id, block_id=block_id)
    pairs = as_text(rows.filter(pl.col("pair_id").is_first_distinct()).select("pair_id", *_PAIR))
    return rows, pairs


def _first_copies(rows: pl.DataFrame) -> pl.Series:
    """True on the first copy of each exact duplicate (same pair, block and both values).

    The block is the minute, told apart by pass in a repeated fall-back hour: the same value in
    both passes is two minutes of traffic, while a second copy of a file repeats each pass.

    A 64-bit row hash finds the few rows that may repeat; only those are compared exactly, so
    a hash collision can never drop a row.
    """
    values = pl.struct("pair_id", "block_id", "kb_bandwidth", "total_kb_bandwidth")
    maybe = rows.select(values.hash().is_duplicated().over("user_day")).to_series()
    first = pl.repeat(True, rows.height, dtype=pl.Boolean, eager=True)
    suspects = maybe.arg_true()
    if suspects.len():
        exact = rows[suspects].select(values.is_first_distinct()).to_series()
        first = first.scatter(suspects, exact)
    return first


#: The order rows are read in: a user-day's files in name order, each file's lines in order.
#: Bronze writes day by day, files sorted, so it arrives this way and the check is one pass.
FILE_ORDER = ("log_date", "source_file", "line_number")


def _in_file_order(rows: pl.DataFrame) -> pl.DataFrame:
    """Rows in ``FILE_ORDER``: what "first" and "earlier" mean for duplicates and replays."""
    return rows if sorted_by(rows, FILE_ORDER) else rows.sort(FILE_ORDER)


def _flag_restart_replays(rows: pl.DataFrame) -> pl.DataFrame:
    """Add ``is_restart_replay``: rows a restarted PacketX re-emitted from its reloaded file.

    "Earlier" means earlier in the file (rows arrive in file order), which stays right when a DST
    fall-back repeats local minutes. A row *repeats* when its pair's previous row, in an earlier
    minute, has the identical value. A (user, day, minute) block is a replay when it has at least
    ``REPLAY_MIN_ROWS`` repeats, they are at least ``REPLAY_MIN_SHARE`` of the block's rows,
    *and* they cover at least ``REPLAY_MIN_SHARE`` of the pairs seen before the block. Coverage
    is what separates a restart (it re-emits everything) from a quiet minute in which some pairs
    merely keep their value. Only the repeating rows of a replay block are flagged; the few
    others are genuine traffic of that minute.
    """
    rows = rows.with_columns(
        previous_minute=pl.col("block_id").shift(1).over("pair_id"),
        previous_kb=pl.col("kb_bandwidth").shift(1).over("pair_id"),
    ).with_columns(
        repeats=(
            (pl.col("previous_minute") != pl.col("block_id"))
            & (pl.col("previous_kb") == pl.col("kb_bandwidth"))
        ).fill_null(False),
    )
    # Block ids follow first appearance, so sorting by them is file order, and each block's
    # verdict is gathered back by id (every block keeps its first row through deduplication).
    replay_block = (
        rows.group_by("block_id")
        .agg(
            pl.col("user_day").first(),
            block_rows=pl.len(),
            repeat_rows=pl.col("repeats").sum(),
            new_pairs=pl.col("previous_minute").is_null().sum(),
        )
        .sort("block_id")
        .with_columns(
            pairs_before=pl.col("new_pairs").cum_sum().over("user_day") - pl.col("new_pairs")
        )
        .select(
            (pl.col("repeat_rows") >= REPLAY_MIN_ROWS)
            & (pl.col("repeat_rows") >= REPLAY_MIN_SHARE * pl.col("block_rows"))
            & (pl.col("repeat_rows") >= REPLAY_MIN_SHARE * pl.col("pairs_before"))
        )
        .to_series()
    )
    return rows.with_columns(
        is_restart_replay=pl.col("repeats") & replay_block.gather(rows["block_id"])
    ).drop("previous_minute", "previous_kb", "repeats")


def _with_utc_time(
    rows: pl.DataFrame, device_timezones: Mapping[str, str], default_timezone: str
) -> pl.DataFrame:
    """Add ``ts_utc``, converting each (user-day, local minute) block once, by its zone.

    A fall-back hour repeats its local minutes. The file's line order tells the two passes apart
    (``_second_pass``); each pass of such a minute becomes a block of its own, so duplicates,
    restart replays and UTC times are judged per pass, never across both.
    """
    minutes = (
        rows.filter(pl.col("block_id").is_first_distinct())
        .select("block_id", pl.col("user").cast(pl.String), "time_stamp")
        .with_columns(
            zone=pl.col("user").replace_strict(
                dict(device_timezones), default=default_timezone, return_dtype=pl.String
            )
        )
    )
    converted = [
        part.select("block_id", earliest=_local_to_utc(pl.col("time_stamp"), zone, "earliest"),
                    latest=_local_to_utc(pl.col("time_stamp"), zone, "latest"))
        for (zone,), part in minutes.partition_by("zone", as_dict=True).items()
    ]
    if not converted:
        return rows.with_columns(ts_utc=pl.lit(None, pl.Datetime("us", "UTC")))
    blocks = pl.concat(converted).sort("block_id")
    ts_utc = blocks["earliest"].gather(rows["block_id"])
    repeated = blocks.filter(pl.col("earliest") != pl.col("latest"))["block_id"]
    if repeated.is_empty():  # the usual day: no fall-back hour
        return rows.with_columns(ts_utc=ts_utc)
    second = _second_pass(rows, repeated)
    ts_utc = pl.select(pl.when(second).then(blocks["latest"].gather(rows["block_id"])).otherwise(ts_utc)).to_series()
    # Block ids stay dense and in order of first appearance (file order), which replays rely on.
    block_id = _dense_ids(rows["block_id"].cast(pl.UInt64) * 2 + second.cast(pl.UInt64))
    return rows.with_columns(ts_utc=ts_utc, block_id=block_id)


def _second_pass(rows: pl.DataFrame, repeated_blocks: pl.Series) -> pl.Series:
    """True on rows of a repeated (fall-back) local minute written in the hour's second pass.

    PacketX appends minute by minute, so in a file the clock reads ..02:58, 02:59 (summer time),
    then 02:00, 02:01 again (standard time). From the first row of the repeated hour whose local
    time is earlier than one already seen in that hour of the file, the rows are the second pass
    (the later instant); before it, the first. With no step back (a device idle across the change)
    nothing tells the passes apart, and the earlier instant is taken.
    """
    in_hour = rows["block_id"].is_in(repeated_blocks.implode())
    stamp, file = pl.col("time_stamp"), ("user_day", "source_file")
    second = (
        rows.with_row_index("row").filter(in_hour).select("row", *file, "time_stamp")
        .with_columns(stepped_back=(stamp < stamp.cum_max().shift(1)).fill_null(False).over(file))
        .with_columns(second=pl.col("stepped_back").cum_sum().over(file) > 0)
    )
    flags = pl.repeat(False, rows.height, dtype=pl.Boolean, eager=True)
    return flags.scatter(second["row"], second["second"])


def _local_to_utc(local: pl.Expr, zone: str, ambiguous: str = "earliest") -> pl.Expr:
    """Naive local time -> UTC: ``ambiguous`` picks a fall-back minute's instant; a gap minute is
    shifted forward."""
    exact = local.dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null")
    # A day earlier the pre-gap offset is in force; reading the time there and adding the day
    # back in UTC (where a day is always 24 h) applies that offset to the missing minute.
    day = pl.duration(hours=24)
    day_before = (local - day).dt.replace_time_zone(zone, ambiguous=ambiguous, non_existent="null")
    return pl.coalesce(exact.dt.convert_time_zone("UTC"), day_before.dt.convert_time_zone("UTC") + day)


_ORIENTATION = (
    "device_ip", "local_ip", "remote_ip", "local_is_private", "remote_is_private", "direction",
)  # fmt: skip


def _orient_pairs(pairs: pl.DataFrame, rows_per_pair: pl.DataFrame) -> pl.DataFrame:
    """Orientation columns for each pair, in ``pair_id`` order (so rows can gather them).

    The device IP of a user-day is its private address present in the most rows (restart
    replays left out: they would vote twice). Then:

    - exactly one private end: local = that end; ``outbound`` if it is the device IP, else
      ``inbound`` (a public host reaching another private address the capture saw);
    - both private: ``internal``; local = the device IP if it is an end, else the text-larger end;
    - neither private: ``unknown``; local is null and remote is the text-larger end, i.e. the
      "source" PacketX wrote, so the choice is stable and visible in bronze.
    """
    private = scope_lookup(
        pl.concat([pairs["source_ip"], pairs["destination_ip"]]).to_list()
    ).select("ip", "is_private")
    pairs = (
        pairs.join(rows_per_pair, on="pair_id", how="left", maintain_order="left")
        .with_columns(pl.col("rows").fill_null(0))
        .join(private.rename({"ip": "source_ip", "is_private": "source_is_private"}),
              on="source_ip", how="left", maintain_order="left")
        .join(private.rename({"ip": "destination_ip", "is_private": "destination_is_private"}),
              on="destination_ip", how="left", maintain_order="left")
    )
    device = dominant_private_ip(pairs, _USER_DAY, _ENDS, weight="rows")
    pairs = pairs.join(
        device.select(*_USER_DAY, device_ip="ip"), on=_USER_DAY, how="left", maintain_order="left"
    )

    src, dst, device_ip = pl.col("source_ip"), pl.col("destination_ip"), pl.col("device_ip")
    src_private, dst_private = pl.col("source_is_private"), pl.col("destination_is_private")
    larger = pl.when(src >= dst).then(src).otherwise(dst)
    local = (
        pl.when(src_private & dst_private)
        .then(pl.when(dst == device_ip).then(dst).when(src == device_ip).then(src).otherwise(larger))
        .when(src_private)
        .then(src)
        .when(dst_private)
        .then(dst)
    )
    return (
        pairs.with_columns(local_ip=local)
        .with_columns(
            remote_ip=pl.when(pl.col("local_ip").is_null())
            .then(larger)
            .when(pl.col("local_ip") == src)
            .then(dst)
            .otherwise(src),
            local_is_private=pl.col("local_ip").is_not_null(),
            remote_is_private=src_private & dst_private,
            direction=pl.when(src_private & dst_private)
            .then(pl.lit("internal"))
            .when(pl.col("local_ip") == device_ip)
            .then(pl.lit("outbound"))
            .when(pl.col("local_ip").is_not_null())
            .then(pl.lit("inbound"))
            .otherwise(pl.lit("unknown")),
        )
        .select(_ORIENTATION)
    )
