"""The benchmark tooling: its CPU profiler charges every CPU second by step and lakehouse call; its table prints."""

import collections
import time

from packetx_lakehouse_harness.cpu_profile import OWN_CODE, CpuSampler, by_step


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_charges_add_up_to_the_process_cpu_time_and_land_on_the_busy_function() -> None:
    cpu = time.process_time()
    with CpuSampler(interval=0.002) as sampler:
        _burn(0.3)
    spent = time.process_time() - cpu
    charged = sum(sampler.stacks.values())
    assert abs(charged - spent) < 0.02
    on_burn = sum(s for stack, s in sampler.stacks.items() if stack and stack[-1][1] == "_burn")
    assert on_burn > 0.8 * charged


def test_by_step_splits_by_the_outermost_lib_call_and_keeps_the_rest() -> None:
    run = ("/x/packetx_lakehouse/runner.py", "materialize_range")
    step = ("/x/packetx_lakehouse/defs/bronze/assets.py", "bronze")
    commit = ("/x/packetx_lakehouse/lib/storage/iceberg.py", "replace_partitions")
    inner = ("/x/packetx_lakehouse/lib/storage/iceberg.py", "_overwrite")
    stacks = collections.Counter({
        (run, step, commit, inner): 2.0,
        (run, step, ("/x/dagster/core.py", "log")): 0.5,
        (run, ("/x/dagster/core.py", "store_event")): 0.25,
    })
    assert by_step(stacks, ("bronze", "silver_and_gold")) == {
        "bronze": {"storage.iceberg.replace_partitions": 2.0, OWN_CODE: 0.5},
        "outside the steps": {"(Dagster run machinery, imports)": 0.25},
    }


def test_the_bench_table_prints_every_figure_and_target_of_a_real_result() -> None:
    import json
    from pathlib import Path

    from benchmarks.run import TARGETS, format_table

    result = json.loads((Path(__file__).parents[1] / "benchmarks" / "results-2026-12-01.json").read_text())
    table = format_table(result)
    assert "its file grown to 24 hours" in table
    assert f"{result['one_day_rerun_seconds']:.2f} s" in table
    verdicts = table.rsplit("targets: ", 1)[1]
    assert [v.rsplit(" ", 1)[0] for v in verdicts.split(", ")] == [key for key, _, _ in TARGETS]
