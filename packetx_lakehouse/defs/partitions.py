"""The daily partitions every layer shares; the key is the date in the traffic-log file name.

Built from the settings passed to ``build_definitions``, never read from the environment here.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from packetx_lakehouse.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """Days from the configured start through TODAY.

    Dagster's daily partitions normally end yesterday; today's file grows all day and must be
    ingestable now, hence ``end_offset=1``.
    """
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date, end_offset=1, timezone=settings.partition_timezone
    )


def check_partition_key(partitions: dg.DailyPartitionsDefinition, day: dt.date, what: str) -> str | None:
    """A human-readable reason why ``day`` cannot be ingested, or None when it can."""
    first = partitions.start.date()
    last = dt.date.fromisoformat(partitions.get_last_partition_key())
    if day < first:
        return f"{what} is dated {day}, before the first partition {first} (set PACKETX_START_DATE earlier to ingest it)"
    if day > last:
        return f"{what} is dated {day}, after today's partition {last} in {partitions.timezone} (device clock or time zone ahead?)"
    return None


def describe_partitions(partitions: dg.DailyPartitionsDefinition) -> str:
    """The partition range and the settings that bound it, for a message about a day outside it."""
    return (f"{partitions.start.date()} .. {partitions.get_last_partition_key()} (PACKETX_START_DATE through today "
            f"in PACKETX_TIMEZONE={partitions.timezone})")


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The run's partition keys as dates: one day, or a whole range under a backfill policy."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]
