"""The devices' side of ingestion on AWS: gzip a day's traffic logs into the S3 landing prefix.

Idempotent by content: each object carries the SHA-256 of the uncompressed file as metadata, so a
re-upload of an unchanged file costs one HEAD request and writes nothing, while a file that grew
replaces its object (same key) and the landing sensor sees a new ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from packetx_lakehouse.lib.ingest.filenames import parse_log_file_name
from packetx_lakehouse.lib.ingest.gzipio import (
    GZIP_MAGIC,
    decompress_if_gzip,
    gzip_deterministic,
)
from packetx_lakehouse.lib.storage.objectstore import s3_client
from packetx_lakehouse.settings import Settings

SHA256_METADATA = "sha256"


@dataclass(frozen=True)
class UploadResult:
    """What happened to one local file: ``uploaded``, ``replaced`` or ``unchanged``."""

    name: str
    uri: str
    action: str
    size: int


def landing_key(prefix: str, name: str) -> str:
    """``<prefix>raw_data_upload/<user>-<date>.csv.gz`` for a plain or already-compressed file."""
    return f"{prefix}{name}" if name.endswith(".gz") else f"{prefix}{name}.gz"


def upload_file(client: Any, bucket: str, landing_prefix: str, path: Path) -> UploadResult:
    """Upload one file unless the object already holds the same content.

    The put asks S3 to verify a SHA-256 checksum of the compressed bytes, so a corrupted transfer
    is rejected by S3 instead of landing.
    """
    raw = path.read_bytes()
    text = decompress_if_gzip(raw)
    digest = hashlib.sha256(text).hexdigest()
    key = landing_key(landing_prefix, path.name)
    uri = f"s3://{bucket}/{key}"
    try:
        existing = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        existing = None
    if existing is not None and existing.get("Metadata", {}).get(SHA256_METADATA) == digest:
        return UploadResult(path.name, uri, "unchanged", existing["ContentLength"])
    body = raw if raw[:2] == GZIP_MAGIC else gzip_deterministic(text)  # keep a device's own .gz as is
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/gzip",
        Metadata={SHA256_METADATA: digest},
        ChecksumAlgorithm="SHA256",
    )
    return UploadResult(path.name, uri, "replaced" if existing is not None else "uploaded", len(body))


def files_to_upload(directory: Path, day: dt.date | None) -> list[Path]:
    """The contract-conforming files in ``directory``, only ``day``'s when given."""
    found = []
    for path in sorted(directory.glob("*")):
        parsed = parse_log_file_name(path.name)
        if path.is_file() and parsed is not None and (day is None or parsed.date == day):
            found.append(path)
    return found


def require_bucket(settings: Settings) -> None:
    """Raises ValueError when no bucket is configured: before any file is read or any progress is shown."""
    if not settings.s3_bucket:
        raise ValueError("upload needs PACKETX_S3_BUCKET (or s3_bucket_name)")


def upload_files(
    settings: Settings, paths: Iterable[Path], client: Any | None = None,
    on_file: Callable[[UploadResult], None] | None = None,
) -> list[UploadResult]:
    """Upload ``paths`` to the landing prefix of ``settings.s3_bucket``; ``on_file`` hears of each as it is done."""
    require_bucket(settings)
    # Configured as the pipeline's landing client is (a fresh session: the credential chain now).
    client = client or s3_client(settings.aws_region, settings.aws_endpoint_url)
    results = []
    for path in paths:
        results.append(upload_file(client, settings.s3_bucket, settings.s3_landing_prefix, path))
        if on_file is not None:
            on_file(results[-1])
    return results
