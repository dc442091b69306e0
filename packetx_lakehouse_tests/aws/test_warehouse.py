"""The warehouse export against the machine's PostgreSQL (the protocol Redshift speaks)."""

import datetime as dt

import psycopg
import pyarrow as pa
import pytest

from packetx_lakehouse.lib.schemas import (
    GOLD_DATE_DIM,
    GOLD_DIRECTION_DIM,
    GOLD_IP_DIM,
    GOLD_PACKETS_FACT,
    GOLD_USERS_DIM,
)
from packetx_lakehouse.lib.schemas import STAR_DIMENSIONS as DIMENSIONS
from packetx_lakehouse.lib.serving import sql_warehouse
from packetx_lakehouse.lib.serving.sql_warehouse import (
    Warehouse,
    connection_info,
    migrations,
    redacted,
)

D1, D2 = dt.date(2026, 11, 18), dt.date(2026, 11, 19)
UTC = dt.UTC


def _t(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), UTC)


def _dims(users_versions: int = 2) -> dict:
    users = [
        dict(user_key=11, user_id=1, user="alice", local_ip="192.168.1.20", valid_from=_t(D1),
             valid_to=_t(D2) if users_versions == 2 else None, is_current=users_versions == 1, version=1),
    ]
    if users_versions == 2:
        users.append(dict(user_key=12, user_id=1, user="alice", local_ip="192.168.1.120", valid_from=_t(D2),
                          valid_to=None, is_current=True, version=2))
    return {
        GOLD_USERS_DIM: pa.Table.from_pylist(users, schema=GOLD_USERS_DIM.schema),
        GOLD_IP_DIM: pa.Table.from_pylist([
            dict(ip_key=1, ip="192.168.1.20", ip_version=4, is_private=True, scope="private"),
            dict(ip_key=2, ip="8.8.8.8", ip_version=4, is_private=False, scope="public"),
            dict(ip_key=3, ip="2001:db8::1", ip_version=6, is_private=False, scope="public"),
        ], schema=GOLD_IP_DIM.schema),
        GOLD_DATE_DIM: pa.Table.from_pylist([
            dict(date_key=int(d.strftime("%Y%m%d")) * 100, hour_start_utc=_t(d), date=d, hour=0,
                 day_of_week=d.isoweekday(), day_name=d.strftime("%A"), month=d.month, year=d.year,
                 is_weekend=d.isoweekday() > 5) for d in (D1, D2)
        ], schema=GOLD_DATE_DIM.schema),
        GOLD_DIRECTION_DIM: pa.Table.from_pylist([
            dict(direction_key=1, direction="inbound", description='public host, "quoted", comma'),
            dict(direction_key=2, direction="outbound", description="device to public host"),
        ], schema=GOLD_DIRECTION_DIM.schema),
    }


def _facts(day: dt.date, n: int) -> pa.Table:
    """``n`` hourly cells of one day (the first with no local IP)."""
    return pa.Table.from_pylist([
        dict(log_date=day, date_key=int(day.strftime("%Y%m%d")) * 100, hour_utc=_t(day), user_id=1,
             local_ip_key=None if i == 0 else 1, remote_ip_key=i + 2, direction_key=2, kb=0.1 * i + 1e6,
             minutes=1 + i % 60, rows=2 + i % 60) for i in range(n)
    ], schema=GOLD_PACKETS_FACT.schema)


def _snapshot(wh: Warehouse) -> dict[str, list[tuple]]:
    return {t.name: wh.read(t.name, t.key) for t in (*DIMENSIONS, GOLD_PACKETS_FACT)}


@pytest.fixture(params=["postgresql", "redshift"])
def warehouse(request, pg_database: str, warehouse_schema: str) -> Warehouse:
    """Both load paths against PostgreSQL: COPY, and the multi-row INSERTs Redshift gets."""
    wh = Warehouse(pg_database, warehouse_schema)
    wh.dialect = request.param
    return wh


def test_migrations_apply_once_in_order_and_match_the_gold_schemas(pg_database, warehouse_schema):
    wh = Warehouse(pg_database, warehouse_schema)
    versions = [m.version for m in migrations()]
    assert versions == sorted(versions) and versions[0] == "0001_star_schema"
    assert wh.migrate() == versions
    assert wh.migrate() == []
    assert wh.applied() == versions
    with psycopg.connect(pg_database) as conn:
        for table_def in (*DIMENSIONS, GOLD_PACKETS_FACT):
            columns = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position", (warehouse_schema, table_def.name))]
            assert columns == table_def.schema.names


def test_per_day_load_is_idempotent_and_keeps_other_days(warehouse):
    warehouse.migrate()
    warehouse.load([D1], _facts(D1, 3), _dims(users_versions=1))
    result = warehouse.load([D2], _facts(D2, 1200), _dims())
    assert result.rows == {"date_dim": 2, "ip_dim": 3, "users_dim": 2, "direction_dim": 2, "packets_fact": 1200}
    first = _snapshot(warehouse)
    assert len(first["packets_fact"]) == 1203
    assert first["direction_dim"][0][2] == 'public host, "quoted", comma'
    assert [(r[2], r[4]) for r in first["packets_fact"][:3]] == [(_t(D1), 1), (_t(D1), 1), (_t(D1), None)]

    warehouse.load([D2], _facts(D2, 1200), _dims())
    warehouse.load([D1], _facts(D1, 3), _dims())
    assert _snapshot(warehouse) == first

    warehouse.load([D2], _facts(D2, 5), _dims())  # a day shrinks: its old facts are gone
    assert [r[0] for r in _snapshot(warehouse)["packets_fact"]].count(D2) == 5


def test_scd2_in_the_warehouse_is_the_gold_dimension(warehouse):
    warehouse.migrate()
    warehouse.load([D1], _facts(D1, 1), _dims(users_versions=1))
    warehouse.load([D2], _facts(D2, 1), _dims(users_versions=2))
    with psycopg.connect(warehouse._url) as conn:
        current = conn.execute(f'SELECT local_ip FROM "{warehouse.schema}".users_current').fetchall()
        overlaps = conn.execute(
            f'SELECT count(*) FROM "{warehouse.schema}".users_dim a JOIN "{warehouse.schema}".users_dim b '
            "ON a.user_id = b.user_id AND a.user_key < b.user_key "
            "AND a.valid_from < coalesce(b.valid_to, 'infinity') AND b.valid_from < coalesce(a.valid_to, 'infinity')"
        ).fetchone()[0]
    assert current == [("192.168.1.120",)] and overlaps == 0


def test_a_failed_load_leaves_the_previous_load_intact(pg_database, warehouse_schema):
    wh = Warehouse(pg_database, warehouse_schema)
    wh.migrate()
    wh.load([D1], _facts(D1, 3), _dims())
    before = _snapshot(wh)
    broken = _dims()
    broken[GOLD_IP_DIM] = pa.concat_tables([broken[GOLD_IP_DIM], broken[GOLD_IP_DIM]])  # duplicate keys
    with pytest.raises(psycopg.errors.UniqueViolation):
        wh.load([D1], _facts(D1, 7), broken)
    assert _snapshot(wh) == before
    with pytest.raises(ValueError, match="outside the days"):
        wh.load([D2], _facts(D1, 1), _dims())


def test_a_row_grain_warehouse_migrates_to_hourly_facts_with_the_same_totals(pg_database, warehouse_schema,
                                                                           monkeypatch):
    wh = Warehouse(pg_database, warehouse_schema)
    monkeypatch.setattr(sql_warehouse, "migrations", lambda: migrations()[:2])  # a warehouse made before 0003
    wh.migrate()
    hour = _t(D1, 10)
    old = [  # (minute, local_ip_key, remote_ip_key, kb): a pair twice in one minute, an IP change at 10:30
        (0, 1, 2, 1.25), (0, 1, 2, 0.75), (59, 1, 2, 3.5), (5, 1, 3, 2.0), (40, 4, 2, 7.0), (45, None, 3, 0.001),
        (60, 1, 2, 10.0),
    ]
    with psycopg.connect(pg_database) as conn:
        conn.execute("SET TIME ZONE 'Asia/Kolkata'")  # truncating to the hour must not use the session's zone
        for line, (minute, local, remote, kb) in enumerate(old, start=2):
            ts = hour + dt.timedelta(minutes=minute)
            conn.execute(
                f'INSERT INTO "{warehouse_schema}".packets_fact VALUES (%s, %s, 1, %s, %s, 2, %s, %s, %s, %s)',
                (D1, int(ts.strftime("%Y%m%d%H")), local, remote, ts, kb, f"alice-{D1}.csv", line))
    monkeypatch.undo()

    assert wh.migrate() == ["0003_hourly_packets_fact"]
    assert wh.read("packets_fact", ["date_key", "local_ip_key", "remote_ip_key"]) == [
        # log_date, date_key, hour_utc, user_id, local, remote, direction, kb, minutes, rows
        (D1, 2026111810, hour, 1, 1, 2, 2, 5.5, 2, 3),
        (D1, 2026111810, hour, 1, 1, 3, 2, 2.0, 1, 1),
        (D1, 2026111810, hour, 1, 4, 2, 2, 7.0, 1, 1),
        (D1, 2026111810, hour, 1, None, 3, 2, 0.001, 1, 1),
        (D1, 2026111811, _t(D1, 11), 1, 1, 2, 2, 10.0, 1, 1),
    ]
    # The migrated table is the one a fresh warehouse has: loads replace its days as usual.
    wh.load([D1], _facts(D1, 3), _dims())
    assert len(wh.read("packets_fact", ["remote_ip_key"])) == 3


def test_urls_map_redshift_to_the_postgres_protocol_and_redact_credentials():
    assert connection_info("redshift://etl:pw@cluster.example.com/dev") == (
        "postgresql://etl:pw@cluster.example.com:5439/dev", "redshift")
    assert connection_info("postgresql://u@h:5432/db") == ("postgresql://u@h:5432/db", "postgresql")
    assert redacted("redshift://etl:s3cr3t@cluster.example.com:5439/dev") == "redshift://cluster.example.com:5439/dev"
    with pytest.raises(ValueError, match="postgresql:// or redshift://"):
        connection_info("mysql://x")
    with pytest.raises(RuntimeError) as error:
        Warehouse("postgresql://nobody:s3cr3t@127.0.0.1:1/db").connect()
    assert "s3cr3t" not in str(error.value) and error.value.__cause__ is None
