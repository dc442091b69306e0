import datetime as dt

import duckdb
import pyarrow as pa

from packetx_lakehouse.lib.serving import duckdb_store


def test_a_whole_table_is_recorded_with_the_version_it_was_copied_from(tmp_path):
    with duckdb.connect(str(tmp_path / "serving.duckdb")) as con:
        assert duckdb_store.served_version(con, "gold.dim") is None  # a database from before versions
        duckdb_store.replace_table(con, "gold.dim", pa.table({"k": [1, 2]}), version=41)
        assert duckdb_store.served_version(con, "gold.dim") == 41
        duckdb_store.replace_table(con, "gold.dim", pa.table({"k": [3]}), version=42)
        assert duckdb_store.served_version(con, "gold.dim") == 42
        assert con.execute("SELECT k FROM gold.dim").fetchall() == [(3,)]
        duckdb_store.replace_table(con, "gold.dim", pa.table({"k": [4]}))  # no version: copied again next time
        assert duckdb_store.served_version(con, "gold.dim") is None


def test_replacing_days_leaves_the_other_days():
    day1, day2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
    with duckdb.connect() as con:
        duckdb_store.replace_days(con, "ops.partitions", pa.table({"log_date": [day1, day2], "rows": [1, 2]}),
                                  [day1, day2])
        duckdb_store.replace_days(con, "ops.partitions", pa.table({"log_date": [day2], "rows": [5]}), [day2])
        assert con.execute("SELECT * FROM ops.partitions ORDER BY log_date").fetchall() == [(day1, 1), (day2, 5)]
