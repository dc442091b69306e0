"""The PacketX file-name contract: ``<user>-<YYYY-MM-DD>.csv`` (optionally gzip-compressed)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

# The user name may itself contain '-', so the date is anchored to the end of the stem.
_NAME = re.compile(r"^(?P<user>.+)-(?P<date>\d{4}-\d{2}-\d{2})(?P<ext>\.csv|\.csv\.gz|\.gz)$")


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


def parse_log_file_name(name: str) -> LogFileName | None:
    """Parse a base name such as ``bob-smith-2026-11-21.csv.gz``; None if it breaks the contract."""
    match = _NAME.match(name)
    if not match:
        return None
    try:
        date = dt.date.fromisoformat(match["date"])
    except ValueError:
        return None
    return LogFileName(name, match["user"], date, match["ext"].endswith(".gz"))
