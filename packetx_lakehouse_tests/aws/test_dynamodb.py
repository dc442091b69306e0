"""DynamoDB serving over HTTP to moto: the table, a day's exact replacement, surfaced failures."""

import datetime as dt
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.lib.schemas import GOLD_DAILY_USER_BANDWIDTH
from packetx_lakehouse.lib.serving import dynamodb_table
from packetx_lakehouse.lib.storage.iceberg import ensure_table, replace_partitions
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse_tests.aws.conftest import SECRET_ACCESS_KEY

DAY = dt.date(2026, 11, 20)
TABLE = "daily_aggregate"


def _daily(users: dict[str, float], day: dt.date = DAY) -> pa.Table:
    peak = dt.datetime.combine(day, dt.time(9, 53), dt.UTC)
    return pa.Table.from_pylist([
        dict(log_date=day, user=user, total_kb=kb, inbound_kb=kb / 4, outbound_kb=kb / 2, internal_kb=kb / 8,
             unknown_kb=kb / 8, distinct_remote_hosts=7, peak_minute_utc=peak, peak_minute_kb=100.5, rows=42)
        for user, kb in users.items()
    ], schema=GOLD_DAILY_USER_BANDWIDTH.schema)


def _items(aws) -> dict[tuple[str, str], dict]:
    items = aws.client("dynamodb").scan(TableName=TABLE)["Items"]
    return {(i["user"]["S"], i["date"]["S"]): i for i in items}


def test_a_day_is_replaced_exactly_and_other_days_are_kept(aws):
    client = aws.client("dynamodb")
    assert dynamodb_table.ensure_table(client, TABLE) is True
    assert dynamodb_table.ensure_table(client, TABLE) is False
    users = {f"user-{i:02}": 1158.17 + i for i in range(30)}  # more than one batch of 25
    first = dynamodb_table.write_day(client, TABLE, DAY, _daily(users))
    dynamodb_table.write_day(client, TABLE, DAY + dt.timedelta(days=1), _daily({"alice": 1.5}, DAY + dt.timedelta(days=1)))
    assert (first.written, first.deleted) == (30, 0)
    items = _items(aws)
    assert items[("user-00", "2026-11-20")] == {
        "user": {"S": "user-00"}, "date": {"S": "2026-11-20"}, "total_kb": {"N": "1158.17"},
        "inbound_kb": {"N": "289.5425"}, "outbound_kb": {"N": "579.085"}, "internal_kb": {"N": "144.77125"},
        "unknown_kb": {"N": "144.77125"}, "distinct_remote_hosts": {"N": "7"},
        "peak_minute_utc": {"S": "2026-11-20T09:53:00+00:00"}, "peak_minute_kb": {"N": "100.5"}, "rows": {"N": "42"},
    }

    again = dynamodb_table.write_day(client, TABLE, DAY, _daily(users))
    assert _items(aws) == items and again.deleted == 0

    shrunk = dynamodb_table.write_day(client, TABLE, DAY, _daily({"user-00": 2.0}))
    assert shrunk.deleted == 29
    assert sorted(_items(aws)) == [("alice", "2026-11-21"), ("user-00", "2026-11-20")]
    assert Decimal(_items(aws)[("user-00", "2026-11-20")]["total_kb"]["N"]) == Decimal("2.0")


SERVED = "key:serving/dynamodb_daily_aggregate"


def test_the_asset_serves_the_gold_partition(aws, aws_settings):
    catalog = open_catalog(aws_settings)
    replace_partitions(ensure_table(catalog, GOLD_DAILY_USER_BANDWIDTH), _daily({"alice": 3.25, "bob-smith": 1e6}),
                       values=[DAY])
    result = materialize_range(build_definitions(aws_settings), DAY, DAY, selection=SERVED)
    metadata = result.asset_materializations_for_node("dynamodb_daily_aggregate")[0].metadata
    assert metadata["dagster/row_count"].value == 2 and metadata["table"].value == TABLE
    assert {k: Decimal(i["total_kb"]["N"]) for k, i in _items(aws).items()} == {
        ("alice", "2026-11-20"): Decimal("3.25"), ("bob-smith", "2026-11-20"): Decimal("1000000.0"),
    }


def test_a_table_with_the_wrong_keys_fails_the_run_without_leaking_credentials(aws, aws_settings):
    aws.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    catalog = open_catalog(aws_settings)
    replace_partitions(ensure_table(catalog, GOLD_DAILY_USER_BANDWIDTH), _daily({"alice": 3.25}), values=[DAY])
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_range(build_definitions(aws_settings), DAY, DAY, selection=SERVED, instance=instance,
                               raise_on_error=False)
    assert not result.success
    error = result.failure_data_for_node("dynamodb_daily_aggregate").error.to_string()
    assert "DynamoDB table daily_aggregate has keys id (HASH); PacketX needs partition key user" in error
    logs = "\n".join(repr(record) for record in instance.all_logs(result.run_id))
    assert SECRET_ACCESS_KEY not in error and SECRET_ACCESS_KEY not in logs


def test_unprocessed_writes_are_retried_then_reported(aws):
    """Moto never throttles, so a client that hands back part of each batch plays DynamoDB under load."""
    real = aws.client("dynamodb")
    dynamodb_table.ensure_table(real, TABLE)

    class Throttled:
        """Leaves all but the first request of a batch unprocessed, ``times`` times (0: none processed)."""

        def __init__(self, times: int, keep_first: bool = True) -> None:
            self.times, self.keep_first = times, keep_first

        def batch_write_item(self, RequestItems):
            requests = RequestItems[TABLE]
            if not self.times:
                return real.batch_write_item(RequestItems=RequestItems)
            self.times -= 1
            if self.keep_first:
                real.batch_write_item(RequestItems={TABLE: requests[:1]})
                return {"UnprocessedItems": {TABLE: requests[1:]}}
            return {"UnprocessedItems": {TABLE: requests}}

    requests = [{"PutRequest": {"Item": {"user": {"S": f"u{i}"}, "date": {"S": "2026-11-20"}}}} for i in range(3)]
    delays: list[float] = []
    assert dynamodb_table.batch_write(Throttled(2), TABLE, requests, sleep=delays.append) == 2
    assert len(_items(aws)) == 3 and len(delays) == 2 and all(0 <= d <= 0.1 for d in delays)
    with pytest.raises(RuntimeError, match="3 writes still unprocessed after 3 attempts"):
        dynamodb_table.batch_write(Throttled(99, keep_first=False), TABLE, requests, max_attempts=3, sleep=delays.append)


def test_an_older_table_without_the_date_index_gets_it(aws):
    client = aws.client("dynamodb")
    client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=dynamodb_table.KEY_ATTRIBUTES,
                        KeySchema=dynamodb_table.KEY_SCHEMA)
    assert dynamodb_table.ensure_table(client, TABLE) is False
    indexes = client.describe_table(TableName=TABLE)["Table"]["GlobalSecondaryIndexes"]
    assert [i["IndexName"] for i in indexes] == ["by_date"]
    dynamodb_table.write_day(client, TABLE, DAY, _daily({"alice": 1.0}))
    assert dynamodb_table.write_day(client, TABLE, DAY, _daily({"bob": 1.0})).deleted == 1


def test_other_errors_are_raised_not_swallowed(aws):
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        dynamodb_table.write_day(aws.client("dynamodb"), "missing", DAY, _daily({"alice": 1.0}))


def test_a_dropped_connection_is_retried_with_backoff(aws, aws_settings, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    catalog = open_catalog(aws_settings)
    replace_partitions(ensure_table(catalog, GOLD_DAILY_USER_BANDWIDTH), _daily({"alice": 3.25}), values=[DAY])
    write_day, attempts = dynamodb_table.write_day, []

    def drops_once(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 1:
            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return write_day(*args, **kwargs)

    monkeypatch.setattr(dynamodb_table, "write_day", drops_once)
    result = materialize_range(build_definitions(aws_settings), DAY, DAY, selection=SERVED)
    assert result.success and len(attempts) == 2
    assert [e.event_type for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY] == [
        dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert ("alice", "2026-11-20") in _items(aws)
