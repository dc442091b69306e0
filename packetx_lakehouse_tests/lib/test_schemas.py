"""The one home of every schema: every column of every table says what it holds and where it comes from."""

import pytest

from packetx_lakehouse.lib.schemas import COLUMN_GLOSSARY, TABLES_BY_LAYER, TableDef

TABLES = [t for layer in TABLES_BY_LAYER.values() for t in layer]


@pytest.mark.parametrize("table_def", TABLES, ids=lambda t: t.identifier)
def test_every_column_has_a_description(table_def: TableDef):
    missing = [name for name in table_def.schema.names if len(table_def.column_description(name)) < 10]
    assert missing == [], f"{table_def.identifier}: describe {missing} in COLUMN_GLOSSARY or column_notes"
    assert set(table_def.column_notes) <= set(table_def.schema.names), "a note for a column the table lacks"


@pytest.mark.parametrize("table_def", [t for t in TABLES if t.derived_from], ids=lambda t: t.identifier)
def test_every_derived_column_names_existing_upstream_columns(table_def: TableDef):
    assert set(table_def.lineage) == set(table_def.schema.names)
    upstream = set(table_def.derived_from.schema.names)
    unknown = {column: set(sources) - upstream for column, sources in table_def.lineage.items() if set(sources) - upstream}
    assert unknown == {}, f"{table_def.identifier} lineage names columns {table_def.derived_from.identifier} lacks"


def test_the_glossary_holds_only_columns_some_table_has():
    assert set(COLUMN_GLOSSARY) <= {name for t in TABLES for name in t.schema.names}


def test_a_note_overrides_the_glossary_only_for_its_table():
    hourly = next(t for t in TABLES if t.name == "hourly_bandwidth")
    silver = next(t for t in TABLES if t.identifier == "packetx_silver.packets")
    assert hourly.column_description("kb") != silver.column_description("kb") == COLUMN_GLOSSARY["kb"]
