import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.definitions import defs as load_defs
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.devices.samples import sample_captures
from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.limits import IngestLimits
from packetx_lakehouse.settings import DEFAULT_START_DATE, Settings
from packetx_lakehouse_harness.devserver import PATIENCE


def test_definitions_load_with_expected_assets_partitions_and_resources(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the code location reads .env from here: not a developer's
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"packetx_raw/raw_archive", "packetx_raw/packets", "packetx_raw/quarantine"} <= keys
    partitions = graph.get(dg.AssetKey(["packetx_raw", "packets"])).partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.start.date().isoformat() == os.environ.get("PACKETX_START_DATE", DEFAULT_START_DATE)
    assert partitions.end_offset == 1  # today's growing file is ingestable now
    assert {"iceberg", "landing", "raw_archive", "device_timezones", "duckdb"} <= set(defs.resources)


def test_embedded_default_points_at_local_storage_under_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the code location reads .env from here: not a developer's
    resources = load_defs().resources
    assert resources["iceberg"].kind == "sql"
    assert resources["iceberg"].sqlite_path == "data/lakehouse/catalog.db"
    assert resources["landing"].root == "data/traffic_log"
    assert resources["duckdb"].database == "data/serving/packetx.duckdb"


def test_partitions_and_schedules_follow_the_settings_passed_in():
    defs = build_definitions(Settings(start_date="2024-01-01", partition_timezone="Europe/Berlin"))
    partitions = defs.resolve_asset_graph().get(dg.AssetKey(["packetx_raw", "packets"])).partitions_def
    assert (partitions.start.date().isoformat(), partitions.timezone) == ("2024-01-01", "Europe/Berlin")
    assert {s.execution_timezone for s in defs.schedules} == {"Europe/Berlin"}


@pytest.mark.e2e  # `dagster definitions validate` and `dg check defs`, as a user types them
def test_dagster_and_dg_both_load_the_one_definitions_module():
    """workspace.yaml (dagster dev) and [tool.dg] (dg dev) point at the same module, and it validates."""
    root = Path(__file__).resolve().parents[1]
    bin_dir = Path(sys.executable).parent
    validate = subprocess.run([bin_dir / "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                              cwd=root, capture_output=True, text=True, timeout=PATIENCE)
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert "All code locations passed validation" in validate.stderr + validate.stdout
    check = subprocess.run([bin_dir / "dg", "check", "defs"], cwd=root, capture_output=True, text=True, timeout=PATIENCE)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr


def test_dagster_dev_and_dg_dev_register_the_code_location_under_one_name():
    """workspace.yaml (`dagster dev`), [tool.dg.project] (`dg dev`) and Dagster's component loader agree.

    Unset, dg names the location after the project, the loader after the checkout's folder (whatever
    a clone is called) and `dagster dev` after the module: a warning on every load, and sensor switches
    set in one UI are off in the other.
    """
    root = Path(__file__).resolve().parents[1]
    workspace = yaml.safe_load((root / "workspace.yaml").read_text())
    served = {entry["python_module"].get("location_name") for entry in workspace["load_from"]}
    dg_project = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    loader = dg.ComponentTree.for_project(root).code_location_name
    assert served == {dg_project.get("code_location_name")} == {loader} == {"packetx_lakehouse"}


def _documented(path: Path) -> set[str]:
    """Variables named in the first column of a markdown table's rows."""
    rows = [line.split("|")[1] for line in path.read_text().splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`([A-Z0-9_]+)`", cell)}


def test_every_variable_settings_read_is_documented():
    """The README's table and .env.example hold every variable; the distributed profile's table those every
    host must agree on (a worker with another start date refuses the webserver's days)."""
    root = Path(__file__).resolve().parents[1]
    read = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        read.add(alias if isinstance(alias, str) else alias.choices[0])
    packetx = {name for name in read if name.startswith("PACKETX_")}
    assert len(packetx) > 20
    assert read - _documented(root / "README.md") == set()
    example = set(re.findall(r"^# ([A-Z0-9_]+)=", (root / ".env.example").read_text(), flags=re.M))
    assert packetx - example == set()
    assert {"PACKETX_START_DATE", "PACKETX_TIMEZONE", "PACKETX_DATA_DIR", "PACKETX_CATALOG_URL"} <= _documented(
        root / "docs" / "distributed.md")


def test_landing_bounds_come_from_the_environment_and_a_typo_stops_the_run(monkeypatch):
    assert Settings.from_env().ingest_limits == IngestLimits()
    monkeypatch.setenv("PACKETX_MAX_FILE_BYTES", "67_108_864")
    monkeypatch.setenv("PACKETX_MAX_LINE_BYTES", "1024")
    monkeypatch.setenv("PACKETX_MAX_FILE_LINES", "1000000")
    assert Settings.from_env().ingest_limits == IngestLimits(64 << 20, 1024, 1_000_000)
    monkeypatch.setenv("PACKETX_MAX_LINE_BYTES", "4k")
    with pytest.raises(ValueError, match="PACKETX_MAX_LINE_BYTES must be a positive whole number, not '4k'"):
        Settings.from_env()


def test_the_default_start_is_the_first_day_of_data_the_project_ships(monkeypatch):
    """A fresh install's partitions start with its data (the real captures), not 690 empty days before it;
    and the start is a fixed date, so the webserver, the daemon and every run agree on the partitions."""
    monkeypatch.delenv("PACKETX_START_DATE", raising=False)
    first_sample = min(parse_log_file_name(p.name).date for p in sample_captures())
    assert DEFAULT_START_DATE == first_sample.isoformat()
    assert Settings.from_env().start_date == Settings().start_date == DEFAULT_START_DATE


@pytest.mark.e2e  # a fresh interpreter loads the code location
def test_loading_the_code_location_raises_no_warning_at_all(tmp_path):
    """No DeprecationWarning, BetaWarning or PreviewWarning from our definitions, on any deployment."""
    program = """
import warnings
warnings.simplefilter("error")
from packetx_lakehouse.definitions import build_definitions, defs
from packetx_lakehouse.settings import Settings
for loaded in (defs(), build_definitions(Settings(env="aws", s3_bucket="b", warehouse_url="postgresql://u@h/d"))):
    graph = loaded.resolve_asset_graph()
    loaded.resolve_all_job_defs()
    [loaded.resolve_sensor_def(s.name) for s in loaded.sensors]
    [loaded.resolve_schedule_def(s.name) for s in loaded.schedules]
print("loaded", len(list(graph.get_all_asset_keys())))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=PATIENCE,
                          cwd=tmp_path)  # no developer's .env
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[1]) >= 16, done.stdout  # aws + warehouse: every asset any deployment has


def test_the_project_instance_evaluates_automation_in_a_sensor_that_runs_by_default(tmp_path, monkeypatch):
    """Automation conditions run in ``automation_condition_sensor``, running without a click; the job
    page's "Auto-materialize" tag is Dagster's pre-sensor switch, left to the user (docs/operations.md)."""
    from packetx_lakehouse.runner import project_instance

    (tmp_path / "dagster.yaml").write_text((Path(__file__).resolve().parents[1] / "dagster.yaml").read_text())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # the instance's storage paths are relative to the working directory
    with project_instance(Settings(), tmp_path) as instance:
        assert instance.auto_materialize_use_sensors
        assert instance.get_settings("nux") == {"enabled": False}
        assert Path(instance.root_directory).resolve() == (tmp_path / "data" / "dagster").resolve()
    sensor = build_definitions(Settings()).resolve_sensor_def("automation_condition_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_second_data_directory_is_a_second_lakehouse_dagster_instance_included(tmp_path, monkeypatch):
    """PACKETX_DATA_DIR alone moves Dagster's runs too: the instance lives in ``<data dir>/dagster``, made
    from the project's dagster.yaml, and nothing lands in the working directory or the checkout."""
    from packetx_lakehouse.runner import project_instance

    project = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PACKETX_DATA_DIR", str(tmp_path / "lake2"))

    @dg.asset
    def one() -> int:
        return 1

    with project_instance(Settings.from_env(), project) as second:
        run_id = dg.materialize([one], instance=second).run_id
        assert Path(second.root_directory) == (tmp_path / "lake2" / "dagster").resolve()
        assert second.get_settings("concurrency")["pools"] == {"default_limit": 1}  # the project's instance
    assert (tmp_path / "lake2" / "dagster" / "history" / "runs.db").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake2"]
    assert not {"history", "storage", "schedules", "logs", ".logs_queue"} & {p.name for p in project.iterdir()}
    monkeypatch.delenv("PACKETX_DATA_DIR")
    with project_instance(Settings.from_env(), project) as first:
        assert run_id not in {run.run_id for run in first.get_runs()}
        assert Path(first.root_directory) == (tmp_path / "data" / "dagster").resolve()


@pytest.mark.e2e  # `dg scaffold` and `dg check` in a copy of the project
def test_dg_scaffold_defs_adds_an_asset_beside_ours_without_loading_anything_twice(tmp_path):
    """`dg scaffold defs` writes into packetx_lakehouse/defs/; definitions.py loads that folder too."""
    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if name.startswith("packetx_lakehouse/") or name in ("pyproject.toml", "workspace.yaml", "dagster.yaml"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes((root / name).read_bytes())
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "VIRTUAL_ENV": str(bin_dir.parent), "HOME": str(tmp_path)}

    def dg(*args: str) -> str:
        done = subprocess.run([bin_dir / "dg", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=PATIENCE)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    before = [a["asset_key"] for a in json.loads(dg("list", "defs", "--json"))["assets"]]
    dg("scaffold", "defs", "dagster.asset", "my_new_asset.py")
    assert (tmp_path / "packetx_lakehouse" / "defs" / "my_new_asset.py").is_file()
    after = [a["asset_key"] for a in json.loads(dg("list", "defs", "--json"))["assets"]]
    assert sorted(after) == sorted([*before, "my_new_asset"]) and len(set(after)) == len(after)
    assert "packetx_gold/daily_user_bandwidth" in before


def test_executor_catalog_and_backfill_runs_are_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("PACKETX_EXECUTOR", "multiprocess")
    monkeypatch.setenv("PACKETX_CATALOG_URL", "postgresql://packetx:s3cret@db.internal:5432/catalog")
    monkeypatch.setenv("PACKETX_ICEBERG_WAREHOUSE", "file:///mnt/shared/warehouse")
    monkeypatch.setenv("PACKETX_BACKFILL_DAYS_PER_RUN", "7")
    settings = Settings.from_env()
    assert "s3cret" not in repr(settings)
    defs = build_definitions(settings)
    assert defs.executor.name == "multiprocess"
    catalog = defs.resources["iceberg"]
    # The UI shows the variable's name, never the URL with its password.
    assert (catalog.kind, catalog.warehouse) == ("sql", "file:///mnt/shared/warehouse")
    assert "s3cret" not in str(catalog.model_dump()) and "PACKETX_CATALOG_URL" in str(catalog.model_dump())
    graph = defs.resolve_asset_graph()
    assert {graph.get(key).backfill_policy for key in graph.get_all_asset_keys() if graph.get(key).partitions_def} == {
        dg.BackfillPolicy.multi_run(max_partitions_per_run=7)}


@pytest.mark.parametrize(("name", "value"), [("PACKETX_EXECUTOR", "celery"), ("PACKETX_BACKFILL_DAYS_PER_RUN", "0")])
def test_a_wrong_executor_or_day_count_stops_at_load_with_its_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()


def test_the_default_runs_in_process_on_the_local_sqlite_catalog():
    defs = build_definitions(Settings())
    assert defs.executor.name == "in_process"
    assert defs.resources["iceberg"].url == ""


def test_the_catalog_resource_opens_the_url_from_the_environment_outside_a_run_too(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKETX_CATALOG_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    catalog = open_catalog(Settings.from_env())  # as the demo does
    assert catalog.properties["uri"] == f"sqlite:///{tmp_path / 'shared.db'}"
