"""DynamoDB serving table ``daily_aggregate``: one item per (user, date), for apps that read by user.

Writing a day is idempotent: items are keyed by (user, date), so a re-write overwrites them with
identical values, and items of users no longer present that day are deleted (found through the
``by_date`` index). Batches that DynamoDB leaves unprocessed (throttling) are retried with
bounded exponential backoff; anything else, or exhausting the retries, raises.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from packetx_lakehouse.lib.retry import retrying

DATE_INDEX = "by_date"
#: DynamoDB's limit for one BatchWriteItem call.
BATCH_SIZE = 25
_SERIALIZER = TypeSerializer()


@dataclass(frozen=True)
class DayWrite:
    """What writing one day did."""

    day: dt.date
    written: int
    deleted: int
    retries: int


KEY_SCHEMA = [{"AttributeName": "user", "KeyType": "HASH"}, {"AttributeName": "date", "KeyType": "RANGE"}]
KEY_ATTRIBUTES = [{"AttributeName": "user", "AttributeType": "S"}, {"AttributeName": "date", "AttributeType": "S"}]
_INDEX = {
    "IndexName": DATE_INDEX,
    "KeySchema": [{"AttributeName": "date", "KeyType": "HASH"}, {"AttributeName": "user", "KeyType": "RANGE"}],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}


def ensure_table(client: Any, name: str, *, timeout_s: float = 600) -> bool:
    """Create the table (on-demand capacity, ``by_date`` index) if missing; True if created.

    A table from an older set-up with the right keys but no ``by_date`` index gets the index
    added. Waits until table and index are ACTIVE, since writes and queries fail before.

    Raises:
        ValueError: if the table exists with other keys (items would be written wrongly).
    """
    try:
        table = client.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=KEY_ATTRIBUTES,
                            KeySchema=KEY_SCHEMA, GlobalSecondaryIndexes=[_INDEX])
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 90})
        _index_active(client, name, timeout_s)
        return True
    if table["KeySchema"] != KEY_SCHEMA:
        keys = ", ".join(f"{k['AttributeName']} ({k['KeyType']})" for k in table["KeySchema"])
        raise ValueError(
            f"DynamoDB table {name} has keys {keys}; PacketX needs partition key user and sort key date "
            "(choose another PACKETX_DYNAMODB_TABLE or drop the table)"
        )
    if not any(i["IndexName"] == DATE_INDEX for i in table.get("GlobalSecondaryIndexes", [])):
        client.update_table(TableName=name, AttributeDefinitions=KEY_ATTRIBUTES,
                            GlobalSecondaryIndexUpdates=[{"Create": _INDEX}])
    _index_active(client, name, timeout_s)
    return False


def _index_active(client: Any, name: str, timeout_s: float) -> bool:
    """Wait for the ``by_date`` index to be ACTIVE (adding one to a big table takes a while)."""
    deadline = time.monotonic() + timeout_s
    while True:
        indexes = client.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
        if any(i["IndexName"] == DATE_INDEX and i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes):
            return True
        if time.monotonic() > deadline:
            raise TimeoutError(f"DynamoDB index {name}.{DATE_INDEX} not ACTIVE after {timeout_s:.0f} s")
        time.sleep(2)


def _number(value: float | int) -> Decimal:
    # repr() is the shortest exact round-trip text of a float: no binary noise in DynamoDB.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def to_items(rows: pa.Table) -> list[dict[str, Any]]:
    """``daily_user_bandwidth`` rows as DynamoDB items (dates and times as ISO text)."""
    items = []
    for row in rows.to_pylist():
        item: dict[str, Any] = {"user": row.pop("user"), "date": row.pop("log_date").isoformat()}
        for name, value in row.items():
            if isinstance(value, dt.datetime):
                item[name] = value.isoformat()
            elif isinstance(value, (int, float)):
                item[name] = _number(value)
            elif value is not None:
                item[name] = value
        items.append(item)
    return items


def _day_keys(client: Any, table: str, day: dt.date) -> set[str]:
    """The users that have an item for ``day``."""
    users: set[str] = set()
    kwargs: dict[str, Any] = dict(
        TableName=table,
        IndexName=DATE_INDEX,
        KeyConditionExpression="#d = :d",
        ExpressionAttributeNames={"#d": "date"},
        ExpressionAttributeValues={":d": {"S": day.isoformat()}},
    )
    while True:
        page = client.query(**kwargs)
        users |= {item["user"]["S"] for item in page.get("Items", [])}
        if "LastEvaluatedKey" not in page:
            return users
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _chunks(requests: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(requests), BATCH_SIZE):
        yield list(requests[start:start + BATCH_SIZE])


def batch_write(
    client: Any,
    table: str,
    requests: Sequence[dict[str, Any]],
    *,
    max_attempts: int = 8,
    base_delay: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send write requests in batches of 25, retrying unprocessed ones; return the retries used.

    Raises:
        RuntimeError: when a batch still has unprocessed requests after ``max_attempts`` calls.
    """
    retries = 0
    for chunk in _chunks(requests):
        pending = chunk
        # Full jitter (lib.retry) keeps parallel writers from retrying in lockstep.
        attempts = retrying(_Unprocessed, attempts=max_attempts, base_delay=base_delay, max_delay=float("inf"),
                            sleep=sleep)
        try:
            for attempt in attempts:
                with attempt:
                    response = client.batch_write_item(RequestItems={table: pending})
                    pending = response.get("UnprocessedItems", {}).get(table, [])
                    if pending:
                        raise _Unprocessed()
        except _Unprocessed:
            raise RuntimeError(
                f"DynamoDB table {table}: {len(pending)} writes still unprocessed after {max_attempts} attempts"
            ) from None
        retries += attempts.statistics["attempt_number"] - 1
    return retries


class _Unprocessed(Exception):
    """DynamoDB handed part of a batch back (throttling): send that part again."""


def write_day(client: Any, table: str, day: dt.date, rows: pa.Table, **retry: Any) -> DayWrite:
    """Make the table's items for ``day`` exactly ``rows`` (which must all be of that day)."""
    items = to_items(rows)
    if any(item["date"] != day.isoformat() for item in items):
        raise ValueError(f"rows outside {day} passed to write_day")
    stale = _day_keys(client, table, day) - {item["user"] for item in items}
    requests = [{"PutRequest": {"Item": _SERIALIZER.serialize(item)["M"]}} for item in items]
    requests += [
        {"DeleteRequest": {"Key": {"user": {"S": user}, "date": {"S": day.isoformat()}}}} for user in sorted(stale)
    ]
    retries = batch_write(client, table, requests, **retry)
    return DayWrite(day, len(items), len(stale), retries)
