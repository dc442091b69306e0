"""Bronze on the AWS path: S3 landing and archive, Glue catalog, S3 warehouse, over HTTP to moto."""

import datetime as dt
from pathlib import Path

import pytest

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import open_catalog
from packetx_lakehouse.devices.generator import GeneratorOptions, generate
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.lib.storage.iceberg import glue_catalog
from packetx_lakehouse.runner import materialize_range
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import TEST_START_DATE

FIRST, LAST = dt.date(2026, 11, 18), dt.date(2026, 11, 19)
SMALL = GeneratorOptions(minutes_per_day=20, pairs_per_minute=5, bad_lines=2)


def _rows(settings: Settings, table: str) -> list[dict]:
    """Rows read through a brand-new Glue catalog client, lineage-sorted, ingest time left out."""
    catalog = glue_catalog(settings.s3_warehouse_uri, settings.aws_region, settings.aws_endpoint_url)
    rows = catalog.load_table(table).scan().to_arrow().drop_columns(["ingested_at"]).to_pylist()
    return sorted(rows, key=lambda row: (row["source_file"], row["line_number"]))


def test_bronze_on_s3_and_glue_matches_the_local_path_and_reruns_change_nothing(aws, aws_settings, tmp_path: Path):
    files = generate(tmp_path / "device", users=2, days=2, start=FIRST, seed=3, options=SMALL)
    assert {r.action for r in upload_files(aws_settings, files)} == {"uploaded"}
    defs = build_definitions(aws_settings)

    assert materialize_range(defs, FIRST, LAST, selection="group:bronze").success
    landing = aws.keys("lakehouse/raw_data_upload/")
    archive = aws.keys("lakehouse/raw_archive/")
    assert sorted(landing) == sorted(f"lakehouse/raw_data_upload/{p.name}.gz" for p in files)
    assert sorted(k.rsplit("/", 1)[-1].split(".")[0] for k in archive if k.endswith(".gz")) == sorted(
        p.name.removesuffix(".csv") for p in files
    )
    assert sum(k.endswith("manifest.json") for k in archive) == 2
    assert any(k.startswith("lakehouse/warehouse/packetx_raw.db/packets/data/") for k in aws.keys("lakehouse/warehouse/"))
    packets, quarantine = _rows(aws_settings, "packetx_raw.packets"), _rows(aws_settings, "packetx_raw.quarantine")
    assert len(quarantine) == 2 * 2 * SMALL.bad_lines

    local = Settings(data_dir=tmp_path / "local", traffic_log_dir=tmp_path / "device", start_date=TEST_START_DATE)
    assert materialize_range(build_definitions(local), FIRST, LAST, selection="group:bronze").success
    local_catalog = open_catalog(local)
    local_packets = local_catalog.load_table("packetx_raw.packets").scan().to_arrow().drop_columns(["ingested_at"])
    assert packets == sorted(local_packets.to_pylist(), key=lambda r: (r["source_file"], r["line_number"]))

    assert materialize_range(defs, FIRST, LAST, selection="group:bronze").success
    assert aws.keys("lakehouse/raw_data_upload/") == landing and aws.keys("lakehouse/raw_archive/") == archive
    assert _rows(aws_settings, "packetx_raw.packets") == packets
    assert _rows(aws_settings, "packetx_raw.quarantine") == quarantine


def test_the_s3_archive_writes_its_manifest_with_a_conditional_put(aws):
    from packetx_lakehouse.lib.storage.objectstore import (
        ObjectChangedError,
        S3ObjectStore,
    )

    store = S3ObjectStore(aws.client("s3"), aws.bucket, "lakehouse/raw_archive/")
    store.put_if_unchanged("date=2026-11-18/manifest.json", b"one", None)  # If-None-Match: *
    data, etag = store.get_versioned("date=2026-11-18/manifest.json")
    with pytest.raises(ObjectChangedError):
        store.put_if_unchanged("date=2026-11-18/manifest.json", b"late", None)
    store.put_if_unchanged("date=2026-11-18/manifest.json", b"two", etag)  # If-Match: the ETag read
    with pytest.raises(ObjectChangedError):
        store.put_if_unchanged("date=2026-11-18/manifest.json", b"stale", etag)
    assert (data, store.get("date=2026-11-18/manifest.json")) == (b"one", b"two")
    assert store.get_versioned("date=2026-11-19/manifest.json") is None
