import datetime as dt
from collections.abc import Sequence

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, SILVER_PACKETS
from packetx_lakehouse.lib.transform.frames import sorted_by
from packetx_lakehouse.lib.transform.silver import to_silver

UTC = dt.timezone.utc
#: (user, "YYYY-MM-DD HH:MM" local time, source IP, destination IP, KB, total KB)
Row = tuple[str, str, str, str, float, float]


def bronze_table(rows: Sequence[Row]) -> pa.Table:
    """Bronze rows as PacketX would have produced them: one file per user and local day.

    Line numbers count from 2 (after the header) within each file, in the order given.
    """
    lines: dict[str, int] = {}
    columns: dict[str, list] = {name: [] for name in BRONZE_PACKETS.schema.names}
    for user, stamp, src, dst, kb, total in rows:
        time_stamp = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M")
        source_file = f"{user}-{time_stamp.date()}.csv"
        lines[source_file] = lines.get(source_file, 1) + 1
        values = {
            "log_date": time_stamp.date(),
            "user": user,
            "time_stamp": time_stamp,
            "source_ip": src,
            "destination_ip": dst,
            "kb_bandwidth": kb,
            "total_kb_bandwidth": total,
            "source_file": source_file,
            "line_number": lines[source_file],
            "ingested_at": dt.datetime(2026, 11, 22, tzinfo=UTC),
        }
        for name, value in values.items():
            columns[name].append(value)
    return pa.table(columns, schema=BRONZE_PACKETS.schema)


def silver_rows(rows: Sequence[Row], zones: dict[str, str] | None = None) -> list[dict]:
    return to_silver(bronze_table(rows), zones or {}).table.to_pylist()


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_output_has_exactly_the_silver_schema_even_when_empty() -> None:
    result = to_silver(bronze_table([]), {})
    assert result.table.schema == SILVER_PACKETS.schema
    assert (result.input_rows, result.table.num_rows, result.exact_duplicates) == (0, 0, 0)


def test_local_times_are_converted_to_utc_in_the_device_zone_across_dst_edges() -> None:
    rows = [
        ("paris", "2026-01-15 12:00", "8.8.8.8", "192.168.1.2", 1, 1),  # CET, +01:00
        ("paris", "2026-07-01 12:00", "8.8.8.8", "192.168.1.2", 1, 1),  # CEST, +02:00
        # 02:30 does not exist on 29 March (02:00 -> 03:00): read with the pre-gap offset.
        ("paris", "2026-03-29 02:30", "8.8.8.8", "192.168.1.2", 1, 1),
        ("paris", "2026-03-30 02:30", "8.8.8.8", "192.168.1.2", 1, 1),  # a day after the gap
        # 02:30 happens twice on 25 October: the earlier (CEST) instant is taken.
        ("paris", "2026-10-25 02:30", "8.8.8.8", "192.168.1.2", 1, 1),
        ("nomad", "2026-07-01 12:00", "8.8.8.8", "192.168.1.2", 1, 1),  # not configured: UTC
    ]
    got = sorted((r["user"], r["ts_local"], r["ts_utc"]) for r in silver_rows(rows, {"paris": "Europe/Paris"}))
    assert got == [
        ("nomad", dt.datetime(2026, 7, 1, 12), utc(2026, 7, 1, 12)),
        ("paris", dt.datetime(2026, 1, 15, 12), utc(2026, 1, 15, 11)),
        ("paris", dt.datetime(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 30)),
        ("paris", dt.datetime(2026, 3, 30, 2, 30), utc(2026, 3, 30, 0, 30)),
        ("paris", dt.datetime(2026, 7, 1, 12), utc(2026, 7, 1, 10)),
        ("paris", dt.datetime(2026, 10, 25, 2, 30), utc(2026, 10, 25, 0, 30)),
    ]


def test_default_timezone_applies_to_unconfigured_users() -> None:
    rows = [("nomad", "2026-07-01 12:00", "8.8.8.8", "192.168.1.2", 1, 1)]
    table = to_silver(bronze_table(rows), {}, default_timezone="Asia/Kolkata").table
    assert table["ts_utc"].to_pylist() == [utc(2026, 7, 1, 6, 30)]


def test_exact_duplicates_are_removed_keeping_the_first_line() -> None:
    rows = [
        ("alice", "2026-11-21 10:00", "8.8.8.8", "192.168.1.2", 5.0, 9.0),  # line 2
        ("alice", "2026-11-21 10:00", "1.1.1.1", "192.168.1.2", 4.0, 9.0),  # line 3
        ("alice", "2026-11-21 10:00", "8.8.8.8", "192.168.1.2", 5.0, 9.0),  # line 4: duplicate
        ("alice", "2026-11-21 10:00", "8.8.8.8", "192.168.1.2", 6.0, 9.0),  # line 5: other KB
        ("alice", "2026-11-21 10:00", "8.8.8.8", "192.168.1.2", 5.0, 9.5),  # line 6: other total
    ]
    result = to_silver(bronze_table(rows), {})
    assert result.exact_duplicates == 1
    assert result.table["line_number"].to_pylist() == [2, 3, 5, 6]


def test_exact_duplicates_across_two_copies_of_a_file_keep_the_first_file() -> None:
    copy = bronze_table([("alice", "2026-11-21 10:00", "8.8.8.8", "192.168.1.2", 5.0, 9.0)])
    field = BRONZE_PACKETS.schema.field("source_file")
    renamed = copy.set_column(7, field, pa.array(["alice-2026-11-21.csv.gz"], field.type))
    result = to_silver(pa.concat_tables([renamed, copy]), {})
    assert result.exact_duplicates == 1
    assert result.table["source_file"].to_pylist() == ["alice-2026-11-21.csv"]


PAIRS = [("8.8.8.8", "192.168.1.2"), ("192.168.1.2", "1.1.1.1"), ("192.168.1.2", "10.0.0.1")]


def minute(stamp: str, kbs: Sequence[float | None], user: str = "alice") -> list[Row]:
    """One minute's block: the KB of each of ``PAIRS``, in order (None = silent that minute)."""
    total = sum(kb for kb in kbs if kb is not None)
    return [(user, stamp, *pair, kb, total) for pair, kb in zip(PAIRS, kbs) if kb is not None]


def replay_flags(rows: Sequence[Row]) -> list[tuple[str, float, bool]]:
    return [
        (r["ts_local"].strftime("%H:%M"), r["kb"], r["is_restart_replay"])
        for r in sorted(silver_rows(rows), key=lambda r: r["line_number"])
    ]


def test_restart_replay_block_is_flagged_and_counted() -> None:
    rows = [
        *minute("2026-11-21 10:00", [1, 2, 3]),
        *minute("2026-11-21 10:01", [4, 5, None]),
        # Restart: every pair seen so far, with its last value (pair 3 is silent since 10:00).
        *minute("2026-11-21 10:02", [4, 5, 3]),
        *minute("2026-11-21 10:03", [6, 7, 8]),
    ]
    result = to_silver(bronze_table(rows), {})
    assert result.restart_replays == 3
    assert [flag for *_, flag in replay_flags(rows)] == [False] * 5 + [True] * 3 + [False] * 3


def test_pairs_that_merely_keep_their_value_are_not_a_replay() -> None:
    rows = [
        *minute("2026-11-21 10:00", [1, 2, 3]),
        *minute("2026-11-21 10:01", [1, 9, 3]),  # two steady pairs: 2 of 3 rows repeat
        *minute("2026-11-21 10:02", [1, 2, None]),  # every row repeats, but 2 of 3 pairs only
    ]
    assert to_silver(bronze_table(rows), {}).restart_replays == 0


def test_replays_are_judged_per_user() -> None:
    rows = [
        *minute("2026-11-21 10:00", [1, 2, 3], user="alice"),
        *minute("2026-11-21 10:01", [1, 2, 3], user="bob"),  # bob's first minute, not a replay
    ]
    assert to_silver(bronze_table(rows), {}).restart_replays == 0


DEVICE = "192.168.1.10"


def test_each_row_is_oriented_around_the_device_ip() -> None:
    def row(src: str, dst: str) -> Row:
        return ("alice", "2026-11-21 10:00", src, dst, 1.0, 9.0)

    rows = [
        row(DEVICE, "8.8.8.8"),
        row(DEVICE, "1.1.1.1"),
        row("93.184.216.34", "192.168.1.99"),
        row(DEVICE, "192.168.1.1"),
        row("10.0.0.2", "10.0.0.1"),
        row("fd12::5", "2606:4700::1111"),
        row("8.8.4.4", "1.1.1.1"),
    ]
    got = [
        (r["local_ip"], r["remote_ip"], r["local_is_private"], r["remote_is_private"], r["direction"])
        for r in silver_rows(rows)
    ]
    assert got == [
        (DEVICE, "8.8.8.8", True, False, "outbound"),
        (DEVICE, "1.1.1.1", True, False, "outbound"),
        ("192.168.1.99", "93.184.216.34", True, False, "inbound"),
        (DEVICE, "192.168.1.1", True, True, "internal"),
        ("10.0.0.2", "10.0.0.1", True, True, "internal"),  # device not an end: text-larger
        ("fd12::5", "2606:4700::1111", True, False, "inbound"),
        (None, "8.8.4.4", False, False, "unknown"),  # remote = text-larger end
    ]
    assert {r["device_ip"] for r in silver_rows(rows)} == {DEVICE}


def test_device_ip_ties_go_to_the_smallest_address_text() -> None:
    rows = [
        ("alice", "2026-11-21 10:00", "192.168.1.9", "8.8.8.8", 1.0, 2.0),
        ("alice", "2026-11-21 10:00", DEVICE, "8.8.8.8", 1.0, 2.0),
    ]
    got = [(r["device_ip"], r["local_ip"], r["direction"]) for r in silver_rows(rows)]
    # "192.168.1.10" < "192.168.1.9" as text.
    assert got == [(DEVICE, "192.168.1.9", "inbound"), (DEVICE, DEVICE, "outbound")]


def test_loopback_and_link_local_count_as_private() -> None:
    rows = [
        ("alice", "2026-11-21 10:00", "127.0.0.2", "127.0.0.1", 1.0, 2.0),
        ("alice", "2026-11-21 10:00", "fe80::1", "127.0.0.2", 1.0, 2.0),
    ]
    assert [r["direction"] for r in silver_rows(rows)] == ["internal", "internal"]


users = st.sampled_from(["alice", "bob"])
stamps = st.sampled_from(["2026-11-21 10:00", "2026-11-21 10:01", "2026-11-21 10:02"])
ips = st.sampled_from(["192.168.1.2", "10.0.0.1", "8.8.8.8", "1.1.1.1"])
kbs = st.sampled_from([1.0, 2.0])
random_rows = st.lists(st.tuples(users, stamps, ips, ips, kbs, kbs), max_size=40)


@settings(max_examples=60, deadline=None)
@given(random_rows)
def test_every_bronze_row_is_accounted_for(rows: list[Row]) -> None:
    result = to_silver(bronze_table(rows), {"bob": "America/New_York"})
    silver = pl.from_arrow(result.table)
    assert result.input_rows == len(rows) == silver.height + result.exact_duplicates
    assert result.restart_replays == silver["is_restart_replay"].sum()
    assert silver.select("source_file", "line_number").is_unique().all()
    assert set(silver["direction"]) <= {"inbound", "outbound", "internal", "unknown"}


ORDERED = pl.DataFrame({"d": [1, 1, 1, 2, 2], "f": ["a", "a", "b", "a", "a"], "n": [1, 2, 1, 1, 2]})


@pytest.mark.parametrize(
    ("frame", "columns", "expected"),
    [
        (ORDERED, ["d", "f", "n"], True),
        (ORDERED, ["f", "n"], False),  # file "a" comes back after "b"
        (ORDERED.reverse(), ["d", "f", "n"], False),
        (ORDERED.with_columns(n=pl.Series([1, 1, 1, 1, 2])), ["d", "f", "n"], False),  # a repeated line
        (ORDERED.with_columns(f=pl.Series(["a", None, "b", "a", "a"])), ["d", "f", "n"], False),
        (ORDERED.head(0), ["d", "f", "n"], True),
        (pl.DataFrame({"n": [1, 2, 3]}), ["n"], True),
    ],
)
def test_sorted_by_checks_strict_order_run_by_run(frame: pl.DataFrame, columns: list[str], expected: bool) -> None:
    assert sorted_by(frame, columns) is expected


def _hour_of_rows(day: str, minutes: Sequence[str], kb: float) -> list[Row]:
    return [("alice", f"{day} {m}", "8.8.8.8", "192.168.1.2", kb, kb) for m in minutes]


def _kb_per_utc_hour(rows: Sequence[Row]) -> dict[dt.datetime, float]:
    from packetx_lakehouse.lib.transform.gold import hourly_bandwidth

    hourly = hourly_bandwidth(to_silver(bronze_table(rows), {"alice": "Europe/Berlin"}).table).to_pylist()
    totals: dict[dt.datetime, float] = {}
    for row in hourly:
        totals[row["hour_utc"]] = totals.get(row["hour_utc"], 0) + row["kb"]
    return totals


def test_a_fall_back_hour_is_split_by_line_order_first_pass_earlier() -> None:
    """Europe/Berlin, 2026-10-25: 03:00 CEST -> 02:00 CET, so local 02:00-02:59 is written twice."""
    day = "2026-10-25"
    passes = [f"02:{m:02d}" for m in range(0, 60, 5)]
    rows = [*_hour_of_rows(day, ["01:55"], 1), *_hour_of_rows(day, passes, 10),  # summer time
            *_hour_of_rows(day, passes, 100), *_hour_of_rows(day, ["03:00", "03:05"], 1000)]  # standard time
    silver = to_silver(bronze_table(rows), {"alice": "Europe/Berlin"}).table
    by_line = {r["line_number"]: r["ts_utc"] for r in silver.to_pylist()}
    assert by_line[2] == utc(2026, 10, 24, 23, 55)
    assert [by_line[n] for n in range(3, 15)] == [utc(2026, 10, 25, 0, m) for m in range(0, 60, 5)]
    assert [by_line[n] for n in range(15, 27)] == [utc(2026, 10, 25, 1, m) for m in range(0, 60, 5)]
    assert [by_line[27], by_line[28]] == [utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 5)]
    assert _kb_per_utc_hour(rows) == {utc(2026, 10, 24, 23): 1, utc(2026, 10, 25, 0): 120,
                                      utc(2026, 10, 25, 1): 1200, utc(2026, 10, 25, 2): 2000}


def test_a_fall_back_hour_seen_once_takes_the_earlier_instant_and_other_users_are_unaffected() -> None:
    day = "2026-10-25"
    rows = [*_hour_of_rows(day, ["02:10", "02:20"], 5),
            ("bob", f"{day} 02:30", "8.8.8.8", "192.168.1.3", 7, 7), ("bob", f"{day} 02:10", "8.8.8.8", "192.168.1.3", 7, 7)]
    silver = to_silver(bronze_table(rows), {"alice": "Europe/Berlin", "bob": "Europe/Berlin"}).table.to_pylist()
    got = {(r["user"], r["line_number"]): r["ts_utc"] for r in silver}
    assert got == {("alice", 2): utc(2026, 10, 25, 0, 10), ("alice", 3): utc(2026, 10, 25, 0, 20),
                   # bob's clock stepped back: his 02:10 after 02:30 is the second pass
                   ("bob", 2): utc(2026, 10, 25, 0, 30), ("bob", 3): utc(2026, 10, 25, 1, 10)}


def test_a_spring_forward_day_has_a_23_hour_utc_day_and_no_lost_kb() -> None:
    """Europe/Berlin, 2026-03-29: 02:00 CET -> 03:00 CEST; local 02:xx does not exist."""
    day = "2026-03-29"
    rows = [*_hour_of_rows(day, ["00:30"], 1), *_hour_of_rows(day, ["01:30"], 10),
            *_hour_of_rows(day, ["03:00", "03:30"], 100), *_hour_of_rows(day, ["04:15"], 1000)]
    assert _kb_per_utc_hour(rows) == {utc(2026, 3, 28, 23): 1, utc(2026, 3, 29, 0): 10,
                                      utc(2026, 3, 29, 1): 200, utc(2026, 3, 29, 2): 1000}


def test_the_same_value_in_both_passes_of_a_fall_back_minute_is_not_a_duplicate_but_a_file_copy_is() -> None:
    day = "2026-10-25"
    rows = _hour_of_rows(day, ["02:30", "02:40", "02:30", "02:40"], 5)  # identical values, both passes
    copy = [row for row in bronze_table(rows).to_pylist()]
    for row in copy:
        row["source_file"] += ".gz"  # the device's compressed upload of the same file
    bronze = pa.concat_tables([bronze_table(rows), pa.Table.from_pylist(copy, schema=BRONZE_PACKETS.schema)])
    result = to_silver(bronze, {"alice": "Europe/Berlin"})
    assert result.exact_duplicates == 4
    assert sorted(result.table["ts_utc"].to_pylist()) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 40),
                                                          utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 1, 40)]
