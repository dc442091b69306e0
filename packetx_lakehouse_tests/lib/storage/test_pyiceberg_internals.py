"""The PyIceberg internals the lakehouse relies on, pinned by name, signature, attribute and behaviour.

``lib/storage/pyiceberg_internals.py`` is the only product module allowed past PyIceberg's public
API. An upgrade that moves one of these names fails here first, naming it, instead of a write
failing at run time. When a test fails: re-check the adapter's use against the new version, fix
the adapter (keep its interface), then bump ``CHECKED_VERSION``.
"""

import ast
import datetime as dt
import inspect
import uuid
import warnings
from pathlib import Path

import pyarrow as pa
import pyiceberg
import pytest
from pyiceberg.expressions import AlwaysTrue, EqualTo
from pyiceberg.io import PY_IO_IMPL, load_file_io
from pyiceberg.schema import Schema
from pyiceberg.types import DateType, DoubleType, NestedField, StringType

import packetx_lakehouse
from packetx_lakehouse.lib.storage import pyiceberg_internals as internals
from packetx_lakehouse.lib.storage.iceberg import local_catalog

ADAPTER = Path(internals.__file__)
PACKAGE = Path(packetx_lakehouse.__file__).parent
#: Modules and names of PyIceberg's documented API that any product module may import.
PUBLIC_MODULES = {"pyiceberg.catalog", "pyiceberg.exceptions", "pyiceberg.expressions", "pyiceberg.manifest",
                  "pyiceberg.partitioning", "pyiceberg.schema", "pyiceberg.table.metadata", "pyiceberg.table.refs",
                  "pyiceberg.table.snapshots", "pyiceberg.transforms", "pyiceberg.types", "pyiceberg.io"}
PUBLIC_NAMES = {"pyiceberg.table": {"Table", "Transaction", "FileScanTask", "DataScan", "TableProperties"}}
#: Names, attributes and keywords outside the public API: only the adapter may use them. (A
#: transaction's ``_table`` is left out: our own classes have a ``_table`` too.)
PRIVATE_ATTRIBUTES = {"_scan", "_updates", "_process_manifests", "_target_size_bytes", "_min_count_to_merge",
                      "_merge_enabled", "fs_by_scheme", "get_fs", "parse_location"}
PRIVATE_KEYWORDS = {"_isolation_operation"}

#: module -> name -> the parameters the adapter passes (empty: used without keywords of ours).
SIGNATURES: dict[str, dict[str, set[str]]] = {
    "pyiceberg.io.pyarrow": {
        "_check_pyarrow_schema_compatible": {"requested_schema", "provided_schema", "format_version"},
        "_dataframe_to_data_files": {"table_metadata", "df", "io", "write_uuid"},
        "bin_pack_arrow_table": {"tbl", "target_file_size"},
        "pyarrow_to_schema": {"schema", "name_mapping", "format_version", "downcast_ns_timestamp_to_us"},
        "write_file": {"io", "table_metadata", "tasks"},
        "ArrowScan": {"table_metadata", "io", "projected_schema", "row_filter"},
        "PyArrowFileIO": set(),
    },
    "pyiceberg.table": {
        "WriteTask": {"write_uuid", "task_id", "record_batches", "schema", "partition_key"},
        "DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE": set(),
    },
    "pyiceberg.partitioning": {
        "PartitionKey": {"field_values", "partition_spec", "schema"},
        "PartitionFieldValue": {"field", "value"},
    },
    "pyiceberg.table.update.snapshot": {
        "ExpireSnapshots": {"transaction"},
        "_OverwriteFiles": {"operation", "transaction", "io", "snapshot_properties"},
        "_MergeAppendFiles": set(),
    },
    "pyiceberg.serializers": {"FromInputFile": set()},
    "pyiceberg.utils.config": {"Config": set()},
    "pyiceberg.utils.properties": {"property_as_int": {"properties", "property_name", "default"},
                                   "property_as_bool": {"properties", "property_name", "default"}},
}
METHODS = {
    ("pyiceberg.table", "Transaction", "delete"): {"delete_filter", "snapshot_properties", "_isolation_operation"},
    ("pyiceberg.table", "Transaction", "_scan"): {"row_filter"},
    ("pyiceberg.table", "Transaction", "__init__"): {"table"},
    ("pyiceberg.table.update.snapshot", "_MergeAppendFiles", "_process_manifests"): {"manifests"},
    ("pyiceberg.table.update.snapshot", "_OverwriteFiles", "delete_data_file"): {"data_file"},
    ("pyiceberg.table.update.snapshot", "_OverwriteFiles", "append_data_file"): {"data_file"},
    ("pyiceberg.io.pyarrow", "ArrowScan", "to_table"): {"tasks"},
    ("pyiceberg.table.update.snapshot", "ExpireSnapshots", "by_ids"): {"snapshot_ids"},
    ("pyiceberg.utils.config", "Config", "get_bool"): {"key"},
    ("pyiceberg.serializers", "FromInputFile", "table_metadata"): {"input_file"},
}
SCHEMA = Schema(NestedField(1, "log_date", DateType(), required=False), NestedField(2, "user", StringType(), required=False),
                NestedField(3, "kb", DoubleType(), required=False))
DAY, NEXT = dt.date(2026, 3, 1), dt.date(2026, 3, 2)


def _product_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p != ADAPTER]


@pytest.mark.parametrize("path", _product_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_product_module_but_the_adapter_reaches_past_pyicebergs_public_api(path):
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyiceberg"):
            for alias in node.names:
                public = node.module in PUBLIC_MODULES or alias.name in PUBLIC_NAMES.get(node.module, set())
                if not public or alias.name.startswith("_"):
                    found.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f".{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.keyword) and node.arg in PRIVATE_KEYWORDS:
            found.append(f"{node.arg}= (line {node.lineno})")
    assert found == [], f"use packetx_lakehouse.lib.storage.pyiceberg_internals instead: {found}"


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in SIGNATURES.items() for n in names])
def test_each_internal_still_exists_with_the_parameters_the_adapter_passes(module, name):
    target = getattr(__import__(module, fromlist=[name]), name, None)
    assert target is not None, f"pyiceberg {pyiceberg.__version__}: {module}.{name} is gone"
    missing = SIGNATURES[module][name] - set(inspect.signature(target).parameters) if SIGNATURES[module][name] else set()
    assert not missing, f"pyiceberg {pyiceberg.__version__}: {module}.{name} no longer takes {sorted(missing)}"


@pytest.mark.parametrize(("module", "cls", "method"), list(METHODS))
def test_each_method_still_takes_the_keywords_the_adapter_passes(module, cls, method):
    target = getattr(getattr(__import__(module, fromlist=[cls]), cls), method)
    missing = METHODS[module, cls, method] - set(inspect.signature(target).parameters)
    assert not missing, f"pyiceberg {pyiceberg.__version__}: {cls}.{method} no longer takes {sorted(missing)}"


def test_the_adapter_imports_only_names_this_contract_pins():
    tree = ast.parse(ADAPTER.read_text())
    pinned = {(m, n) for m, names in SIGNATURES.items() for n in names}
    pinned |= {(m, c) for m, c, _ in METHODS}
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module and node.module.startswith("pyiceberg") for alias in node.names}
    unpinned = {(m, n) for m, n in imported
                if (m, n) not in pinned and m not in PUBLIC_MODULES and n not in PUBLIC_NAMES.get(m, set())}
    assert unpinned == set(), f"pin these in SIGNATURES (and check their use): {sorted(unpinned)}"


def test_the_pinned_version_is_the_one_the_contract_was_checked_against():
    assert pyiceberg.__version__ == internals.CHECKED_VERSION, (
        f"PyIceberg {pyiceberg.__version__}: re-check pyiceberg_internals.py (it passed on "
        f"{internals.CHECKED_VERSION}), then bump CHECKED_VERSION")


# --- behaviour ------------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    catalog = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse")
    catalog.create_namespace("ns")
    created = catalog.create_table("ns.t", schema=SCHEMA, properties={
        "commit.manifest-merge.enabled": "true", "commit.manifest.min-count-to-merge": "2"})
    with created.update_spec() as spec:
        spec.add_identity("log_date")
    return created.refresh()


def rows(day: dt.date, users: list[str]) -> pa.Table:
    return pa.table({"log_date": pa.array([day] * len(users), pa.date32()), "user": pa.array(users, pa.large_string()),
                     "kb": pa.array([1.0] * len(users))})


def write(table, data: pa.Table, *, replace: bool = False, expire: list[int] = ()) -> None:
    with internals.MetadataReusingTransaction(table) as txn:
        replaced = [task.file for task in internals.plan_files(txn, EqualTo("log_date", data.column(0)[0].as_py().isoformat()))]
        with internals.MergingOverwrite(txn, {"writer": "test"}) as overwrite:
            for data_file in replaced if replace else []:
                overwrite.delete_data_file(data_file)
            for data_file in internals.write_data_files(txn, table, [data], ["log_date"], overwrite.commit_uuid):
                overwrite.append_data_file(data_file)
        if expire:
            internals.stage_expiry(txn, list(expire))


def test_the_transaction_reuses_its_metadata_until_an_update_is_staged(table):
    txn = internals.MetadataReusingTransaction(table)
    first = txn.table_metadata
    assert txn.table_metadata is first
    txn.set_properties({"k": "v"})
    assert txn.table_metadata is not first and txn.table_metadata.properties["k"] == "v"


def test_a_merging_overwrite_is_one_snapshot_drops_whole_files_and_merges_manifests(table):
    write(table, rows(DAY, ["a", "b"]))
    write(table, rows(NEXT, ["c"]))
    write(table.refresh(), rows(DAY, ["d"]), replace=True)
    table = table.refresh()
    snapshots = table.metadata.snapshots
    assert len(snapshots) == 3 and snapshots[-1].summary.operation.value == "overwrite"
    assert snapshots[-1].summary["writer"] == "test"
    assert len(table.current_snapshot().manifests(table.io)) == 1, "manifests were not merged"
    assert sorted(table.scan().to_arrow().column("user").to_pylist()) == ["c", "d"]


def test_written_data_files_carry_their_partition_and_rows(table):
    with internals.MetadataReusingTransaction(table) as txn:
        files = list(internals.write_data_files(txn, table, [rows(DAY, ["a", "b"]), rows(NEXT, ["c"])], ["log_date"],
                                                uuid.uuid4()))
    assert sorted((f.partition[0], f.record_count) for f in files) == [(DAY.toordinal() - 719163, 2),
                                                                      (NEXT.toordinal() - 719163, 1)]


def test_planned_tasks_read_back_whole_without_a_filter(table):
    write(table, rows(DAY, ["a", "b"]))
    txn = internals.MetadataReusingTransaction(table.refresh())
    tasks = internals.plan_files(txn, AlwaysTrue())
    assert internals.read_tasks(table.refresh(), tasks).column("user").to_pylist() == ["a", "b"]


def test_a_delete_of_part_of_a_file_rewrites_it_as_an_overwrite_without_a_warning(table):
    write(table, rows(DAY, ["a", "b"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with table.refresh().transaction() as txn:
            internals.delete_as_overwrite(txn, EqualTo("user", "a"), {"writer": "test"})
            internals.delete_as_overwrite(txn, EqualTo("user", "nobody"), {"writer": "test"})
    table = table.refresh()
    assert table.scan().to_arrow().column("user").to_pylist() == ["b"]
    assert table.current_snapshot().summary.operation.value == "overwrite"


def test_an_expiry_staged_in_a_write_and_the_lost_race_on_it_are_recognised(table, tmp_path):
    write(table, rows(DAY, ["a"]))
    write(table.refresh(), rows(DAY, ["b"]), replace=True)
    oldest = table.refresh().metadata.snapshots[0].snapshot_id
    # Another process's view of the table, loaded before our expiry (``refresh`` updates in place).
    stale = local_catalog(tmp_path / "catalog.db", tmp_path / "warehouse").load_table("ns.t")
    write(table.refresh(), rows(NEXT, ["c"]), expire=[oldest])
    assert oldest not in {s.snapshot_id for s in table.refresh().metadata.snapshots}
    with pytest.raises(ValueError) as raised:
        with stale.transaction() as txn:  # no requirement: applied to fresh metadata, where the snapshot is gone
            internals.stage_expiry(txn, [oldest])
    assert internals.lost_to_concurrent_expiry(raised.value), raised.value
    assert not internals.lost_to_concurrent_expiry(ValueError("something else"))


def test_an_incompatible_arrow_schema_is_refused_before_anything_is_written(table):
    bad = rows(DAY, ["a"]).cast(pa.schema([("log_date", pa.date32()), ("user", pa.large_string()), ("kb", pa.string())]))
    with pytest.raises(ValueError):
        internals.check_schema_compatible(table.metadata, bad.schema)
    internals.check_schema_compatible(table.metadata, rows(DAY, ["a"]).schema)


def test_a_tables_files_are_listed_and_a_logged_metadata_version_is_read_back(table):
    write(table, rows(DAY, ["a"]))
    table = table.refresh()
    listed = {uri: size for uri, size, modified in internals.list_location(table.io, table.location())}
    data_files = [task.file.file_path for task in table.scan().plan_files()]
    assert all(any(uri.endswith(Path(path).name) for uri in listed) for path in data_files)
    assert all(size > 0 for size in listed.values())
    logged = table.metadata.metadata_log[-1].metadata_file
    assert internals.read_metadata_file(table.io, logged).table_uuid == table.metadata.table_uuid


def test_fsspec_file_io_lists_a_local_location_too(table):
    write(table, rows(DAY, ["a"]))
    table = table.refresh()
    fsspec_io = load_file_io({PY_IO_IMPL: "pyiceberg.io.fsspec.FsspecFileIO"}, table.location())
    via_fsspec = {Path(uri).name for uri, _, _ in internals.list_location(fsspec_io, table.location())}
    via_arrow = {Path(uri).name for uri, _, _ in internals.list_location(table.io, table.location())}
    assert via_fsspec == via_arrow and via_arrow
