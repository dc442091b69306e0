"""The PacketX file-name contract: ``<user>-<YYYY-MM-DD>.csv`` (optionally gzip-compressed)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

# The user name may itself contain '-', so the date is anchored to the end of the stem.
_NAME = re.compile(r"^(?P<user>.+)-(?P<date>\d{4}-\d{2}-\d{2})(?P<ext>\.csv|\.csv\.gz|\.gz)$")
#: What the contract calls "not named right", said the same way everywhere.
NOT_A_LOG_NAME = "not named <user>-<YYYY-MM-DD>.csv[.gz]"


@dataclass(frozen=True)
class LogFileName:
    """A parsed traffic-log file name."""

    name: str
    user: str
    date: dt.date
    compressed: bool

    @property
    def partition_key(self) -> str:
        return self.date.isoformat()

    @property
    def source_file(self) -> str:
        """The day's source as the archive knows it: ``bob-<day>.csv`` and its ``.gz`` upload are one source."""
        return f"{self.user}-{self.partition_key}.csv"


def user_name_problem(user: str, what: str = "user name") -> str | None:
    """Why ``user`` cannot be a device's name (control characters, surrounding spaces), or None."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in user):
        return f"control character in {what} {escape(user)}"
    if user != user.strip():
        return f"spaces around {what} {escape(user)}"
    return None


def escape(text: str, limit: int = 60) -> str:
    """``text`` quoted with control characters escaped and cut to ``limit`` characters: safe in any message."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return "'" + "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in shown) + "'"


def check_log_file_name(name: str) -> LogFileName | str:
    """The parsed name, or the precise reason it breaks the contract (e.g. ``invalid date 2026-13-45``)."""
    match = _NAME.match(name)
    if not match:
        return NOT_A_LOG_NAME
    try:
        date = dt.date.fromisoformat(match["date"])
    except ValueError:
        return f"invalid date {match['date']}"
    problem = user_name_problem(match["user"])
    if problem:
        return problem
    return LogFileName(name, match["user"], date, match["ext"].endswith(".gz"))


def parse_log_file_name(name: str) -> LogFileName | None:
    """Parse a base name such as ``bob-smith-2026-11-21.csv.gz``; None if it breaks the contract."""
    parsed = check_log_file_name(name)
    return parsed if isinstance(parsed, LogFileName) else None
