"""The PyIceberg internals ``lib/storage/iceberg.py`` relies on, pinned as a contract.

The write path replaces a day in one commit with its own file writing (zero-copy partition
slices) and expires snapshots inside that commit; PyIceberg has no public API for either (see
docs/operations.md, "Why not dagster-iceberg"). These names are private or undocumented, so an
upgrade may change them without notice: this test fails first, naming what moved, instead of a
write failing at run time. When it fails, re-check each use in iceberg.py against the new
version, then update the contract below.
"""

import ast
import inspect
from pathlib import Path

import pyiceberg
import pytest

import packetx_lakehouse.lib.storage.iceberg as iceberg_module

#: The version this contract was checked against.
CHECKED_VERSION = "0.12.0"
#: module -> name -> the parameters our calls pass (empty: used without calling it with keywords).
CONTRACT: dict[str, dict[str, set[str]]] = {
    "pyiceberg.io.pyarrow": {
        "_check_pyarrow_schema_compatible": {"requested_schema", "provided_schema", "format_version"},
        "_dataframe_to_data_files": {"table_metadata", "df", "io", "write_uuid"},
        "bin_pack_arrow_table": {"tbl", "target_file_size"},
        "pyarrow_to_schema": {"schema", "name_mapping", "format_version", "downcast_ns_timestamp_to_us"},
        "write_file": {"io", "table_metadata", "tasks"},
        "ArrowScan": {"table_metadata", "io", "projected_schema", "row_filter"},
    },
    "pyiceberg.table": {
        "WriteTask": {"write_uuid", "task_id", "record_batches", "schema", "partition_key"},
        "DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE": set(),
        "Transaction": set(), "Table": set(), "TableProperties": set(),
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
    "pyiceberg.utils.config": {"Config": set()},
    "pyiceberg.utils.properties": {"property_as_int": {"properties", "property_name", "default"},
                                   "property_as_bool": {"properties", "property_name", "default"}},
}
#: Methods called with private or unusual keywords.
METHODS = {
    ("pyiceberg.table", "Transaction", "delete"): {"delete_filter", "snapshot_properties", "_isolation_operation"},
    ("pyiceberg.table", "Transaction", "update_snapshot"): {"snapshot_properties"},
    ("pyiceberg.table", "Transaction", "_scan"): {"row_filter"},
    # _MetadataReusingTransaction: built like Table.transaction() builds one; reads _table, _updates.
    ("pyiceberg.table", "Transaction", "__init__"): {"table"},
    ("pyiceberg.table.update.snapshot", "_MergeAppendFiles", "_process_manifests"): {"manifests"},
    ("pyiceberg.table.update.snapshot", "_OverwriteFiles", "delete_data_file"): {"data_file"},
    ("pyiceberg.io.pyarrow", "ArrowScan", "to_table"): {"tasks"},
    ("pyiceberg.table.update.snapshot", "ExpireSnapshots", "by_ids"): {"snapshot_ids"},
    ("pyiceberg.utils.config", "Config", "get_bool"): {"key"},
}
#: Public modules whose imports need no contract (stable, documented API).
PUBLIC = {"pyiceberg.catalog", "pyiceberg.exceptions", "pyiceberg.expressions", "pyiceberg.manifest",
          "pyiceberg.table.metadata", "pyiceberg.table.snapshots", "pyiceberg.transforms"}


def _imports() -> set[tuple[str, str]]:
    tree = ast.parse(Path(iceberg_module.__file__).read_text())
    return {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and node.module and node.module.startswith("pyiceberg") for alias in node.names}


def test_every_pyiceberg_import_outside_the_public_api_is_in_the_contract():
    unchecked = {(m, n) for m, n in _imports() if m not in PUBLIC and n not in CONTRACT.get(m, {})}
    assert unchecked == set(), f"add these to CONTRACT (and check their use): {sorted(unchecked)}"


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in CONTRACT.items() for n in names])
def test_each_internal_still_exists_with_the_parameters_we_pass(module, name):
    target = getattr(__import__(module, fromlist=[name]), name, None)
    assert target is not None, f"pyiceberg {pyiceberg.__version__}: {module}.{name} is gone"
    if CONTRACT[module][name]:
        parameters = set(inspect.signature(target).parameters)
        missing = CONTRACT[module][name] - parameters
        assert not missing, f"pyiceberg {pyiceberg.__version__}: {module}.{name} no longer takes {sorted(missing)}"


@pytest.mark.parametrize(("module", "cls", "method"), list(METHODS))
def test_each_method_still_takes_the_keywords_we_pass(module, cls, method):
    target = getattr(getattr(__import__(module, fromlist=[cls]), cls), method)
    missing = METHODS[module, cls, method] - set(inspect.signature(target).parameters)
    assert not missing, f"pyiceberg {pyiceberg.__version__}: {cls}.{method} no longer takes {sorted(missing)}"


def test_a_transaction_still_keeps_its_table_and_staged_updates_where_we_read_them():
    from pyiceberg.table import Transaction

    assert isinstance(Transaction.table_metadata, property)
    source = inspect.getsource(Transaction.__init__)
    assert "self._table = table" in source and "self._updates = ()" in source


def test_the_pinned_version_is_the_one_the_contract_was_checked_against():
    assert pyiceberg.__version__ == CHECKED_VERSION, (
        f"PyIceberg {pyiceberg.__version__}: re-check the contract above (it passed on {CHECKED_VERSION}), then bump it")
