"""Landing problems an operator acknowledged: still recorded and listed, no longer failing a check.

A file that left the landing area after it was ingested (devices may clean up) or that shrank
warns on every run of its day; once someone has looked at it and decided it is fine (the archive
keeps serving the ingested version), ``packetx-lakehouse acknowledge <file>`` says so, and the
day's bronze checks pass on its next run, listing it as acknowledged. A new problem with the same
file (another kind) is not covered. Kept beside the archive, one small JSON object per day.
"""

from __future__ import annotations

import datetime as dt
import json

from packetx_lakehouse.lib.ingest.problems import LandingProblem
from packetx_lakehouse.lib.storage.objectstore import ObjectStore


def _key(day: dt.date) -> str:
    return f"acknowledged/{day.isoformat()}.json"


def acknowledged(archive: ObjectStore, day: dt.date) -> dict[str, dict[str, str]]:
    """The day's acknowledgements: file name -> ``kind``, ``by``, ``at``, ``reason``."""
    key = _key(day)
    return json.loads(archive.get(key)) if archive.exists(key) else {}


def acknowledge(archive: ObjectStore, day: dt.date, name: str, kind: str, *, by: str, reason: str,
                now: dt.datetime) -> None:
    """Record that ``name``'s problem of ``kind`` on ``day`` is known and accepted."""
    records = acknowledged(archive, day)
    records[name] = {"kind": kind, "by": by, "at": now.isoformat(timespec="seconds"), "reason": reason}
    archive.put(_key(day), json.dumps(records, indent=1, sort_keys=True).encode())


def withdraw(archive: ObjectStore, day: dt.date, name: str) -> bool:
    """Undo an acknowledgement; False when there was none."""
    records = acknowledged(archive, day)
    if records.pop(name, None) is None:
        return False
    archive.put(_key(day), json.dumps(records, indent=1, sort_keys=True).encode())
    return True


def is_acknowledged(problem: LandingProblem, records: dict[str, dict[str, str]]) -> bool:
    record = records.get(problem.object_key)
    return record is not None and record["kind"] == problem.kind
