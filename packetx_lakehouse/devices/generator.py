"""Deterministic PacketX traffic logs for tests, demos and benchmarks.

What a generated device-day models: a home or office computer, active ``minutes_per_day``
minutes spread over the day, talking to about ``pairs_per_minute`` hosts a minute. Most
conversations are small (web pages, APIs, DNS, the LAN: 1 KB to 1 MB a minute), three favourite
hosts stream video (a few MB a minute, 1-2 Mbit/s each), and now and then a backup or system
update moves 1-3 GB in one minute (about twice a day for a machine on all day), which is where
PacketX's ``1.6833e+06`` notation comes from. At the defaults (60 active minutes, 20 hosts a
minute) that is about 2-3 GB per device-day; the benchmark sets its own, far larger, volumes.
A fleet mixes devices: some on all day, laptops that sleep at night (``awake_hours``), machines
that stop and resume (``Outage``).

The files follow the data contract byte for byte (see ``/work/shared/samples``): LF line ends,
the header once, one block of rows per minute sharing the minute and the Total KB Bandwidth, the
IP pair ordered by string comparison and numbers printed like C++ ``ostream`` (``.6g``). Rows are
built with numpy, whole days at a time, so millions of rows take seconds.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from packetx_lakehouse.lib.ingest.gzipio import gzip_deterministic
from packetx_lakehouse.lib.schemas import CSV_HEADER
from packetx_lakehouse.lib.storage.objectstore import write_bytes_atomically

_NAMES = ("alice", "bob-smith", "carol", "dave", "erin-li", "frank", "grace", "heidi", "ivan", "judy")

#: Well-known public hosts; every user favours a different few of them.
_PUBLIC_HOSTS = (
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9",
    "142.250.74.46", "142.250.74.78", "142.250.185.206", "142.250.180.14", "142.251.36.3",
    "172.217.16.142", "172.217.22.174", "216.58.206.46", "216.58.212.138", "74.125.133.188",
    "151.101.1.140", "151.101.65.140", "151.101.129.67", "151.101.193.69", "151.101.2.217",
    "104.16.132.229", "104.16.249.249", "104.18.32.7", "104.244.42.1", "104.244.42.65",
    "13.107.42.14", "13.107.21.200", "20.190.159.4", "40.126.32.134", "52.96.88.162",
    "52.84.150.11", "54.230.112.69", "99.84.203.38", "3.5.27.164", "18.65.3.91",
    "31.13.72.36", "157.240.17.35", "157.240.229.174", "69.171.250.35", "185.60.216.35",
    "17.253.144.10", "17.57.146.20", "140.82.121.4", "140.82.112.22", "185.199.108.153",
    "23.215.0.138", "2.16.186.80", "199.232.46.132", "146.75.118.133", "95.101.88.49",
)
#: Bulk providers for the extra hosts a busy device talks to.
_PUBLIC_PREFIXES = ("142.250", "151.101", "104.16", "13.107", "52.84", "157.240", "185.199", "23.215")
#: Hosts streaming video: the three most popular pairs, at a few MB a minute each.
_STREAMING_HOSTS = 3
#: KB a minute of a streaming pair (before the per-minute log-normal variation).
_STREAMING_KB = (4e3, 1.2e4)
#: KB a minute of any other pair: 1 KB to 1 MB (log-uniform).
_OTHER_KB_LOG10 = (0.0, 3.0)
#: Expected backup/update minutes (1-3 GB over one conversation) in a day with all 1440 minutes active.
_BURSTS_PER_FULL_DAY = 2
_BURST_KB = (1e6, 3e6)
_LAN_HOSTS = ("192.168.1.1", "192.168.1.220", "192.168.1.231", "10.0.0.5", "10.0.0.12")
#: Traffic the capture sees between two other machines (broadcasts, the router and the NAS).
_OTHER_PAIRS = (
    ("192.168.1.1", "224.0.0.251"),
    ("192.168.1.220", "239.255.255.250"),
    ("192.168.1.231", "192.168.1.1"),
)
#: Device addresses live in 192.168.1.10-209, away from the LAN hosts above.
_DEVICE_FIRST, _DEVICE_COUNT = 10, 200


@dataclass(frozen=True)
class GeneratorOptions:
    """What a generated day looks like.

    Attributes:
        minutes_per_day: Minutes of the day with a block, spread over the day.
        pairs_per_minute: Typical rows per block (each minute varies by about 10 %).
        bad_lines: Lines the reader must quarantine, mixed in per file (bad IP, bad or negative
            number, wrong column count, non-UTF-8 bytes, bad time stamp, empty user). When
            non-zero the file also gets one repeated header, one blank line and one CRLF row,
            which the reader accepts: they are counted as headers, blanks and good rows.
        restarts: Program restarts per file. The restart minute's block is the replay: every
            pair seen so far that day with its last value.
        truncated_last_line: Cut the last line short and leave out its newline.
        awake_hours: Local hours ``(first, end)`` the machine is on, e.g. ``(7, 23)`` for a laptop
            that sleeps at night; its minutes fall in ``first:00 .. end-1:59`` only. None: all day.
    """

    minutes_per_day: int = 60
    pairs_per_minute: int = 20
    bad_lines: int = 0
    restarts: int = 0
    truncated_last_line: bool = False
    awake_hours: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.minutes_per_day <= 1440:
            raise ValueError(f"minutes_per_day must be 1..1440, got {self.minutes_per_day}")
        if self.awake_hours is not None:
            first, end = self.awake_hours
            if not 0 <= first < end <= 24 or self.minutes_per_day > (end - first) * 60:
                raise ValueError(f"awake_hours must be 0 <= first < end <= 24 with room for minutes_per_day, "
                                 f"got {self.awake_hours}")
        if self.pairs_per_minute < 1 or self.bad_lines < 0:
            raise ValueError("pairs_per_minute must be positive and bad_lines not negative")
        if not 0 <= self.restarts < self.minutes_per_day:
            raise ValueError(f"restarts must be 0..minutes_per_day - 1, got {self.restarts}")


@dataclass(frozen=True)
class Outage:
    """The capture is off (machine off, program crashed, disk full) from ``start`` until ``end``.

    Local wall-clock times of the device; ``end`` None: it never resumes. Minutes inside write
    nothing (the file stops growing), and a day entirely inside writes no file at all.
    """

    start: dt.datetime
    end: dt.datetime | None = None

    def covers(self, day: dt.date) -> bool:
        """Whether the whole of ``day`` is inside the outage."""
        midnight = dt.datetime.combine(day, dt.time())
        return self.start <= midnight and (self.end is None or self.end >= midnight + dt.timedelta(days=1))

    def off(self, day: dt.date, minutes: np.ndarray) -> np.ndarray:
        """Which of ``day``'s ``minutes`` (of the day, 0-1439) fall inside the outage."""
        midnight = dt.datetime.combine(day, dt.time())
        first = (self.start - midnight) // dt.timedelta(minutes=1)
        end = 1440 if self.end is None else (self.end - midnight) // dt.timedelta(minutes=1)
        return (minutes >= first) & (minutes < end)


def user_names(n: int) -> list[str]:
    """Return ``n`` deterministic user names; the second one contains '-' like real devices may."""
    return [_NAMES[i] if i < len(_NAMES) else f"user-{i}" for i in range(n)]


def local_ip_for(user: str, day: dt.date, ip_changes: Mapping[str, dt.date] | None = None) -> str:
    """Return the user's private device IP; from ``ip_changes[user]`` on it is a different one."""
    slot = _hash(user) % _DEVICE_COUNT
    if ip_changes and user in ip_changes and day >= ip_changes[user]:
        slot = (slot + _DEVICE_COUNT // 2) % _DEVICE_COUNT
    return f"192.168.1.{_DEVICE_FIRST + slot}"


def generate_day(
    user: str,
    day: dt.date,
    *,
    seed: int,
    options: GeneratorOptions = GeneratorOptions(),
    local_ip: str | None = None,
    outages: Sequence[Outage] = (),
) -> bytes:
    """Return the bytes of ``<user>-<day>.csv``; the same arguments always give the same bytes.

    ``outages`` leave their minutes out of the same day's traffic: the file a device wrote until
    it stopped is a prefix of the one it writes without stopping.
    """
    local_ip = local_ip or local_ip_for(user, day)
    rng = np.random.default_rng([seed, _hash(user), day.toordinal()])
    pairs, weights, scales = _pair_universe(user, local_ip, seed, options.pairs_per_minute)

    if options.awake_hours is None:
        minutes = np.sort(rng.choice(1440, size=min(options.minutes_per_day, 1440), replace=False))
    else:
        first, end = (hour * 60 for hour in options.awake_hours)
        minutes = first + np.sort(rng.choice(end - first, size=options.minutes_per_day, replace=False))
    jitter = options.pairs_per_minute // 10
    sizes = np.clip(options.pairs_per_minute + rng.integers(-jitter, jitter + 1, len(minutes)), 1, len(pairs))
    # Gumbel top-k: a popularity-weighted sample without replacement for every minute at once.
    keys = np.log(weights) - np.log(-np.log(rng.random((len(minutes), len(pairs)))))
    order = np.argsort(-keys, axis=1)
    taken = np.arange(len(pairs)) < sizes[:, None]
    pair_of_row = order[taken]
    block_of_row = np.repeat(np.arange(len(minutes)), sizes)
    kb = np.round(scales[pair_of_row] * rng.lognormal(0.0, 1.0, len(pair_of_row)), 3)
    burst = np.flatnonzero(rng.random(len(minutes)) < _BURSTS_PER_FULL_DAY / 1440)
    kb[np.searchsorted(block_of_row, burst)] = np.round(rng.uniform(*_BURST_KB, len(burst)), 3)

    # A restart needs a minute before it, so the first minute is never one.
    for block in np.sort(rng.choice(np.arange(1, len(minutes)), size=options.restarts, replace=False)):
        pair_of_row, block_of_row, kb = _replay(block, pair_of_row, block_of_row, kb)

    totals = np.bincount(block_of_row, weights=kb, minlength=len(minutes))
    if outages:
        on = ~np.logical_or.reduce([outage.off(day, minutes) for outage in outages])[block_of_row]
        pair_of_row, block_of_row, kb = pair_of_row[on], block_of_row[on], kb[on]
    time_stamps = np.array([f"{day.isoformat()} {m // 60:02d}:{m % 60:02d}" for m in minutes.tolist()], dtype=object)
    rows = list(map(
        ",".join,
        zip(
            repeat(user),
            time_stamps[block_of_row],
            np.array(pairs, dtype=object)[pair_of_row],
            _format(kb),
            np.array(_format(totals), dtype=object)[block_of_row],
        ),
    ))
    if options.bad_lines:
        rows = _mix_in_bad_lines(rows, rng, options.bad_lines, user, time_stamps[0], pairs[0])
    lines = [CSV_HEADER, *rows]
    if options.truncated_last_line:
        lines[-1] = lines[-1][: max(1, len(lines[-1]) * 2 // 3)]
        text = "\n".join(lines)
    else:
        text = "\n".join(lines) + "\n"
    return text.encode("utf-8", errors="surrogateescape")


def generate(
    out_dir: Path,
    *,
    users: int,
    days: int,
    start: dt.date,
    seed: int,
    options: GeneratorOptions = GeneratorOptions(),
    ip_changes: Mapping[str, dt.date] | None = None,
    gzip_files: bool = False,
    device_options: Mapping[str, GeneratorOptions] | None = None,
    outages: Mapping[str, Sequence[Outage]] | None = None,
) -> list[Path]:
    """Write ``<user>-<YYYY-MM-DD>.csv`` (or ``.csv.gz``) for every user and day; return the paths sorted.

    A fleet of unlike devices: ``device_options[user]`` replaces ``options`` for that user, and
    ``outages[user]`` are the stretches it was off (a day entirely off has no file).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for user in user_names(users):
        off = tuple((outages or {}).get(user, ()))
        for offset in range(days):
            day = start + dt.timedelta(days=offset)
            if any(outage.covers(day) for outage in off):
                continue
            data = generate_day(user, day, seed=seed, options=(device_options or {}).get(user, options),
                                local_ip=local_ip_for(user, day, ip_changes), outages=off)
            name = f"{user}-{day.isoformat()}.csv"
            if gzip_files:
                data, name = gzip_deterministic(data), name + ".gz"
            paths.append(out_dir / name)
            write_bytes_atomically(paths[-1], data)
    return sorted(paths)


def _hash(text: str) -> int:
    # Python's hash() is salted per process; crc32 is stable across runs.
    return zlib.crc32(text.encode())


def _format(values: np.ndarray) -> list[str]:
    """Format like C++ ``ostream`` with its default precision 6."""
    return list(map(format, values.tolist(), repeat(".6g")))


def _pair_universe(
    user: str, local_ip: str, seed: int, pairs_per_minute: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return every "Source IP,Destination IP" text the user can see, its popularity and KB scale."""
    rng = np.random.default_rng([seed, _hash(user)])
    wanted = max(len(_PUBLIC_HOSTS), pairs_per_minute + pairs_per_minute // 10 + 1)
    public = list(_PUBLIC_HOSTS)
    i = 0
    while len(public) < wanted:
        host = f"{_PUBLIC_PREFIXES[i % len(_PUBLIC_PREFIXES)]}.{(i * 37) % 256}.{(i * 91) % 254 + 1}"
        if host not in public:
            public.append(host)
        i += 1
    public = [public[j] for j in rng.permutation(len(public))]
    # Popularity falls with the (per-user) rank of a public host; LAN hosts are steady, and
    # conversations between two other machines are rare.
    weighted = [(host, 1.0 / (rank + 1.0)) for rank, host in enumerate(public)]
    weighted += [(host, 0.3) for host in _LAN_HOSTS]
    ends = [((local_ip, host), weight) for host, weight in weighted if host != local_ip]
    ends += [(pair, 0.05) for pair in _OTHER_PAIRS]
    # tshark orders a conversation's ends by string comparison, not by direction.
    pairs = [f"{max(a, b)},{min(a, b)}" for (a, b), _ in ends]
    weights = np.array([weight for _, weight in ends])
    scales = 10.0 ** rng.uniform(*_OTHER_KB_LOG10, len(pairs))
    scales[:_STREAMING_HOSTS] = rng.uniform(*_STREAMING_KB, _STREAMING_HOSTS)
    return pairs, weights / weights.sum(), scales


def _replay(
    block: int, pair_of_row: np.ndarray, block_of_row: np.ndarray, kb: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace ``block`` by the replay of every pair seen before it, with the pair's last value."""
    start = int(np.searchsorted(block_of_row, block))
    end = int(np.searchsorted(block_of_row, block, side="right"))
    reversed_pairs = pair_of_row[:start][::-1]
    _, first_in_reversed = np.unique(reversed_pairs, return_index=True)
    last = np.sort(start - 1 - first_in_reversed)
    return (
        np.concatenate([pair_of_row[:start], pair_of_row[last], pair_of_row[end:]]),
        np.concatenate([block_of_row[:start], np.full(len(last), block), block_of_row[end:]]),
        np.concatenate([kb[:start], kb[last], kb[end:]]),
    )


def _mix_in_bad_lines(
    rows: list[str], rng: np.random.Generator, count: int, user: str, time_stamp: str, pair: str
) -> list[str]:
    """Insert ``count`` lines the reader must quarantine, plus the oddities it must accept."""
    good = f"{user},{time_stamp},{pair}"
    kinds = (
        f"{user},{time_stamp},999.1.2.3,10.0.0.5,12.5,100",
        f"{good},abc,100",
        f"{good},-5,100",
        f"{good},12.5",
        f"{user},{time_stamp},{pair},\udcff\udcfe,100",
        f"{user},2026-13-01 25:61,{pair},12.5,100",
        f",{time_stamp},{pair},12.5,100",
    )
    extra = [kinds[i % len(kinds)] for i in range(count)] + [CSV_HEADER, ""]
    rows = list(rows)
    rows[int(rng.integers(len(rows)))] += "\r"
    # Always before an existing row, so the last line stays a data row (truncation cuts it).
    for line in extra:
        rows.insert(int(rng.integers(len(rows))), line)
    return rows
