"""Maintenance on the AWS path: Glue catalog, S3 warehouse and S3 archive, over HTTP to moto."""

import datetime as dt
from pathlib import Path

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.maintenance.job import run_maintenance
from packetx_lakehouse.devices.generator import GeneratorOptions, generate_day
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.lib.schemas import BRONZE_PACKETS
from packetx_lakehouse.lib.storage.iceberg import glue_catalog
from packetx_lakehouse.lib.storage.maintenance import list_table_files, referenced_files
from packetx_lakehouse.runner import materialize_range

DAY = dt.date(2026, 11, 18)
OPTIONS = GeneratorOptions(minutes_per_day=30, pairs_per_minute=5)


def test_maintenance_on_s3_and_glue_removes_dead_files_and_old_versions_only(aws, aws_settings, tmp_path: Path):
    lines = generate_day("alice", DAY, seed=5, options=OPTIONS).splitlines(keepends=True)
    defs = build_definitions(aws_settings)
    path = tmp_path / f"alice-{DAY}.csv"
    for part in (1, 2, 3):  # the device's file grows; each upload is re-run
        path.write_bytes(b"".join(lines[: 1 + (len(lines) - 1) * part // 3]))
        upload_files(aws_settings, [path])
        assert materialize_range(defs, DAY, DAY, selection="group:bronze").success
    catalog = glue_catalog(aws_settings.s3_warehouse_uri, aws_settings.aws_region, aws_settings.aws_endpoint_url)
    table = catalog.load_table(BRONZE_PACKETS.identifier)
    data_prefix = table.location().removeprefix(f"s3://{aws.bucket}/") + "/data/"
    orphan = f"{data_prefix}crashed-write.parquet"
    aws.client("s3").put_object(Bucket=aws.bucket, Key=orphan, Body=b"PAR1 left by a crashed write")
    # The file grew: the archive holds its first read and a part with each upload's new bytes.
    archive_parts = [k for k in aws.keys("lakehouse/raw_archive/") if k.endswith(".gz")]
    data_files = [k for k in aws.keys(data_prefix) if k != orphan]
    assert len(archive_parts) == 3 and len(data_files) == 3

    # Now: everything is inside its window, nothing goes (the orphan is a write in flight, for all we know).
    done = run_maintenance(aws_settings)
    assert done.errors == {} and done.totals()["files_deleted"] == 0 and done.archive.versions_deleted == 0
    assert orphan in aws.keys(data_prefix)

    # A week and a day later: old snapshots, their files and the orphan go; every archive part is
    # a part of the current version (named by the manifest), so all stay.
    done = run_maintenance(aws_settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8))
    assert done.errors == {} and done.archive.versions_deleted == 0
    assert len(aws.keys(data_prefix)) == 1 and orphan not in aws.keys(data_prefix)
    table = catalog.load_table(BRONZE_PACKETS.identifier)
    assert set(list_table_files(table)) == referenced_files(table)  # what it needs, and nothing else
    assert table.scan().to_arrow().num_rows == len(lines) - 1
    assert sorted(k for k in aws.keys("lakehouse/raw_archive/") if k.endswith(".gz")) == sorted(archive_parts)
    # The archive's current version is what bronze is rebuilt from: a re-run still reads it.
    assert materialize_range(defs, DAY, DAY, selection="group:bronze").success
    assert catalog.load_table(BRONZE_PACKETS.identifier).scan().to_arrow().num_rows == len(lines) - 1
