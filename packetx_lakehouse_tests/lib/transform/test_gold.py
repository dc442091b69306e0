import datetime as dt
import random
from collections.abc import Sequence

import polars as pl
import pyarrow as pa
import pytest

from packetx_lakehouse.lib.schemas import (
    GOLD_DAILY_IPS,
    GOLD_DAILY_USER_BANDWIDTH,
    GOLD_HOURLY_BANDWIDTH,
    GOLD_PACKETS_FACT,
    GOLD_TOP_EXTERNAL_HOSTS,
    GOLD_USER_HOURLY,
    GOLD_USER_IP_HOURLY,
    SILVER_PACKETS,
    TableDef,
)
from packetx_lakehouse.lib.transform import checks, gold
from packetx_lakehouse.lib.transform.silver import to_silver
from packetx_lakehouse_tests.lib.transform.test_silver import (
    Row,
    bronze_table,
    minute,
    utc,
)

DEVICE = "192.168.1.2"  # the device of test_silver's PAIRS


def silver_of(rows: Sequence[Row]) -> pa.Table:
    return to_silver(bronze_table(rows), {}).table


def table_of(rows: Sequence[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=schema)


# A day with all four directions, two public hosts, a multicast address and a restart replay.
DAY = dt.date(2026, 11, 21)
DAY_ROWS: list[Row] = [
    *minute("2026-11-21 10:00", [1, 2, 3]),  # 8.8.8.8 out, 1.1.1.1 out, 10.0.0.1 internal
    *minute("2026-11-21 10:01", [4, 5, None]),
    *minute("2026-11-21 10:02", [4, 5, 3]),  # restart replay: excluded from gold
    ("alice", "2026-11-21 11:30", "93.184.216.34", "192.168.1.77", 10, 37),  # inbound
    ("alice", "2026-11-21 11:30", "8.8.4.4", "1.1.1.1", 7, 37),  # unknown
    ("alice", "2026-11-21 11:30", DEVICE, "224.0.0.251", 20, 37),  # outbound, multicast
]


@pytest.fixture(scope="module")
def day_silver() -> pa.Table:
    return silver_of(DAY_ROWS)


def test_daily_totals_equal_silver_non_replay_totals(day_silver: pa.Table) -> None:
    silver = pl.from_arrow(day_silver)
    live_kb = silver.filter(~pl.col("is_restart_replay"))["kb"].sum()
    daily = gold.daily_user_bandwidth(day_silver)
    assert daily.schema == GOLD_DAILY_USER_BANDWIDTH.schema
    assert daily.to_pylist() == [
        {
            "log_date": DAY,
            "user": "alice",
            "total_kb": live_kb,
            "inbound_kb": 10.0,
            "outbound_kb": 1 + 2 + 4 + 5 + 20.0,
            "internal_kb": 3.0,
            "unknown_kb": 7.0,
            "distinct_remote_hosts": 6,
            "peak_minute_utc": utc(2026, 11, 21, 11, 30),
            "peak_minute_kb": 37.0,
            "rows": 8,
        }
    ]
    assert live_kb == 52.0
    assert gold.hourly_bandwidth(day_silver).to_pandas()["kb"].sum() == live_kb


@pytest.mark.parametrize(
    ("build", "table_def"),
    [
        (gold.hourly_bandwidth, GOLD_HOURLY_BANDWIDTH),
        (gold.daily_user_bandwidth, GOLD_DAILY_USER_BANDWIDTH),
        (gold.top_external_hosts, GOLD_TOP_EXTERNAL_HOSTS),
        (gold.user_ip_hourly, GOLD_USER_IP_HOURLY),
        (gold.daily_ips, GOLD_DAILY_IPS),
        (gold.packets_fact, GOLD_PACKETS_FACT),
        (gold.user_hourly, GOLD_USER_HOURLY),
    ],
)
def test_an_empty_day_gives_empty_tables_of_the_exact_schema(build, table_def: TableDef) -> None:
    assert build(SILVER_PACKETS.schema.empty_table()) == table_def.schema.empty_table()


def test_hourly_bandwidth_rows(day_silver: pa.Table) -> None:
    hourly = gold.hourly_bandwidth(day_silver)
    assert hourly.schema == GOLD_HOURLY_BANDWIDTH.schema
    got = [
        (r["hour_utc"].hour, r["remote_ip"], r["direction"], r["kb"], r["minutes"])
        for r in hourly.to_pylist()
    ]
    assert got == [
        (10, "1.1.1.1", "outbound", 7.0, 2),
        (10, "10.0.0.1", "internal", 3.0, 1),
        (10, "8.8.8.8", "outbound", 5.0, 2),
        (11, "224.0.0.251", "outbound", 20.0, 1),
        (11, "8.8.4.4", "unknown", 7.0, 1),
        (11, "93.184.216.34", "inbound", 10.0, 1),
    ]


def test_top_external_hosts_ranks_public_remotes_only(day_silver: pa.Table) -> None:
    top = gold.top_external_hosts(day_silver, n=3)
    assert top.schema == GOLD_TOP_EXTERNAL_HOSTS.schema
    public_kb = 7 + 5 + 10 + 7  # multicast and private remotes are not external hosts
    got = [(r["rank"], r["remote_ip"], r["kb"], r["share"]) for r in top.to_pylist()]
    assert got == [
        (1, "93.184.216.34", 10.0, 10 / public_kb),
        (2, "1.1.1.1", 7.0, 7 / public_kb),  # ties with 8.8.4.4: smaller text first
        (3, "8.8.4.4", 7.0, 7 / public_kb),
    ]


def hourly_window(kb_by_day: dict[dt.date, Sequence[float]], user: str = "alice") -> pa.Table:
    """hourly_bandwidth rows: per day, the KB of hours 0, 1, ... (split over two remotes)."""
    rows = [
        {
            "log_date": day,
            "user": user,
            "hour_utc": dt.datetime.combine(day, dt.time(hour), dt.timezone.utc),
            "remote_ip": remote,
            "direction": "outbound",
            "kb": kb / 2,
            "minutes": 60,
        }
        for day, kbs in kb_by_day.items()
        for hour, kb in enumerate(kbs)
        for remote in ("1.1.1.1", "8.8.8.8")
    ]
    return table_of(rows, GOLD_HOURLY_BANDWIDTH.schema)


BASELINE = {DAY - dt.timedelta(days=d): [100.0 + h % 5 for h in range(24)] for d in range(1, 8)}


def test_anomalies_flag_a_spike() -> None:
    today = [100.0 + h % 5 for h in range(24)]
    today[13] = 1000.0
    found = gold.traffic_anomalies(hourly_window({**BASELINE, DAY: today}), DAY).to_pylist()
    # median 102, MAD 1 (deviations 2,1,0,1,2 over hours), z = 0.6745 * 898.
    assert found == [
        {
            "log_date": DAY,
            "user": "alice",
            "hour_utc": utc(2026, 11, 21, 13),
            "kb": 1000.0,
            "baseline_median_kb": 102.0,
            "baseline_mad_kb": 1.0,
            "robust_z": pytest.approx(0.6745 * 898),
            "baseline_hours": 168,
        }
    ]


def test_anomalies_ignore_flat_traffic_and_days_outside_the_window() -> None:
    old_spike = {DAY - dt.timedelta(days=9): [5000.0] * 24}
    window = hourly_window({**old_spike, **BASELINE, DAY: BASELINE[DAY - dt.timedelta(days=1)]})
    assert gold.traffic_anomalies(window, DAY).num_rows == 0


def test_anomalies_need_a_large_enough_baseline() -> None:
    window = hourly_window({DAY - dt.timedelta(days=1): [100.0, 101.0], DAY: [1000.0]})
    assert gold.traffic_anomalies(window, DAY).num_rows == 0
    assert gold.traffic_anomalies(window, DAY, min_baseline_hours=2).num_rows == 1


def test_user_ip_hourly_picks_the_busiest_private_ip_and_breaks_ties_by_text() -> None:
    rows = [
        ("alice", "2026-11-21 10:00", "192.168.1.9", "8.8.8.8", 1, 2),
        ("alice", "2026-11-21 10:01", "192.168.1.10", "8.8.8.8", 1, 2),  # tie at 10h
        ("alice", "2026-11-21 11:00", "192.168.1.9", "8.8.8.8", 1, 3),
        ("alice", "2026-11-21 11:00", "192.168.1.9", "1.1.1.1", 1, 3),
        ("alice", "2026-11-21 11:00", "192.168.1.10", "1.1.1.1", 1, 3),
    ]
    hourly = gold.user_ip_hourly(silver_of(rows))
    assert hourly.schema == GOLD_USER_IP_HOURLY.schema
    got = [(r["hour_utc"].hour, r["local_ip"], r["rows"]) for r in hourly.to_pylist()]
    assert got == [(10, "192.168.1.10", 1), (11, "192.168.1.9", 2)]


# A week in which alice's device moves from .10 to .20 on the fourth day at 12:00 UTC.
WEEK = [dt.date(2026, 11, 16) + dt.timedelta(days=d) for d in range(7)]
CHANGE = utc(2026, 11, 19, 12)


def ip_hours(*rows: tuple[dt.date, str, dt.datetime, str, int]) -> pa.Table:
    """user_ip_hourly rows from (log_date, user, hour_utc, local_ip, rows) tuples."""
    names = GOLD_USER_IP_HOURLY.schema.names
    return table_of([dict(zip(names, row, strict=True)) for row in rows], GOLD_USER_IP_HOURLY.schema)


def week_ip_hourly() -> pa.Table:
    alice = [
        (day, "alice", hour_utc, "192.168.1.10" if hour_utc < CHANGE else "192.168.1.20", 5)
        for day in WEEK
        for hour_utc in (dt.datetime.combine(day, dt.time(h), dt.timezone.utc) for h in range(0, 24, 6))
    ]
    return ip_hours(*alice, (WEEK[0], "bob", utc(2026, 11, 16, 8), "10.0.0.7", 1))


def test_users_dim_versions_a_mid_week_ip_change() -> None:
    dim = gold.users_dim(week_ip_hourly())
    got = [
        (r["user"], r["version"], r["local_ip"], r["valid_from"], r["valid_to"], r["is_current"])
        for r in dim.to_pylist()
    ]
    assert got == [
        ("alice", 1, "192.168.1.10", utc(2026, 11, 16), CHANGE, False),
        ("alice", 2, "192.168.1.20", CHANGE, None, True),
        ("bob", 1, "10.0.0.7", utc(2026, 11, 16, 8), None, True),
    ]
    assert checks.scd2_problems(dim) == []
    assert dim["user_id"].to_pylist() == gold.stable_key(["alice", "alice", "bob"])


def test_users_dim_is_identical_whatever_order_days_are_loaded_in() -> None:
    hourly = week_ip_hourly()
    shuffled = hourly.take(random.Random(7).sample(range(hourly.num_rows), hourly.num_rows))
    assert gold.users_dim(shuffled).equals(gold.users_dim(hourly))


def test_users_dim_breaks_a_tie_for_one_hour_across_log_dates_by_ip_text() -> None:
    hour = utc(2026, 11, 21, 18)
    rows = [
        (dt.date(2026, 11, 21), "alice", hour, "10.0.0.9", 3),
        (dt.date(2026, 11, 22), "alice", hour, "10.0.0.10", 3),
    ]
    for order in (rows, rows[::-1]):
        assert gold.users_dim(ip_hours(*order))["local_ip"].to_pylist() == ["10.0.0.10"]


def test_facts_resolve_to_the_user_version_valid_at_their_time() -> None:
    rows = [
        ("alice", "2026-11-18 09:00", "192.168.1.10", "8.8.8.8", 1, 1),
        ("alice", "2026-11-20 09:00", "192.168.1.20", "8.8.8.8", 2, 2),
    ]
    days = [silver_of(rows[:1]), silver_of(rows[1:])]
    # Load the later day first: point-in-time references must not care.
    dim = gold.users_dim(pa.concat_tables([gold.user_ip_hourly(day) for day in reversed(days)]))
    fact = pa.concat_tables([gold.packets_fact(day) for day in days])
    assert fact.schema == GOLD_PACKETS_FACT.schema
    key_of_ip = {r["local_ip"]: r["user_key"] for r in dim.to_pylist()}
    resolved = gold.resolve_user_versions(fact, dim).to_pylist()
    assert [(r["log_date"], r["hour_utc"], r["user_key"]) for r in resolved] == [
        (dt.date(2026, 11, 18), utc(2026, 11, 18, 9), key_of_ip["192.168.1.10"]),
        (dt.date(2026, 11, 20), utc(2026, 11, 20, 9), key_of_ip["192.168.1.20"]),
    ]


def fact_cells(fact: pa.Table) -> list[tuple]:
    """(hour, local IP, remote IP, direction, kb, minutes, rows) per fact row, keys read back to text."""
    ips = {r["ip_key"]: r["ip"] for r in gold.ip_dim(["192.168.1.2", "192.168.1.3", "8.8.8.8", "1.1.1.1",
                                                       "10.0.0.1"]).to_pylist()}
    directions = {r["direction_key"]: r["direction"] for r in gold.direction_dim().to_pylist()}
    return sorted((r["hour_utc"].hour, ips.get(r["local_ip_key"]), ips[r["remote_ip_key"]],
                   directions[r["direction_key"]], r["kb"], r["minutes"], r["rows"]) for r in fact.to_pylist())


def test_the_fact_sums_an_hours_minutes_into_one_row_per_cell() -> None:
    rows = [
        *minute("2026-11-21 10:00", [1.25, 2, None]),
        *minute("2026-11-21 10:59", [3.5, None, 4]),
        *minute("2026-11-21 11:00", [0.001, None, None]),
        ("alice", "2026-11-21 10:30", "8.8.8.8", DEVICE, 1.25, 2.0),  # the pair again at 10:30
        ("alice", "2026-11-21 10:30", "8.8.8.8", DEVICE, 0.75, 2.0),  # and twice in that minute
    ]
    fact = gold.packets_fact(silver_of(rows))
    assert fact.schema == GOLD_PACKETS_FACT.schema
    assert fact_cells(fact) == [
        (10, DEVICE, "1.1.1.1", "outbound", 2.0, 1, 1),
        (10, DEVICE, "10.0.0.1", "internal", 4.0, 1, 1),
        (10, DEVICE, "8.8.8.8", "outbound", 1.25 + 3.5 + 1.25 + 0.75, 3, 4),  # 4 rows in 3 distinct minutes
        (11, DEVICE, "8.8.8.8", "outbound", 0.001, 1, 1),
    ]
    assert sorted(fact["date_key"].to_pylist()) == [2026112110] * 3 + [2026112111]


def test_an_ip_change_within_an_hour_keeps_two_fact_rows() -> None:
    rows = [
        ("alice", "2026-11-21 10:10", "8.8.8.8", DEVICE, 1, 1),
        ("alice", "2026-11-21 10:40", "8.8.8.8", "192.168.1.3", 2, 2),  # DHCP gave a new address
        ("alice", "2026-11-21 10:50", "8.8.8.8", "192.168.1.3", 3, 3),
    ]
    silver = silver_of(rows)
    fact = gold.packets_fact(silver)
    assert [cell[1:3] + cell[4:] for cell in fact_cells(fact)] == [
        (DEVICE, "8.8.8.8", 1.0, 1, 1),
        ("192.168.1.3", "8.8.8.8", 5.0, 2, 2),
    ]
    # Both rows resolve to the one version users_dim holds for the hour (its busiest address).
    dim = gold.users_dim(gold.user_ip_hourly(silver))
    assert dim["local_ip"].to_pylist() == ["192.168.1.3"]
    assert gold.resolve_user_versions(fact, dim)["user_key"].to_pylist() == dim["user_key"].to_pylist() * 2


def test_user_hourly_holds_each_hours_minutes_as_a_mask_and_sums_to_the_fact() -> None:
    rows = [
        *minute("2026-11-21 10:00", [1.25, 2, None]),
        *minute("2026-11-21 10:59", [3.5, None, 4]),
        ("alice", "2026-11-21 10:30", "8.8.8.8", DEVICE, 0.75, 2.0),
        ("alice", "2026-11-21 10:30", "8.8.8.8", DEVICE, 0.25, 2.0),  # the pair twice in one minute
        *minute("2026-11-21 11:07", [0.001, None, None]),
        *minute("2026-11-21 11:08", [3, 3, 3]),
        *minute("2026-11-21 11:09", [3, 3, 3]),  # a restart's replay of every pair: not counted
    ]
    silver = silver_of(rows)
    assert pl.from_arrow(silver).filter(pl.col("is_restart_replay")).height == 3
    hourly = gold.user_hourly(silver)
    assert hourly.schema == GOLD_USER_HOURLY.schema
    got = [(r["hour_utc"].hour, r["kb"], r["rows"], r["minutes"], r["minute_mask"], r["remote_hosts"],
            r["first_minute_utc"].minute, r["last_minute_utc"].minute) for r in hourly.to_pylist()]
    assert got == [
        (10, 1.25 + 2 + 3.5 + 4 + 0.75 + 0.25, 6, 3, (1 << 0) | (1 << 30) | (1 << 59), 3, 0, 59),
        (11, 9.001, 4, 2, (1 << 7) | (1 << 8), 3, 7, 8),
    ]
    # The same hours from the fact's cells: the builder needs nothing finer.
    assert gold.user_hourly(gold.hourly_cells(silver)) == hourly
    fact = gold.packets_fact(silver)
    assert sum(hourly["kb"].to_pylist()) == pytest.approx(sum(fact["kb"].to_pylist()))
    assert sum(hourly["rows"].to_pylist()) == sum(fact["rows"].to_pylist()) == checks.live_rows(silver)


def test_the_fact_leaves_restart_replays_out_and_conserves_kb_and_rows(day_silver: pa.Table) -> None:
    fact = gold.packets_fact(day_silver)
    silver = pl.from_arrow(day_silver).filter(~pl.col("is_restart_replay"))
    assert fact.num_rows == 6 and silver.height == 8  # two minutes of 8.8.8.8 and of 1.1.1.1 share cells
    assert sum(fact["kb"].to_pylist()) == silver["kb"].sum() == 52.0
    assert sum(fact["rows"].to_pylist()) == silver.height == checks.live_rows(day_silver)
    built = gold.build_daily_tables(day_silver)
    assert checks.kb_conservation(checks.live_kb(day_silver), built)[1] == []
    assert checks.rows_conservation(checks.live_rows(day_silver), built)[1] == []


def test_conservation_checks_catch_an_altered_fact_row(day_silver: pa.Table) -> None:
    built = gold.build_daily_tables(day_silver)
    fact = built[GOLD_PACKETS_FACT]
    kb, rows = fact["kb"].to_pylist(), fact["rows"].to_pylist()
    altered_kb = {**built, GOLD_PACKETS_FACT: with_column(fact, "kb", [kb[0] + 0.5, *kb[1:]])}
    assert checks.kb_conservation(checks.live_kb(day_silver), altered_kb)[1] == [
        "packets_fact: 52.500 KB vs silver 52.000 KB"]
    dropped = {**built, GOLD_PACKETS_FACT: fact.slice(1)}
    assert checks.rows_conservation(checks.live_rows(day_silver), dropped)[1] == [
        f"packets_fact: {8 - rows[0]} rows vs silver 8"]


def test_packets_fact_keys_match_the_dimensions(day_silver: pa.Table) -> None:
    fact = gold.packets_fact(day_silver)
    dims = (
        gold.users_dim(gold.user_ip_hourly(day_silver)),
        gold.ip_dim(gold.daily_ips(day_silver)["ip"]),
        gold.date_dim(DAY, DAY),
        gold.direction_dim(),
    )
    assert set(fact["date_key"].to_pylist()) == {2026112110, 2026112111}
    assert checks.orphan_facts(fact, *dims) == []
    assert checks.duplicate_keys(fact, GOLD_PACKETS_FACT.key) == []


def row_grain_fact(silver: pa.Table) -> pa.Table:
    """The fact as versions before the hourly grain wrote it: one row per live silver row."""
    live = pl.from_arrow(silver).filter(~pl.col("is_restart_replay"))
    return live.select(
        "log_date",
        date_key=pl.col("ts_utc").dt.strftime("%Y%m%d%H").cast(pl.Int64),
        user_id=pl.Series(gold.stable_key(live["user"].to_list()), dtype=pl.Int64),
        local_ip_key=pl.Series([None if ip is None else gold.stable_key([ip])[0] for ip in live["local_ip"]],
                               dtype=pl.Int64),
        remote_ip_key=pl.Series(gold.stable_key(live["remote_ip"].to_list()), dtype=pl.Int64),
        direction_key=pl.col("direction").replace_strict(gold.direction_dim().to_pydict()["direction"],
                                                         list(range(1, 5)), return_dtype=pl.Int64),
        ts_utc="ts_utc", kb="kb", source_file="source_file", line_number="line_number",
    ).to_arrow()


def test_a_row_grain_fact_upgrades_to_what_silver_gives(day_silver: pa.Table) -> None:
    assert gold.hourly_fact_from_row_grain(row_grain_fact(day_silver)) == gold.packets_fact(day_silver)


def test_daily_ips_lists_both_ends_of_every_counted_row(day_silver: pa.Table) -> None:
    ips = gold.daily_ips(day_silver)
    assert ips.schema == GOLD_DAILY_IPS.schema
    assert set(ips["log_date"].to_pylist()) == {DAY}
    assert ips["ip"].to_pylist() == [
        "1.1.1.1", "10.0.0.1", DEVICE, "192.168.1.77", "224.0.0.251", "8.8.4.4", "8.8.8.8", "93.184.216.34",
    ]  # fmt: skip


def test_ip_dim_classifies_and_is_deterministic_whatever_the_load_order() -> None:
    ips = ["8.8.8.8", "10.0.0.1", "127.0.0.1", "fe80::1", "224.0.0.251", "fd00::2", None]
    once = gold.ip_dim(ips)
    assert [(r["ip"], r["ip_version"], r["is_private"], r["scope"]) for r in once.to_pylist()] == [
        ("10.0.0.1", 4, True, "private"),
        ("127.0.0.1", 4, True, "loopback"),
        ("224.0.0.251", 4, False, "multicast"),
        ("8.8.8.8", 4, False, "public"),
        ("fd00::2", 6, True, "private"),
        ("fe80::1", 6, True, "link_local"),
    ]
    assert once["ip_key"].to_pylist() == gold.stable_key(once["ip"].to_pylist())
    merged = gold.ip_dim(pa.array(ips[3:]), existing=gold.ip_dim(ips[:4]))
    assert merged.equals(once)
    assert gold.ip_dim(ips[::-1]).equals(once)


def test_date_dim_covers_every_hour() -> None:
    dim = gold.date_dim(dt.date(2026, 11, 21), dt.date(2026, 11, 22))
    assert dim.num_rows == 48
    first, last = dim.slice(0, 1).to_pylist()[0], dim.slice(47, 1).to_pylist()[0]
    assert first == {
        "date_key": 2026112100,
        "hour_start_utc": utc(2026, 11, 21),
        "date": dt.date(2026, 11, 21),
        "hour": 0,
        "day_of_week": 6,
        "day_name": "Saturday",
        "month": 11,
        "year": 2026,
        "is_weekend": True,
    }
    assert (last["date_key"], last["day_name"], last["is_weekend"]) == (2026112223, "Sunday", True)
    assert dim.equals(gold.date_dim(dt.date(2026, 11, 21), dt.date(2026, 11, 22)))


def test_direction_dim_is_static() -> None:
    assert gold.direction_dim().select(["direction_key", "direction"]).to_pylist() == [
        {"direction_key": 1, "direction": "inbound"},
        {"direction_key": 2, "direction": "outbound"},
        {"direction_key": 3, "direction": "internal"},
        {"direction_key": 4, "direction": "unknown"},
    ]


def with_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    field = table.schema.field(index)
    return table.set_column(index, field, pa.array(values, field.type))


def test_scd2_problems_detects_overlaps_and_two_current_rows() -> None:
    dim = gold.users_dim(week_ip_hourly())  # alice v1, alice v2, bob v1
    overlapping = with_column(dim, "valid_to", [utc(2026, 11, 20), None, None])
    assert checks.scd2_problems(overlapping) == ["user 'alice' version 1: overlaps the next version"]
    two_current = with_column(
        with_column(dim, "valid_to", [None, None, None]), "is_current", [True, True, True]
    )
    assert checks.scd2_problems(two_current) == [
        "user 'alice': 2 current rows (expected 1)",
        "user 'alice' version 1: overlaps the next version",
    ]


def test_duplicate_keys_and_bad_numbers_are_reported() -> None:
    table = pa.table({"k": [1, 1, 2], "kb": [1.0, -1.0, float("nan")]})
    assert checks.duplicate_keys(table, ["k"]) == [
        "1 value(s) of key ('k',) repeat, e.g. {'k': 1, 'len': 2}"
    ]
    assert checks.negative_or_nan(table, ["kb"]) == ["kb: 1 negative, 1 NaN, 0 null"]
    assert checks.negative_or_nan(table.slice(0, 1), ["kb"]) == []


@pytest.mark.parametrize(
    ("files", "lines", "expected"),
    [
        (["a", "a", "b"], [1, 2, 1], []),  # sorted by the key: the one-pass path
        (["b", "b", "a"], [1, 2, 1], []),  # each file's lines in order, files in any order: one pass
        (["a", "a", "b"], [1, 1, 1], ["1 value(s) of key ('f', 'n') repeat, e.g. {'f': 'a', 'n': 1, 'len': 2}"]),
        (["b", "a", "b"], [1, 1, 1], ["1 value(s) of key ('f', 'n') repeat, e.g. {'f': 'b', 'n': 1, 'len': 2}"]),
        (["b", "a", None], [1, 1, 1], []),  # unsorted or null: the group-by path
    ],
)
def test_duplicate_keys_sorted_and_unsorted(files: list[str | None], lines: list[int], expected: list[str]) -> None:
    assert checks.duplicate_keys(pa.table({"f": files, "n": lines}), ["f", "n"]) == expected


def test_orphan_facts_are_reported(day_silver: pa.Table) -> None:
    fact = gold.packets_fact(day_silver)
    early = with_column(fact, "hour_utc", [utc(2026, 11, 20)] + fact["hour_utc"].to_pylist()[1:])
    problems = checks.orphan_facts(
        early,
        gold.users_dim(gold.user_ip_hourly(day_silver)),
        gold.ip_dim(["8.8.8.8"]),
        gold.date_dim(DAY, DAY),
        gold.direction_dim(),
    )
    assert problems == [
        "1 fact(s) with no matching user version (user_id, hour_utc)",
        f"{fact.num_rows - 1} fact(s) with no matching local_ip_key",
        f"{fact.num_rows - 1} fact(s) with no matching remote_ip_key",  # one cell with 8.8.8.8
    ]
