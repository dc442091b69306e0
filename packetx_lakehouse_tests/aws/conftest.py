"""The AWS path over real HTTP: moto server on a free loopback port, and a fresh PostgreSQL database.

Nothing is patched inside the test process: boto3, s3fs and PyIceberg's Glue client talk to moto
exactly as they would talk to AWS, and psycopg talks to the machine's PostgreSQL (Redshift's
protocol). Credentials are fake but distinctive, so a leak test can search every log for them.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from packetx_lakehouse.settings import Settings
from packetx_lakehouse_harness.devserver import free_port, poll
from packetx_lakehouse_harness.postgres import PG_ADMIN_URL, fresh_database  # noqa: F401  (used by tests)
from packetx_lakehouse_tests.conftest import TEST_START_DATE

REGION = "us-east-1"
BUCKET = "packetx-test"
ACCESS_KEY_ID = "AKIAPACKETXTEST0001"
#: Searched for in every captured log, metadata value and error: it must never appear.
SECRET_ACCESS_KEY = "pxSECRET-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server subprocess with fake credentials in the environment for the whole session."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    def answers() -> bool:
        if server.poll() is not None:
            raise RuntimeError(f"moto server on {endpoint} exited with {server.returncode}")
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
        except OSError:
            return False
        return True

    try:
        poll(f"moto server to answer on {endpoint}", answers, interval=0.1)
    except BaseException:
        server.kill()
        raise
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "aws_access_key_id", "aws_secret_access_key"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


@dataclass
class Aws:
    """Clients on a moto state that is empty at the start of each test, plus the env for the run."""

    endpoint: str
    bucket: str

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def keys(self, prefix: str = "") -> dict[str, int]:
        """Every object under ``prefix`` with its size."""
        found: dict[str, int] = {}
        for page in self.client("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found |= {item["Key"]: item["Size"] for item in page.get("Contents", [])}
        return found


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Aws:
    """Reset moto (Glue databases are account-wide, so tests must not share them) and make a bucket."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    state = Aws(moto_endpoint, BUCKET)
    state.client("s3").create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("PACKETX_ENV", "aws")
    monkeypatch.setenv("PACKETX_S3_BUCKET", BUCKET)
    monkeypatch.setenv("PACKETX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PACKETX_WAREHOUSE_URL", raising=False)
    return state


@pytest.fixture
def aws_settings(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a user gets them: from the environment only."""
    monkeypatch.setenv("PACKETX_START_DATE", TEST_START_DATE)  # the tests' days come before the default start
    return Settings.from_env()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this test run, dropped at the end: its URL."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def warehouse_schema(pg_database: str) -> str:
    """A schema of its own per test, so warehouse tests stay independent inside one database."""
    return f"wh_{secrets.token_hex(4)}"
