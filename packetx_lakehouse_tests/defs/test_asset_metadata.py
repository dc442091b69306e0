"""The Dagster UI reads well: every asset is described, owned and kinded, and every
materialisation says at a glance what it wrote (rows, preview, Iceberg snapshot and location)."""

import datetime as dt

import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.conventions import asset_key
from packetx_lakehouse.defs.metadata import markdown_table, readable, shorten
from packetx_lakehouse.defs.operations.watch import WATCH_JOB
from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH, TABLES_BY_LAYER
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings

DAY = dt.date(2026, 11, 20)
STORAGE_KINDS = {"iceberg", "duckdb", "s3", "dynamodb", "postgres", "redshift"}
#: Every optional serving target switched on, so the audit covers every asset any deployment has.
EVERY_ASSET = Settings(env="aws", s3_bucket="audit", warehouse_url="postgresql://audit@127.0.0.1/audit")


@pytest.mark.parametrize("settings", [Settings(), EVERY_ASSET], ids=["local", "aws+warehouse"])
def test_every_asset_has_a_description_owners_and_a_storage_kind(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 30, name
        assert node.owners == ["team:packetx-data"], name
        assert node.kinds & STORAGE_KINDS, f"{name}: kinds {node.kinds}"


def test_every_materialisation_shows_rows_and_a_preview_and_iceberg_ones_their_snapshot(lakehouse):
    lakehouse.write_log(f"alice-{DAY}.csv", f"alice,{DAY} 10:00,8.8.8.8,192.168.1.20,12.5,12.5\n"
                        f"alice,{DAY} 10:01,192.168.1.20,192.168.1.30,3,3\n")
    result = materialize_range(lakehouse.defs, DAY, DAY, log_level="WARNING")
    at = {"ops": {"device_silence": {"config": {"at": f"{DAY}T12:00"}}}}
    watch = lakehouse.defs.resolve_job_def(WATCH_JOB).execute_in_process(run_config=at)
    by_key = {e.asset_key.to_user_string(): e.materialization.metadata
              for e in result.get_asset_materialization_events() + watch.get_asset_materialization_events()}
    assert len(by_key) == len(lakehouse.defs.resolve_asset_graph().get_all_asset_keys())
    for name, metadata in by_key.items():
        if name == "packetx_raw/raw_archive":  # files, not a table: it lists them instead
            assert "file_list" in metadata
            continue
        assert isinstance(metadata["dagster/row_count"].value, int), name
        assert "preview" in metadata, name
        if name.startswith("packetx_"):
            assert metadata["iceberg/snapshot_id"].value not in ("", "None"), name
            assert metadata["iceberg/location"].value.startswith("file://"), name
            assert metadata["dagster/table_name"].value == name.replace("/", "."), name
            # The columns are on the spec (static): no materialisation repeats them.
            assert "dagster/column_schema" not in metadata, name


@pytest.mark.parametrize("settings", [Settings(), EVERY_ASSET], ids=["local", "aws+warehouse"])
def test_every_table_asset_shows_its_described_columns_before_any_run(settings):
    """Definition metadata, not materialisation metadata: the UI has it on a fresh install."""
    graph = build_definitions(settings).resolve_asset_graph()
    tables = {asset_key(t): t for layer in TABLES_BY_LAYER.values() for t in layer}
    assert set(tables) <= set(graph.get_all_asset_keys())
    for key, table_def in tables.items():
        metadata = graph.get(key).metadata
        columns = metadata["dagster/column_schema"].columns
        assert [(c.name, c.description) for c in columns] == [
            (f.name, table_def.column_description(f.name)) for f in table_def.schema], key
        assert all(c.description for c in columns), key
        assert {c.type for c in columns} <= {"string", "long", "double", "boolean", "date", "timestamp", "timestamptz"}
        lineage = metadata.get("dagster/column_lineage")
        if table_def.derived_from is None:
            assert lineage is None, key
        else:
            assert set(lineage.deps_by_column) == set(table_def.schema.names), key
            assert {dep.asset_key for deps in lineage.deps_by_column.values() for dep in deps} == {
                asset_key(table_def.derived_from)}, key


def test_gold_column_lineage_traces_kb_to_silver():
    node = build_definitions(Settings()).resolve_asset_graph().get(asset_key(GOLD_DAILY_USER_BANDWIDTH))
    deps = node.metadata["dagster/column_lineage"].deps_by_column["outbound_kb"]
    assert {(d.asset_key.to_user_string(), d.column_name) for d in deps} == {
        ("packetx_silver/packets", "kb"), ("packetx_silver/packets", "direction"),
        ("packetx_silver/packets", "is_restart_replay")}


@pytest.mark.parametrize(("value", "shown"), [
    (60974200.089999996, "60,974,200.09"), (12.5, "12.5"), (3.0, "3"), (0.00014027277865215172, "0.00014"),
    (0.0, "0"), (float("nan"), "NaN"), (-2.25, "-2.25"), (1875, "1875"), ("a|b", "a|b"),
])
def test_previews_show_floats_as_people_read_them(value, shown):
    assert readable(value) == shown


def test_markdown_metadata_is_cut_so_hostile_values_cost_bytes_not_megabytes():
    hostile = "alice," + "9" * 5_000_000 + "|\x00\n"
    table = markdown_table(["line", "reason"], [(hostile, "x")] * 50).value
    assert len(table) < 3_000
    assert "…[+4,999,929 chars]" in table
    assert table.endswith("… 30 more rows")
    assert shorten("al\x00ice|", 80) == "al\\x00ice|"
