"""The daily step (``bronze_to_gold``): one RunTables handed from layer to layer, so a whole run's
silver takes bronze's rows from memory, and a layer run alone reads them from the tables."""

import datetime as dt

from packetx_lakehouse.defs import tables as run_tables
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS, SILVER_PACKETS
from packetx_lakehouse.lib.storage.iceberg import ensure_table
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_harness.truth import table_digests

DAY = dt.date(2026, 3, 12)


def test_a_whole_run_hands_bronze_to_silver_in_memory_and_silver_alone_reads_it_back(lakehouse, monkeypatch):
    generate(lakehouse.landing, users=2, days=1, start=DAY, seed=4,
             options=GeneratorOptions(minutes_per_day=30, pairs_per_minute=8, bad_lines=2))
    read = []
    real_read = run_tables.read_partitions

    def recording(table, **kwargs):
        read.append(".".join(table.name()))
        return real_read(table, **kwargs)

    monkeypatch.setattr(run_tables, "read_partitions", recording)
    assert materialize_range(lakehouse.defs, DAY, DAY, log_level="WARNING").success
    assert BRONZE_PACKETS.identifier not in read and SILVER_PACKETS.identifier not in read
    whole = table_digests(lakehouse.settings)

    read.clear()
    assert materialize_range(lakehouse.defs, DAY, DAY, selection="not group:bronze", log_level="WARNING").success
    assert BRONZE_PACKETS.identifier in read
    # The same silver and gold, whichever way bronze's rows came.
    assert table_digests(lakehouse.settings) == whole
    assert ensure_table(lakehouse.catalog(), SILVER_PACKETS).scan().to_arrow().num_rows > 0
