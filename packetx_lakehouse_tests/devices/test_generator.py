"""The generator writes files that follow the PacketX contract byte for byte, deterministically."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import ipaddress
from collections import defaultdict
from pathlib import Path

import pytest

from packetx_lakehouse.devices.generator import (
    GeneratorOptions,
    Outage,
    generate,
    generate_day,
    local_ip_for,
    user_names,
)
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.reader import INCOMPLETE_LAST_LINE, read_traffic_log
from packetx_lakehouse.lib.schemas import CSV_HEADER

DAY = dt.date(2026, 11, 21)
FULL_DAY = GeneratorOptions(minutes_per_day=1440, pairs_per_minute=20)


def data_rows(data: bytes) -> list[list[str]]:
    lines = data.decode().split("\n")
    assert lines[0] == CSV_HEADER and lines[-1] == ""
    return [line.split(",") for line in lines[1:-1]]


def blocks(rows: list[list[str]]) -> list[tuple[str, dict[tuple[str, str], str]]]:
    """The file's minute blocks in order: (time stamp, {(source, destination): KB text})."""
    result: list[tuple[str, dict[tuple[str, str], str]]] = []
    for _, time_stamp, source, destination, kb, _ in rows:
        if not result or result[-1][0] != time_stamp:
            result.append((time_stamp, {}))
        result[-1][1][(source, destination)] = kb
    return result


def test_same_seed_gives_identical_bytes_and_anything_else_differs() -> None:
    first = generate_day("alice", DAY, seed=42)

    assert generate_day("alice", DAY, seed=42) == first
    assert generate_day("alice", DAY, seed=43) != first
    assert generate_day("carol", DAY, seed=42) != first
    assert generate_day("alice", DAY + dt.timedelta(days=1), seed=42) != first


def test_generate_writes_identical_files_for_the_same_seed(tmp_path: Path) -> None:
    options = GeneratorOptions(minutes_per_day=10, restarts=1, bad_lines=3)
    first = generate(tmp_path / "a", users=2, days=2, start=DAY, seed=1, options=options, gzip_files=True)
    second = generate(tmp_path / "b", users=2, days=2, start=DAY, seed=1, options=options, gzip_files=True)

    assert [p.name for p in first] == [
        "alice-2026-11-21.csv.gz",
        "alice-2026-11-22.csv.gz",
        "bob-smith-2026-11-21.csv.gz",
        "bob-smith-2026-11-22.csv.gz",
    ]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert gzip.decompress(first[0].read_bytes()) == generate_day(
        "alice", DAY, seed=1, options=options, local_ip=local_ip_for("alice", DAY)
    )


def test_byte_level_format_matches_the_contract() -> None:
    data = generate_day("alice", DAY, seed=5, options=FULL_DAY)
    rows = data_rows(data)

    assert data.startswith(CSV_HEADER.encode() + b"\n") and data.endswith(b"\n")
    assert b"\r" not in data and data.count(CSV_HEADER.encode()) == 1
    assert all(len(row) == 6 and row[0] == "alice" for row in rows)
    for _, time_stamp, source, destination, kb, total in rows:
        assert dt.datetime.strptime(time_stamp, "%Y-%m-%d %H:%M").date() == DAY
        assert source > destination  # tshark orders the pair as strings, not by direction
        assert ipaddress.ip_address(source).version == ipaddress.ip_address(destination).version == 4
        for number in (kb, total):
            assert format(float(number), ".6g") == number
    # A backup or update minute (rare: about twice in a day with every minute active) brings
    # PacketX's scientific notation to the pair and to the minute's total.
    assert 1 <= sum("e+" in row[4] for row in rows) <= 5
    assert 0 < sum("e+" in row[5] for row in rows) / len(rows) < 0.01


def test_one_block_per_minute_sharing_the_total() -> None:
    rows = data_rows(generate_day("alice", DAY, seed=5, options=GeneratorOptions(minutes_per_day=60)))
    by_minute: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        by_minute[row[1]].append(row)

    assert [time_stamp for time_stamp, _ in blocks(rows)] == sorted(by_minute)  # contiguous and in order
    assert len(by_minute) == 60
    for block in by_minute.values():
        assert 18 <= len(block) <= 22
        assert len({row[5] for row in block}) == 1
        total, kb_sum = float(block[0][5]), sum(float(row[4]) for row in block)
        assert total == pytest.approx(kb_sum, rel=1e-5)
        assert len({(row[2], row[3]) for row in block}) == len(block)


def test_rows_are_conversations_of_the_local_device_with_public_and_lan_hosts() -> None:
    local = local_ip_for("alice", DAY)
    rows = data_rows(generate_day("alice", DAY, seed=5, options=FULL_DAY))
    remotes = [row[3] if row[2] == local else row[2] for row in rows if local in (row[2], row[3])]

    assert ipaddress.ip_address(local).is_private
    assert len(remotes) / len(rows) > 0.95  # a few rows are between two other machines
    public = [r for r in remotes if not ipaddress.ip_address(r).is_private]
    assert 0.5 < len(public) / len(remotes) < 0.98
    assert len(set(public)) >= 40
    assert "192.168.1.1" in remotes


def test_users_favour_different_hosts() -> None:
    def top_host(user: str) -> str:
        rows = data_rows(generate_day(user, DAY, seed=5, options=FULL_DAY))
        counts: dict[str, int] = defaultdict(int)
        for row in rows:
            counts[row[2] + "," + row[3]] += 1
        return max(counts, key=counts.__getitem__).replace(local_ip_for(user, DAY), "")

    assert len({top_host(user) for user in user_names(4)}) > 1


def test_user_names_are_deterministic_and_some_contain_a_dash() -> None:
    names = user_names(12)

    assert names == user_names(12) and len(set(names)) == 12
    assert names[:3] == ["alice", "bob-smith", "carol"]
    assert any("-" in name for name in names[:2])
    assert all(parse_log_file_name(f"{name}-2026-11-21.csv").user == name for name in names)


def test_local_ip_changes_on_the_given_date() -> None:
    change = {"alice": dt.date(2026, 11, 23)}
    before = {local_ip_for("alice", DAY + dt.timedelta(days=d), change) for d in range(2)}
    after = {local_ip_for("alice", DAY + dt.timedelta(days=d), change) for d in range(2, 4)}

    assert before == {local_ip_for("alice", DAY)} and len(after) == 1 and before != after
    assert all(ipaddress.ip_address(ip).is_private for ip in before | after)
    assert local_ip_for("bob-smith", DAY, change) == local_ip_for("bob-smith", DAY + dt.timedelta(days=5), change)


def test_generate_uses_the_changed_ip_in_the_files(tmp_path: Path) -> None:
    change = {"alice": DAY + dt.timedelta(days=1)}
    paths = generate(tmp_path, users=1, days=2, start=DAY, seed=1, ip_changes=change,
                     options=GeneratorOptions(minutes_per_day=5))
    ips = [local_ip_for("alice", DAY + dt.timedelta(days=d), change) for d in range(2)]

    for path, ip in zip(paths, ips):
        assert all(ip in (row[2], row[3]) for row in data_rows(path.read_bytes())[:3])
    assert ips[0] != ips[1]


@pytest.mark.parametrize("restarts", [1, 3])
def test_restart_replays_every_pair_seen_so_far_with_its_last_value(restarts: int) -> None:
    options = GeneratorOptions(minutes_per_day=12, pairs_per_minute=6, restarts=restarts)
    minutes = blocks(data_rows(generate_day("alice", DAY, seed=9, options=options)))

    replay_sizes = []
    last: dict[tuple[str, str], str] = {}
    for _, block in minutes:
        # A replay holds exactly the pairs seen so far, each with its last value.
        if last and block == last:
            replay_sizes.append(len(block))
        last.update(block)
    assert len(minutes) == 12
    assert len(replay_sizes) == restarts
    assert replay_sizes[-1] > 6  # everything seen so far, not a normal minute's handful


def test_bad_lines_are_exactly_what_the_reader_quarantines(tmp_path: Path) -> None:
    options = GeneratorOptions(minutes_per_day=30, bad_lines=9)
    clean = generate_day("alice", DAY, seed=2, options=GeneratorOptions(minutes_per_day=30))
    path = tmp_path / "alice-2026-11-21.csv"
    path.write_bytes(generate_day("alice", DAY, seed=2, options=options))

    result = read_traffic_log(path)

    assert result.quarantined == 9
    assert len(set(result.quarantine["reason"].to_pylist())) == 7  # every kind of damage
    assert (result.headers, result.blank) == (2, 1)
    assert path.read_bytes().count(b"\r\n") == 1
    assert result.good == len(data_rows(clean))


def test_truncated_last_line_is_cut_short_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "alice-2026-11-21.csv"
    path.write_bytes(generate_day("alice", DAY, seed=2, options=GeneratorOptions(truncated_last_line=True)))
    full = data_rows(generate_day("alice", DAY, seed=2))

    result = read_traffic_log(path)

    assert not path.read_bytes().endswith(b"\n")
    assert ",".join(full[-1]).startswith(result.quarantine["raw_line"][0].as_py())
    assert result.quarantine["reason"].to_pylist() == [INCOMPLETE_LAST_LINE]
    assert result.good == len(full) - 1


@pytest.mark.parametrize("gzip_files", [False, True])
def test_round_trip_through_the_reader(tmp_path: Path, gzip_files: bool) -> None:
    paths = generate(tmp_path, users=2, days=2, start=DAY, seed=3, gzip_files=gzip_files,
                     options=GeneratorOptions(minutes_per_day=20, restarts=1))

    for path in paths:
        name = parse_log_file_name(path.name)
        raw = gzip.decompress(path.read_bytes()) if gzip_files else path.read_bytes()
        rows = data_rows(raw)
        result = read_traffic_log(path)
        assert (result.good, result.quarantined, result.headers) == (len(rows), 0, 1)
        assert set(result.rows["user"].to_pylist()) == {name.user}
        assert set(result.rows["log_date"].to_pylist()) == {name.date}
        assert result.rows["kb_bandwidth"].to_pylist() == [float(row[4]) for row in rows]


@pytest.mark.parametrize(
    "options",
    [dict(minutes_per_day=0), dict(minutes_per_day=1441), dict(pairs_per_minute=0), dict(bad_lines=-1),
     dict(minutes_per_day=3, restarts=3)],
)
def test_impossible_options_are_refused(options: dict) -> None:
    with pytest.raises(ValueError):
        GeneratorOptions(**options)


def test_a_default_device_day_is_a_plausible_home_or_office_volume() -> None:
    """A few GB a day: 60 active minutes, video on three favourite hosts, small traffic otherwise."""
    totals = []
    for user in ("alice", "bob-smith", "carol"):
        for offset in range(7):
            rows = data_rows(generate_day(user, DAY + dt.timedelta(days=offset), seed=7))
            totals.append(sum(float(row[4]) for row in rows) / 1e6)  # KB -> GB
    assert 1 < min(totals) and max(totals) < 8 and 1.5 < sorted(totals)[len(totals) // 2] < 4, totals


@pytest.mark.parametrize(("options", "sha256"), [
    (GeneratorOptions(), "2326e2848fcf3891ccb28782ae7209dc6363683f7426595c81828e5754251703"),
    (FULL_DAY, "c4baf5ddcc12d2520b7d57aa53b14bc8163707d114e796add1da0ae409385169"),
    (GeneratorOptions(minutes_per_day=300, bad_lines=3, restarts=2, truncated_last_line=True),
     "be793f23c234da691ba09ac8017dd3b607fa01f17f86e59efd5dda704487aece"),
])
def test_options_that_existed_before_the_fleet_options_still_give_the_same_bytes(options, sha256) -> None:
    assert hashlib.sha256(generate_day("alice", DAY, seed=7, options=options)).hexdigest() == sha256


def minutes_of(data: bytes) -> list[int]:
    stamps = sorted({row[1] for row in data_rows(data)})
    return [int(stamp[11:13]) * 60 + int(stamp[14:16]) for stamp in stamps]


def test_a_laptop_that_sleeps_at_night_writes_only_in_its_awake_hours() -> None:
    data = generate_day("alice", DAY, seed=7, options=GeneratorOptions(minutes_per_day=900, awake_hours=(7, 23)))
    minutes = minutes_of(data)
    assert len(minutes) == 900 and min(minutes) >= 7 * 60 and max(minutes) < 23 * 60


def test_a_device_that_stops_writes_the_prefix_of_its_whole_day_and_one_that_resumes_the_rest() -> None:
    whole = generate_day("alice", DAY, seed=7, options=FULL_DAY)
    at = dt.datetime.combine(DAY, dt.time(14, 7))
    stopped = generate_day("alice", DAY, seed=7, options=FULL_DAY, outages=[Outage(at)])
    assert whole.startswith(stopped) and max(minutes_of(stopped)) == 14 * 60 + 6

    back = at.replace(hour=16, minute=30)
    paused = generate_day("alice", DAY, seed=7, options=FULL_DAY, outages=[Outage(at, back)])
    assert minutes_of(paused) == [m for m in range(1440) if not 14 * 60 + 7 <= m < 16 * 60 + 30]
    kept = [row for row in data_rows(whole) if not "14:07" <= row[1][11:] < "16:30"]
    assert data_rows(paused) == kept


def test_a_fleet_mixes_devices_and_a_day_spent_off_has_no_file(tmp_path: Path) -> None:
    laptop = GeneratorOptions(minutes_per_day=600, awake_hours=(8, 20))
    outage = Outage(dt.datetime(2026, 11, 22, 14, 7), dt.datetime(2026, 11, 24, 9, 0))
    paths = generate(tmp_path, users=2, days=4, start=DAY, seed=7, device_options={"bob-smith": laptop},
                     outages={"alice": [outage]})
    assert [p.name for p in paths] == [
        "alice-2026-11-21.csv", "alice-2026-11-22.csv", "alice-2026-11-24.csv",  # off all of the 23rd
        *(f"bob-smith-2026-11-{d}.csv" for d in (21, 22, 23, 24)),
    ]
    assert max(minutes_of(paths[1].read_bytes())) < 14 * 60 + 7
    assert min(minutes_of(paths[2].read_bytes())) >= 9 * 60
    assert paths[3].read_bytes() == generate_day("bob-smith", DAY, seed=7, options=laptop)
    assert all(8 * 60 <= m < 20 * 60 for p in paths[3:] for m in minutes_of(p.read_bytes()))


@pytest.mark.parametrize("hours", [(20, 8), (-1, 5), (7, 25), (7, 8)])
def test_impossible_awake_hours_are_refused(hours) -> None:
    with pytest.raises(ValueError, match="awake_hours"):
        GeneratorOptions(minutes_per_day=120, awake_hours=hours)
