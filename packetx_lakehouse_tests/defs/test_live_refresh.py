"""The landing sensor's refreshes take in only what files gained, and leave every table exactly as a
rebuild of the same files would (``docs/live-refresh.md``)."""

import datetime as dt
import json
import shutil
import signal

import dagster as dg
import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.conventions import NEW_LINES, REFRESH_TAG
from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.lib.schemas import (
    BRONZE_PACKETS,
    GOLD_DAILY_TABLES,
    GOLD_HOURLY_CELLS,
    SILVER_PACKETS,
    TABLES_BY_LAYER,
)
from packetx_lakehouse.lib.storage.iceberg import CHANGES_SUMMARY, ensure_table
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.conftest import Lakehouse
from packetx_lakehouse_harness.devserver import write_instance_yaml
from packetx_lakehouse_tests.support.sites import START, logged, make_site  # noqa: F401 - a fixture
from packetx_lakehouse_harness.truth import assert_tables_match_files, table_digests

DAY = dt.date(2026, 3, 10)
REFRESH = {REFRESH_TAG: NEW_LINES}


def capture(user: str, *, local_ip: str | None = None, seed: int = 3, **options) -> bytes:
    return generate_day(user, DAY, seed=seed, local_ip=local_ip, options=GeneratorOptions(
        minutes_per_day=options.pop("minutes", 120), pairs_per_minute=options.pop("pairs", 12), **options))


def moving_device(user: str) -> bytes:
    """A device whose IP changes after its first quarter: the later address wins the day's vote."""
    first = capture(user, local_ip="192.168.1.50").splitlines(keepends=True)
    second = capture(user, local_ip="192.168.1.77", seed=4).splitlines(keepends=True)
    cut = first[len(first) // 4].split(b",")[1]
    return b"".join([first[0], *[l for l in first[1:] if l.split(b",")[1] < cut],
                     *[l for l in second[1:] if l.split(b",")[1] >= cut]])


FILES = {
    f"alice-{DAY}.csv": lambda: capture("alice", restarts=2, bad_lines=3),
    f"bob-smith-{DAY}.csv": lambda: moving_device("bob-smith"),
    f"carol-{DAY}.csv": lambda: capture("carol", pairs=20, minutes=90),
}


def grow(lakehouse: Lakehouse, files: dict[str, bytes], fraction: float) -> None:
    """Each file's first ``fraction`` of bytes: a last line cut short, a minute's block split."""
    for name, data in files.items():
        path = lakehouse.landing / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[: int(len(data) * fraction)])


def refresh(lakehouse: Lakehouse, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = materialize_range(lakehouse.defs, DAY, DAY, instance=instance, tags=REFRESH, log_level="WARNING")
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in result.get_asset_check_evaluations()
              if not e.passed]
    assert failed == [], failed
    return result


def rebuilt_copy(lakehouse: Lakehouse, tmp_path) -> Lakehouse:
    """A fresh lakehouse that read the same landing files whole, in one run."""
    settings = Lakehouse.default_settings(tmp_path / "rebuilt")
    shutil.copytree(lakehouse.landing, settings.traffic_log_dir)
    copy = Lakehouse(settings, build_definitions(settings))
    assert materialize_range(copy.defs, DAY, DAY, log_level="WARNING").success
    return copy


def snapshots(lakehouse: Lakehouse) -> dict[str, int | None]:
    catalog = lakehouse.catalog()
    found = {}
    for table_def in (t for layer in TABLES_BY_LAYER.values() for t in layer):
        snapshot = ensure_table(catalog, table_def).current_snapshot()
        found[table_def.identifier] = snapshot.snapshot_id if snapshot else None
    return found


def test_refreshes_as_files_grow_leave_every_table_as_one_rebuild_would(lakehouse, tmp_path):
    files = {name: make() for name, make in FILES.items()}
    instance = dg.DagsterInstance.ephemeral()
    for fraction in (0.04, 0.2, 0.33, 0.5, 0.51, 0.7, 0.9, 1.0):
        grow(lakehouse, files, fraction)
        refresh(lakehouse, instance)
    assert table_digests(lakehouse.settings) == table_digests(rebuilt_copy(lakehouse, tmp_path).settings)
    # Cut mid-minute, user-days were read again whole now and then; most refreshes only extended them.
    read_again = [m.metadata["user_days_read_again"].value for run in instance.get_runs()
                  for m in _materializations(instance, run.run_id, SILVER_PACKETS) if "user_days_read_again" in m.metadata]
    assert 0 < len(read_again) < 8 * len(FILES)


def _materializations(instance: dg.DagsterInstance, run_id: str, table_def) -> list[dg.AssetMaterialization]:
    key = dg.AssetKey([table_def.namespace, table_def.name])
    return [e.asset_materialization for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.asset_materialization and e.asset_materialization.asset_key == key]


def test_a_refresh_appends_the_new_lines_and_replaces_only_the_hours_they_touch(lakehouse):
    data = capture("alice", minutes=300, pairs=8)
    lines = data.splitlines(keepends=True)
    instance = dg.DagsterInstance.ephemeral()
    path = lakehouse.landing / f"alice-{DAY}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines[: len(lines) - 8]))
    refresh(lakehouse, instance)
    before = snapshots(lakehouse)
    path.write_bytes(data)  # eight more lines: the device's last minute or two
    refresh(lakehouse, instance)
    catalog = lakehouse.catalog()
    bronze = ensure_table(catalog, BRONZE_PACKETS).current_snapshot()
    assert bronze.summary.operation.value == "append" and bronze.summary["added-records"] == "8"
    assert json.loads(bronze.summary[CHANGES_SUMMARY]) == {DAY.isoformat(): [1, 2]}
    silver = ensure_table(catalog, SILVER_PACKETS).current_snapshot()
    assert silver.summary.operation.value == "append" and int(silver.summary["added-records"]) <= 8
    cells = ensure_table(catalog, GOLD_HOURLY_CELLS)
    # The refresh's commit (a delete and an append snapshot) took out the rows of an hour or two of many.
    commit = [snap for snap in cells.metadata.snapshots if snap.summary.get(CHANGES_SUMMARY) == json.dumps(
        {DAY.isoformat(): [1, 2]})]
    replaced = sum(int(snap.summary.get("deleted-records") or 0) for snap in commit)
    stored = cells.scan().to_arrow()
    assert 0 < replaced < stored.num_rows and len(set(stored.column("hour_utc").to_pylist())) > 2
    assert all(before[t.identifier] != snapshot for t, snapshot in
               ((t, snapshots(lakehouse)[t.identifier]) for t in GOLD_DAILY_TABLES))


def test_a_refresh_that_finds_nothing_new_commits_nothing(lakehouse):
    grow(lakehouse, {name: make() for name, make in FILES.items()}, 0.5)
    instance = dg.DagsterInstance.ephemeral()
    refresh(lakehouse, instance)
    before = snapshots(lakehouse)
    refresh(lakehouse, instance)
    after = snapshots(lakehouse)
    changed = {name for name in before if before[name] != after[name]}
    # Only the small per-run record of landing problems is written again.
    assert changed <= {"packetx_raw.landing_problems"}, changed


@pytest.mark.parametrize("between", ["rebuild", "refresh"])
def test_refreshes_and_rebuilds_of_one_day_follow_each_other_in_any_order(lakehouse, tmp_path, between):
    files = {name: make() for name, make in FILES.items()}
    instance = dg.DagsterInstance.ephemeral()
    grow(lakehouse, files, 0.3)
    refresh(lakehouse, instance)
    grow(lakehouse, files, 0.6)
    if between == "rebuild":  # the daily schedule or a backfill, between two refreshes
        assert materialize_range(lakehouse.defs, DAY, DAY, instance=instance, log_level="WARNING").success
    else:
        refresh(lakehouse, instance)
    grow(lakehouse, files, 1.0)
    refresh(lakehouse, instance)
    assert table_digests(lakehouse.settings) == table_digests(rebuilt_copy(lakehouse, tmp_path).settings)


# --- a refresh stopped anywhere, or overtaken, is caught up by the next one ------------------------------

#: Where a refresh is killed: after reading and archiving its new lines, before each layer's commit.
KILL_POINTS = ["tails", "commit:packetx_silver.packets", "commit:packetx_silver.conversations",
               "commit:packetx_gold.hourly_cells", "commit:packetx_gold.daily_user_bandwidth", "serving"]


def _site_files(_site=None) -> dict[str, bytes]:
    """Two devices of the sites' first day, without restarts (the file sums are then gold's)."""
    return {f"{user}-{START}.csv": generate_day(user, START, seed=5, options=GeneratorOptions(
        minutes_per_day=120, pairs_per_minute=12, bad_lines=2)) for user in ("alice", "bob-smith")}


def _grow_site(site, files: dict[str, bytes], fraction: float) -> None:
    site.settings.traffic_log_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (site.settings.traffic_log_dir / name).write_bytes(data[: int(len(data) * fraction)])


def _rebuilt_digests(site, tmp_path) -> dict:
    settings = Lakehouse.default_settings(tmp_path / "rebuilt")
    shutil.copytree(site.settings.traffic_log_dir, settings.traffic_log_dir)
    settings = settings.model_copy(update={"start_date": site.settings.start_date})
    assert materialize_range(build_definitions(settings), START, START, log_level="WARNING").success
    return table_digests(settings)


@pytest.mark.e2e  # run processes, killed and resumed
def test_a_refresh_killed_before_any_layers_commit_is_caught_up_by_the_next_refresh(make_site, tmp_path):
    sites = {point: make_site(point.replace(":", "-"), seed_landing=False) for point in KILL_POINTS}
    files = _site_files(None)  # the same files for every site
    for site in sites.values():
        _grow_site(site, files, 0.4)
    for site in sites.values():
        assert site.run(refresh=True).finish()["success"]
    for site in sites.values():
        _grow_site(site, files, 0.7)
    killed = {point: site.run(point, refresh=True) for point, site in sites.items()}
    for run in killed.values():
        run.wait_until_paused()
        run.kill()
    for site in sites.values():
        _grow_site(site, files, 1.0)
    healing = {point: site.run(refresh=True) for point, site in sites.items()}
    for point, run in healing.items():
        assert run.finish()["success"], point
    expected = _rebuilt_digests(next(iter(sites.values())), tmp_path)
    for point, site in sites.items():
        assert_tables_match_files(site.settings)
        assert table_digests(site.settings) == expected, point


@pytest.mark.e2e
def test_a_stalled_refresh_overtaken_by_a_newer_one_is_refused_and_redone(make_site, tmp_path):
    """Separate instances: nothing serialises A and B, so A's commits must be refused, not stale."""
    site = make_site("stalled", seed_landing=False)
    files = _site_files(site)
    _grow_site(site, files, 0.4)
    assert site.run(refresh=True).finish()["success"]
    other_home = site.root / "other_home"
    other_home.mkdir()
    write_instance_yaml(other_home)
    _grow_site(site, files, 0.7)
    a = site.run("tails", refresh=True)  # A archived and read its new lines, then stands still
    a.wait_until_paused()
    _grow_site(site, files, 1.0)
    assert site.run(home=other_home, refresh=True).finish()["success"]  # B takes in everything
    newest = table_digests(site.settings)
    a.signal(signal.SIGCONT)
    assert a.finish()["success"]
    assert table_digests(site.settings) == newest == _rebuilt_digests(site, tmp_path)
    with site.instance() as instance:
        run = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.SUCCESS][0]
        assert logged(instance, run.run_id, "rebuilding from fresh input")
