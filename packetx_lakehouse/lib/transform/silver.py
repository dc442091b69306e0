"""Bronze -> silver: UTC times, exact-duplicate removal, restart replays and traffic direction.

Everything runs as Polars expressions over the whole table. Python-level work (``ipaddress``,
time-zone names) only ever touches *unique* values, so the cost does not grow with row count.

One implementation serves both ways silver is built. A whole day is read from its first line; a
refresh *extends* user-days already in silver with their new lines, from their conversations
(``SILVER_CONVERSATIONS``: each pair's last row, counts and orientation), without re-reading
them. Everything silver decides about a row depends only on the rows before it in file order
(duplicates, restart replays) or on per-pair counts (the device IP), so extending from that
state gives the rows a whole-day read gives, as long as the new lines start a new minute and
leave the device IP as it was; a user-day where they do not is reported back
(``SilverResult.needs_history``), to be read again whole with its earlier rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, SILVER_CONVERSATIONS, SILVER_PACKETS
from packetx_lakehouse.lib.transform.frames import MICRO_KB, as_text, micro_kb, sorted_by
from packetx_lakehouse.lib.transform.ipscope import dominant_private_ip, scope_lookup

#: A block is a restart replay when at least this share of its rows repeat their pair's last value
#: *and* those repeats cover at least this share of the pairs seen earlier that day.
REPLAY_MIN_SHARE = 0.9
#: ...and it holds at least this many repeats: one or two steady pairs are not a restart.
REPLAY_MIN_ROWS = 2

_USER_DAY = ("user", "log_date")
_PAIR = (*_USER_DAY, "source_ip", "destination_ip")
_ENDS = (("source_ip", "source_is_private"), ("destination_ip", "destination_is_private"))
#: A user-day that could not be extended: ``(log_date, user)``.
UserDay = tuple[dt.date, str]


@dataclass(frozen=True)
class SilverResult:
    """Silver rows plus the counts that let a check prove no bronze row was lost.

    When built from ``prior`` conversations, ``table`` holds only the new rows, ``conversations``
    the whole updated state of every user-day read, and the counts are of the new rows.
    """

    table: pa.Table
    exact_duplicates: int
    restart_replays: int
    input_rows: int
    #: The same accounting per ``log_date``, so each day of a range can prove its own rows.
    input_rows_by_day: Mapping[dt.date, int] = field(default_factory=dict)
    exact_duplicates_by_day: Mapping[dt.date, int] = field(default_factory=dict)
    #: ``SILVER_CONVERSATIONS`` rows of every user-day read (all its pairs, old and new).
    conversations: pa.Table = field(default_factory=SILVER_CONVERSATIONS.schema.empty_table)
    #: User-days whose new rows could not extend their prior state: nothing of them is in this
    #: result; read them again with their earlier rows (see the module docstring).
    needs_history: frozenset[UserDay] = frozenset()


def to_silver(
    bronze: pa.Table,
    device_timezones: Mapping[str, str],
    default_timezone: str = "UTC",
    prior: pa.Table | None = None,
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
        bronze: Rows of one or more user-days: each user-day's lines from its first, or (with
            ``prior``) the lines after those already in silver.
        device_timezones: IANA zone per user.
        default_timezone: Zone of users missing from ``device_timezones``.
        prior: ``SILVER_CONVERSATIONS`` rows of user-days already in silver: ``bronze``'s rows of
            those user-days extend them. A user-day the new rows cannot extend (they reach back
            into a minute it has, into a repeated or skipped DST hour, or they move its device IP)
            is left out and named in ``needs_history``.

    Returns:
        The silver rows, the conversations, and the counts behind ``input_rows == rows + exact_duplicates``.
    """
    rows = _in_file_order(_polars_rows(bronze))
    state = _prior_state(prior)
    needs: set[UserDay] = set()
    if state is not None:
        needs |= _not_extendable(rows, state, device_timezones, default_timezone)
        rows = _without(rows, needs)
    input_rows = rows.height
    input_rows_by_day = _rows_by_day(rows)
    # Everything per conversation is computed once per distinct pair and gathered back by id.
    rows, pairs = _with_pair_ids(rows)
    pairs = _with_prior(pairs, state)
    rows = _with_utc_time(rows, device_timezones, default_timezone)
    first_copy = _first_copies(rows)
    duplicates = rows.filter(~first_copy)
    rows = rows.filter(first_copy)
    rows = _flag_restart_replays(rows, pairs)
    pairs = _summed(pairs, rows, duplicates)
    oriented = _orient_pairs(pairs)
    moved = _device_ip_moved(oriented, pairs)
    if moved:
        needs |= moved
        rows, duplicates = _without(rows, moved), _without(duplicates, moved)
        input_rows = rows.height + duplicates.height
        input_rows_by_day = _rows_by_day(pl.concat([rows.select("log_date"), duplicates.select("log_date")]))
    table = _silver_table(bronze, rows, oriented)
    conversations = _conversations(pairs, oriented, moved)
    return SilverResult(
        table=table,
        exact_duplicates=duplicates.height,
        restart_replays=int(rows["is_restart_replay"].sum()),
        input_rows=input_rows,
        input_rows_by_day=input_rows_by_day,
        exact_duplicates_by_day=_rows_by_day(duplicates) if duplicates.height else {},
        conversations=conversations,
        needs_history=frozenset(needs),
    )


@dataclass(frozen=True)
class SilverChange:
    """What new bronze rows change in silver (``extend_silver``)."""

    #: Silver rows to add: the new rows of extended user-days, and every row of re-read ones.
    added: pa.Table
    #: User-days read again whole: their silver rows so far are replaced by ``added``'s.
    replaced: frozenset[UserDay]
    #: ``SILVER_CONVERSATIONS`` of every user-day the new rows touch, complete.
    conversations: pa.Table
    #: The new bronze rows, the exact duplicates and restart replays found among them, per day.
    input_rows_by_day: Mapping[dt.date, int]
    exact_duplicates_by_day: Mapping[dt.date, int]


def extend_silver(
    bronze: pa.Table,
    prior: pa.Table,
    earlier_rows: Callable[[frozenset[UserDay]], pa.Table],
    device_timezones: Mapping[str, str],
    default_timezone: str = "UTC",
) -> SilverChange:
    """Silver's change for new bronze rows of user-days that may already be in silver.

    Args:
        bronze: New lines only: for each user-day, the lines after those silver holds.
        prior: ``SILVER_CONVERSATIONS`` of those user-days as silver holds them (none: new user-days).
        earlier_rows: The silver rows stored for some user-days: called only for user-days the new
            rows cannot extend (see ``to_silver``), which are then read again whole.
    """
    extended = to_silver(bronze, device_timezones, default_timezone, prior)
    replaced = extended.needs_history
    if not replaced:
        return SilverChange(extended.table, frozenset(), extended.conversations, extended.input_rows_by_day,
                            extended.exact_duplicates_by_day)
    new_rows = _of_user_days(bronze, replaced)
    again = to_silver(pa.concat_tables([silver_as_bronze(earlier_rows(replaced)), new_rows.cast(BRONZE_PACKETS.schema)]),
                      device_timezones, default_timezone)
    # Duplicates removed by earlier reads are not in the stored rows: their count carries over.
    removed_before = pl.from_arrow(prior).select(*_PAIR, earlier=pl.col("duplicates"))
    conversations = (
        pl.from_arrow(again.conversations)
        .join(removed_before, on=list(_PAIR), how="left", maintain_order="left")
        .with_columns(duplicates=pl.col("duplicates") + pl.col("earlier").fill_null(0))
        .drop("earlier").to_arrow().cast(SILVER_CONVERSATIONS.schema)
    )
    # Of the re-read user-days' rows, only the new ones are new to bronze's accounting.
    new_input = _rows_by_day(pl.from_arrow(new_rows.select(["log_date"])))
    return SilverChange(
        added=pa.concat_tables([extended.table, again.table]),
        replaced=replaced,
        conversations=pa.concat_tables([extended.conversations, conversations]),
        input_rows_by_day=_add(extended.input_rows_by_day, new_input),
        exact_duplicates_by_day=_add(extended.exact_duplicates_by_day, again.exact_duplicates_by_day),
    )


def _add(a: Mapping[dt.date, int], b: Mapping[dt.date, int]) -> dict[dt.date, int]:
    return {day: a.get(day, 0) + b.get(day, 0) for day in {*a, *b}}


def _of_user_days(bronze: pa.Table, user_days: frozenset[UserDay]) -> pa.Table:
    """``bronze``'s rows of ``user_days``, in their order."""
    keys = pl.DataFrame({"log_date": [d for d, _ in user_days], "user": [u for _, u in user_days]},
                        schema={"log_date": pl.Date, "user": pl.String})
    picked = (pl.from_arrow(bronze.select(["log_date", "user"])).with_row_index("row")
              .join(keys, on=["log_date", "user"], how="semi", maintain_order="left"))
    return bronze.take(picked["row"].to_arrow())


def silver_as_bronze(silver: pa.Table) -> pa.Table:
    """Silver rows back in bronze's shape, to read a user-day again with new lines after them.

    Silver keeps every bronze column the transform reads; exact duplicates are gone, which a
    second read would drop again anyway (their counts stay in the conversations).
    """
    columns = {"time_stamp": "ts_local", "kb_bandwidth": "kb", "total_kb_bandwidth": "total_kb"}
    arrays = {name: silver.column(columns.get(name, name)) for name in BRONZE_PACKETS.schema.names if name != "ingested_at"}
    # Not read by the transform; silver does not keep it.
    arrays["ingested_at"] = pa.array([0] * silver.num_rows, pa.timestamp("us", tz="UTC"))
    return pa.Table.from_arrays([arrays[n] for n in BRONZE_PACKETS.schema.names],
                                schema=BRONZE_PACKETS.schema)


# --- extending user-days from their conversations -------------------------------------------

#: What a conversation carries forward, as the pair's columns before this read (``prior_*``).
_CARRIED = {"rows": pl.Int64, "live_rows": pl.Int64, "live_micro_kb": pl.Float64, "duplicates": pl.Int64}


def _prior_state(prior: pa.Table | None) -> pl.DataFrame | None:
    if prior is None or prior.num_rows == 0:
        return None
    return pl.from_arrow(prior).with_columns(
        live_micro_kb=micro_kb(pl.col("live_kb")),
        prior_block=_minute_key(pl.col("last_ts_local"), pl.col("last_second_pass")),
    )


def _not_extendable(
    rows: pl.DataFrame, state: pl.DataFrame, device_timezones: Mapping[str, str], default_timezone: str
) -> set[UserDay]:
    """User-days with prior state whose new rows cannot simply follow it.

    They do not when a new row's minute is not later than every minute the user-day has (a
    block split between two reads, a clock set back: the minute's earlier rows would have to be
    judged again), when the new rows come from more than one file (file order would interleave
    them with the earlier rows), or when a new row's local minute is ambiguous or skipped in the
    device's zone (DST: which pass it is depends on the rows around it).
    """
    latest = state.group_by("log_date", "user").agg(pl.col("max_ts_local").max())
    new = (
        rows.with_columns(pl.col("user").cast(pl.String))
        .group_by("log_date", "user")
        .agg(first=pl.col("time_stamp").min(), files=pl.col("source_file").n_unique())
        .join(latest, on=["log_date", "user"], how="inner")
    )
    needs = new.filter((pl.col("first") <= pl.col("max_ts_local")) | (pl.col("files") > 1))
    found = {(day, user) for day, user in needs.select("log_date", "user").iter_rows()}
    extended = new.select("log_date", "user")
    minutes = (
        rows.with_columns(pl.col("user").cast(pl.String))
        .join(extended, on=["log_date", "user"], how="semi")
        .select("log_date", "user", "time_stamp").unique()
        .with_columns(zone=pl.col("user").replace_strict(dict(device_timezones), default=default_timezone,
                                                         return_dtype=pl.String))
    )
    for (zone,), part in minutes.partition_by("zone", as_dict=True).items():
        unclear = part.filter(pl.col("time_stamp").dt.replace_time_zone(zone, ambiguous="null",
                                                                        non_existent="null").is_null())
        found |= {(day, user) for day, user in unclear.select("log_date", "user").iter_rows()}
    return found


def _without(rows: pl.DataFrame, user_days: set[UserDay]) -> pl.DataFrame:
    """``rows`` minus those of ``user_days`` (order kept)."""
    if not user_days:
        return rows
    drop = pl.DataFrame({"log_date": [d for d, _ in user_days], "_user": [u for _, u in user_days]},
                        schema={"log_date": pl.Date, "_user": pl.String})
    return (rows.with_columns(_user=pl.col("user").cast(pl.String))
            .join(drop, on=["log_date", "_user"], how="anti", maintain_order="left").drop("_user"))


def _with_prior(pairs: pl.DataFrame, state: pl.DataFrame | None) -> pl.DataFrame:
    """The read's pairs with their prior state, plus the prior pairs of its user-days it does not
    mention (they still vote for the device IP and count as pairs seen before), numbered after them.
    """
    carried = [pl.lit(0, dtype).alias(f"prior_{name}") for name, dtype in _CARRIED.items()]
    empty = [
        pl.lit(None, pl.Int64).alias("prior_block"), pl.lit(None, pl.Float64).alias("prior_kb"),
        pl.lit(None, pl.Datetime("us")).alias("prior_first"), pl.lit(None, pl.Datetime("us")).alias("prior_max"),
        pl.lit(None, pl.Datetime("us")).alias("prior_last"), pl.lit(None, pl.Boolean).alias("prior_last_pass"),
        pl.lit(None, pl.String).alias("prior_device_ip"), pl.lit(False).alias("has_prior"), *carried,
    ]
    if state is None:
        return pairs.with_columns(empty)
    user_days = pairs.select("user_day", "user", "log_date").unique("user_day")
    relevant = state.join(user_days, on=["user", "log_date"], how="inner").select(
        "user_day", *_PAIR, "prior_block", prior_kb="last_kb", prior_first="first_ts_local",
        prior_max="max_ts_local", prior_last="last_ts_local", prior_last_pass="last_second_pass",
        prior_device_ip="device_ip", has_prior=pl.lit(True),
        **{f"prior_{name}": pl.col(name) for name in _CARRIED},
    )
    matched = pairs.join(relevant.drop("user_day"), on=list(_PAIR), how="left", maintain_order="left")
    prior_only = relevant.join(pairs.select(*_PAIR), on=list(_PAIR), how="anti", maintain_order="left")
    prior_only = prior_only.sort(list(_PAIR)).with_columns(
        pair_id=pl.int_range(pairs.height, pairs.height + pl.len()).cast(pairs["pair_id"].dtype))
    merged = pl.concat([matched, prior_only.select(matched.columns)], how="vertical_relaxed")
    # Every pair of a user-day with prior state knows it has one, and the device IP it had.
    day_prior = relevant.group_by("user_day").agg(day_device_ip=pl.col("prior_device_ip").first(), day_prior=True)
    return (
        merged.join(day_prior, on="user_day", how="left", maintain_order="left")
        .with_columns(
            has_prior=pl.col("day_prior").fill_null(False),
            prior_device_ip=pl.col("day_device_ip"),
            **{f"prior_{name}": pl.col(f"prior_{name}").fill_null(0) for name in _CARRIED},
        )
        .drop("day_device_ip", "day_prior")
        .sort("pair_id")
    )


def _summed(pairs: pl.DataFrame, rows: pl.DataFrame, duplicates: pl.DataFrame) -> pl.DataFrame:
    """Each pair's totals and last row after this read: its prior state plus the read's rows.

    Rows arrive in file order, so a pair's last row is its last occurrence here (or, without
    one, its prior last row); KB are summed as micro-KB, exactly and in any order.
    """
    live = ~pl.col("is_restart_replay")
    read = rows.group_by("pair_id").agg(
        rows=pl.len().cast(pl.Int64),
        live_rows=live.sum().cast(pl.Int64),
        live_micro_kb=micro_kb(pl.col("kb_bandwidth")).filter(live).sum(),
        first=pl.col("time_stamp").min(),
        max=pl.col("time_stamp").max(),
        last=pl.col("time_stamp").last(),
        last_pass=pl.col("second_pass").last(),
        last_kb=pl.col("kb_bandwidth").last(),
    )
    removed = duplicates.group_by("pair_id").agg(duplicates=pl.len().cast(pl.Int64))
    joined = (
        pairs.join(read, on="pair_id", how="left", maintain_order="left")
        .join(removed, on="pair_id", how="left", maintain_order="left")
    )
    return joined.with_columns(
        *((pl.col(f"prior_{name}") + pl.col(name).fill_null(0)).alias(name) for name in _CARRIED),
        first_ts_local=pl.min_horizontal("prior_first", "first"),
        max_ts_local=pl.max_horizontal("prior_max", "max"),
        last_ts_local=pl.coalesce("last", "prior_last"),
        last_second_pass=pl.coalesce("last_pass", "prior_last_pass"),
        last_kb=pl.coalesce("last_kb", "prior_kb"),
    )


def _device_ip_moved(oriented: pl.DataFrame, pairs: pl.DataFrame) -> set[UserDay]:
    """User-days with prior state whose device IP this read changes: all their rows turn around."""
    moved = (
        pl.concat([pairs.select("log_date", "user", "has_prior", "prior_device_ip"), oriented.select("device_ip")],
                  how="horizontal")
        .filter(pl.col("has_prior") & pl.col("device_ip").ne_missing(pl.col("prior_device_ip")))
        .select("log_date", "user").unique()
    )
    return {(day, user) for day, user in moved.iter_rows()}


def _conversations(pairs: pl.DataFrame, oriented: pl.DataFrame, left_out: set[UserDay]) -> pa.Table:
    """``SILVER_CONVERSATIONS`` rows of every pair read, sorted by their key."""
    frame = pl.concat([pairs, oriented.drop("device_ip")], how="horizontal").with_columns(
        device_ip=oriented["device_ip"], live_kb=pl.col("live_micro_kb") / MICRO_KB)
    if left_out:
        frame = frame.with_columns(pl.col("user").cast(pl.String))
        frame = _without(frame, left_out)
    schema = SILVER_CONVERSATIONS.schema
    return (
        frame.with_columns(pl.col("user").cast(pl.String)).sort(list(SILVER_CONVERSATIONS.key))
        .select(schema.names).to_arrow().cast(schema)
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
    pairs = as_text(rows.filter(pl.col("pair_id").is_first_distinct()).select("pair_id", "user_day", *_PAIR))
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


def _flag_restart_replays(rows: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Add ``is_restart_replay``: rows a restarted PacketX re-emitted from its reloaded file.

    "Earlier" means earlier in the file (rows arrive in file order), which stays right when a DST
    fall-back repeats local minutes. A row *repeats* when its pair's previous row, in an earlier
    minute, has the identical value. A (user, day, minute) block is a replay when it has at least
    ``REPLAY_MIN_ROWS`` repeats, they are at least ``REPLAY_MIN_SHARE`` of the block's rows,
    *and* they cover at least ``REPLAY_MIN_SHARE`` of the pairs seen before the block. Coverage
    is what separates a restart (it re-emits everything) from a quiet minute in which some pairs
    merely keep their value. Only the repeating rows of a replay block are flagged; the few
    others are genuine traffic of that minute.

    A pair's first row here takes its previous row from ``pairs``' prior state (``prior_block``,
    ``prior_kb``), and a user-day's pairs seen before count its prior pairs: rows extending a
    user-day are judged exactly as in a read of the whole day.
    """
    rows = rows.with_columns(
        previous_block=pl.col("block_key").shift(1).over("pair_id"),
        previous_kb=pl.col("kb_bandwidth").shift(1).over("pair_id"),
    )
    prior = pairs.filter(pl.col("prior_block").is_not_null()).select("pair_id", "prior_block", "prior_kb")
    if prior.height:
        rows = rows.join(prior, on="pair_id", how="left", maintain_order="left").with_columns(
            previous_block=pl.coalesce("previous_block", "prior_block"),
            previous_kb=pl.coalesce("previous_kb", "prior_kb"),
        ).drop("prior_block", "prior_kb")
    rows = rows.with_columns(
        repeats=(
            (pl.col("previous_block") != pl.col("block_key"))
            & (pl.col("previous_kb") == pl.col("kb_bandwidth"))
        ).fill_null(False),
    )
    known_before = pairs.group_by("user_day").agg(known=pl.col("prior_block").is_not_null().sum().cast(pl.Int64))
    # Block ids follow first appearance, so sorting by them is file order, and each block's
    # verdict is gathered back by id (every block keeps its first row through deduplication).
    replay_block = (
        rows.group_by("block_id")
        .agg(
            pl.col("user_day").first(),
            block_rows=pl.len(),
            repeat_rows=pl.col("repeats").sum(),
            new_pairs=pl.col("previous_block").is_null().sum(),
        )
        .sort("block_id")
        .join(known_before, on="user_day", how="left", maintain_order="left")
        .with_columns(
            pairs_before=pl.col("new_pairs").cum_sum().over("user_day") - pl.col("new_pairs")
            + pl.col("known").fill_null(0)
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
    ).drop("previous_block", "previous_kb", "repeats")


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
        return rows.with_columns(ts_utc=pl.lit(None, pl.Datetime("us", "UTC")), second_pass=pl.lit(False),
                                 block_key=pl.lit(None, pl.Int64))
    blocks = pl.concat(converted).sort("block_id")
    ts_utc = blocks["earliest"].gather(rows["block_id"])
    repeated = blocks.filter(pl.col("earliest") != pl.col("latest"))["block_id"]
    if repeated.is_empty():  # the usual day: no fall-back hour
        return rows.with_columns(ts_utc=ts_utc, second_pass=pl.lit(False), block_key=_block_key(pl.lit(False)))
    second = _second_pass(rows, repeated)
    ts_utc = pl.select(pl.when(second).then(blocks["latest"].gather(rows["block_id"])).otherwise(ts_utc)).to_series()
    # Block ids stay dense and in order of first appearance (file order), which replays rely on.
    block_id = _dense_ids(rows["block_id"].cast(pl.UInt64) * 2 + second.cast(pl.UInt64))
    return rows.with_columns(ts_utc=ts_utc, block_id=block_id, second_pass=second, block_key=_block_key(second))


def _block_key(second_pass: pl.Expr | pl.Series) -> pl.Expr:
    """A block (local minute and pass) as one integer, comparable across reads: minutes x 2 + pass."""
    return _minute_key(pl.col("time_stamp"), pl.lit(second_pass) if isinstance(second_pass, pl.Series) else second_pass)


def _minute_key(time_stamp: pl.Expr, second_pass: pl.Expr) -> pl.Expr:
    return time_stamp.dt.epoch("s") // 60 * 2 + second_pass.cast(pl.Int64)


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


def _orient_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """Orientation columns for each pair, in ``pair_id`` order (so rows can gather them).

    The device IP of a user-day is its private address present in the most rows (``live_rows``:
    restart replays left out, they would vote twice). Then:

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
        pairs.select("pair_id", *_PAIR, rows="live_rows")
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
