"""As of an earlier time: which kept snapshot was current then, and a clear refusal where that is unknown."""

import datetime as dt

import pyarrow as pa
import pytest
from pyiceberg.table.snapshots import Operation, Snapshot, Summary

from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH
from packetx_lakehouse.lib.storage.iceberg import ensure_table, local_catalog, replace_partitions
from packetx_lakehouse.lib.storage.time_travel import (
    AsOf,
    AsOfOutOfReach,
    parse_as_of,
    resolve,
    state_at,
)

NOW = dt.datetime(2026, 11, 24, 15, 30, tzinfo=dt.UTC)


def at(hh: int, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 24, hh, mm, ss, tzinfo=dt.UTC)


class Kept:
    """A table's kept snapshots: (sequence number, time, run)."""

    def __init__(self, *kept: tuple[int, dt.datetime, str]) -> None:
        self._snapshots = [Snapshot(snapshot_id=1000 + seq, sequence_number=seq, timestamp_ms=int(t.timestamp() * 1000),
                                    manifest_list=f"snap-{seq}.avro",
                                    summary=Summary(Operation.OVERWRITE, **{"dagster.run_id": run}))
                           for seq, t, run in kept]

    def snapshots(self) -> list[Snapshot]:
        return self._snapshots

    def snapshot_by_id(self, snapshot_id: int) -> Snapshot | None:
        return next((s for s in self._snapshots if s.snapshot_id == snapshot_id), None)


# Written at 09:10 (seq 1), then thinned to the last write of each hour: 11:50 (seq 7), 12:40 (seq 9),
# then the last two writes 14:20 (seq 14) and 14:25 (seq 15).
TABLE = Kept((1, at(9, 10), "a"), (7, at(11, 50), "b"), (9, at(12, 40), "c"), (14, at(14, 20), "d"),
             (15, at(14, 25), "e"))


@pytest.mark.parametrize(("moment", "sequence"), [
    (at(15), 15), (at(14, 25), 15),  # at or after the newest
    (at(14, 22), 14),  # between the last two writes: consecutive
    (at(13, 59, 59), 9),  # 12:40 was the last write of its hour, and 13:00-13:59 had none kept or thinned
    (at(12, 59), 9), (at(11, 55), 7), (at(9, 30), 1), (at(10, 59), 1),  # before the clock hour of the next one kept
])
def test_a_state_is_given_where_the_kept_snapshots_prove_it(moment, sequence):
    assert state_at(TABLE, "t", moment).snapshot_id == 1000 + sequence


@pytest.mark.parametrize("moment", [at(14, 0), at(14, 19), at(11, 30), at(12, 10)])
def test_inside_an_hour_whose_earlier_writes_were_thinned_out_it_refuses_naming_the_states_kept(moment):
    with pytest.raises(AsOfOutOfReach, match="were thinned out") as refused:
        state_at(TABLE, "packetx_gold.t", moment)
    assert str(refused.value).startswith("packetx_gold.t: the states between 2026-11-24 ")


def test_before_a_tables_first_write_it_had_no_rows_but_before_its_oldest_kept_state_is_out_of_reach():
    assert state_at(TABLE, "t", at(8)).snapshot_id is None
    expired = Kept((30, at(10), "x"), (31, at(11), "y"))
    with pytest.raises(AsOfOutOfReach, match=r"^t: its oldest state kept is from 2026-11-24 10:00:00 UTC \(snapshot 1030\)$"):
        state_at(expired, "t", at(9))


def test_a_snapshot_id_fixes_the_moment_for_every_table_at_the_end_of_its_run():
    other = Kept((3, at(12, 40, 5), "c"), (4, at(13, 5), "f"))
    resolved = resolve({"gold.a": TABLE, "gold.b": other}, AsOf(snapshot_id=1009), NOW)
    assert resolved.at == at(12, 40, 5)  # run c wrote gold.b five seconds after gold.a
    assert {k: v.snapshot_id for k, v in resolved.states.items()} == {"gold.a": 1009, "gold.b": 1003}
    with pytest.raises(AsOfOutOfReach, match="no table keeps snapshot 42"):
        resolve({"gold.a": TABLE}, AsOf(snapshot_id=42), NOW)


def test_tables_out_of_reach_are_named_and_none_at_all_is_an_error():
    expired = Kept((30, at(10), "x"))
    resolved = resolve({"gold.a": TABLE, "gold.b": expired}, AsOf(at(9, 30)), NOW)
    assert set(resolved.states) == {"gold.a"} and "oldest state kept" in resolved.out_of_reach["gold.b"]
    with pytest.raises(AsOfOutOfReach, match="PACKETX_SNAPSHOT_RETENTION_HOURS"):
        resolve({"gold.b": expired}, AsOf(at(9, 30)), NOW)
    with pytest.raises(AsOfOutOfReach, match="in the future"):
        resolve({"gold.a": TABLE}, AsOf(at(18)), NOW)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-24T14:00", AsOf(at(14))), ("2026-11-24 14:00", AsOf(at(14))),
    ("2026-11-24T15:00+01:00", AsOf(at(14))), ("2026-11-24", AsOf(at(0))),
    ("90m", AsOf(at(14))), ("2h ago", AsOf(at(13, 30))), ("-1d", AsOf(NOW - dt.timedelta(days=1))),
    ("6789758281886517473", AsOf(snapshot_id=6789758281886517473)),
])
def test_as_of_reads_times_relative_times_and_snapshot_ids(text, expected):
    assert parse_as_of(text, NOW) == expected


def test_as_of_refuses_anything_else_naming_what_it_takes():
    with pytest.raises(ValueError, match="expected an ISO time"):
        parse_as_of("last tuesday", NOW)


def test_a_real_table_reads_back_as_it_was_between_two_writes(tmp_path):
    table = ensure_table(local_catalog(tmp_path / "c.db", tmp_path / "wh"), GOLD_DAILY_USER_BANDWIDTH)
    day = dt.date(2026, 11, 24)

    def write(kb: float) -> dt.datetime:
        row = {"log_date": day, "user": "alice", "total_kb": kb, "inbound_kb": 0.0, "outbound_kb": kb,
               "internal_kb": 0.0, "unknown_kb": 0.0, "distinct_remote_hosts": 1, "peak_minute_utc": at(1),
               "peak_minute_kb": kb, "rows": 1}
        replace_partitions(table, pa.Table.from_pylist([row], schema=GOLD_DAILY_USER_BANDWIDTH.schema), values=[day])
        return dt.datetime.fromtimestamp(table.refresh().current_snapshot().timestamp_ms / 1000, dt.UTC)

    first, second = write(1.0), write(2.0)
    between = first + (second - first) / 2
    state = state_at(table, "t", between)
    assert table.scan(snapshot_id=state.snapshot_id).to_arrow()["total_kb"].to_pylist() == [1.0]
    assert state_at(table, "t", second).snapshot_id == table.current_snapshot().snapshot_id
