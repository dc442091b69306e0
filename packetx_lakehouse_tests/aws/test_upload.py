import gzip
import hashlib
from pathlib import Path

import pytest

from packetx_lakehouse.cli import main
from packetx_lakehouse_tests.aws.conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from packetx_lakehouse_tests.conftest import HEADER

NAME = "bob-smith-2026-11-20.csv"
KEY = f"lakehouse/raw_data_upload/{NAME}.gz"
ROWS = "bob-smith,2026-11-20 09:53,8.8.8.8,192.168.1.20,210,1158.17\n"


def _object(aws, key=KEY):
    response = aws.client("s3").get_object(Bucket=aws.bucket, Key=key)
    return response, response["Body"].read()


def test_upload_skips_unchanged_files_and_replaces_grown_ones(aws, tmp_path: Path, capsys):
    log = tmp_path / NAME
    log.write_text(HEADER + ROWS)
    (tmp_path / "notes.txt").write_text("not a traffic log")

    assert main(["upload", "--dir", str(tmp_path)]) == 0
    first, body = _object(aws)
    assert gzip.decompress(body) == log.read_bytes()
    assert first["Metadata"] == {"sha256": hashlib.sha256(log.read_bytes()).hexdigest()}
    assert list(aws.keys()) == [KEY]

    assert main(["upload", "--dir", str(tmp_path), "--date", "2026-11-20"]) == 0
    again, _ = _object(aws)
    assert (again["ETag"], again["LastModified"]) == (first["ETag"], first["LastModified"])

    log.write_text(HEADER + ROWS * 2)  # the device appended a minute
    assert main(["upload", str(log)]) == 0
    grown, body = _object(aws)
    assert gzip.decompress(body) == log.read_bytes() and grown["ETag"] != first["ETag"]
    lines = capsys.readouterr().out.splitlines()
    summaries = [line.split(";")[0] for line in lines if line.startswith("1 file:")]
    assert [line.split()[0] for line in lines if not line.startswith("1 file:")] == ["uploaded", "unchanged", "replaced"]
    assert summaries == ["1 file: 1 uploaded", "1 file: 1 unchanged", "1 file: 1 replaced"]


def test_upload_keeps_an_already_compressed_file_as_is(aws, tmp_path: Path):
    log = tmp_path / f"{NAME}.gz"
    log.write_bytes(gzip.compress((HEADER + ROWS).encode()))
    assert main(["upload", str(log)]) == 0
    assert _object(aws)[1] == log.read_bytes()


def test_legacy_env_names_work_without_the_standard_ones(aws, tmp_path: Path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PACKETX_S3_BUCKET", "PACKETX_ENV"):
        monkeypatch.delenv(name)
    # No shared config either: only the legacy variables can supply credentials.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("aws_access_key_id", ACCESS_KEY_ID)
    monkeypatch.setenv("aws_secret_access_key", SECRET_ACCESS_KEY)
    monkeypatch.setenv("s3_bucket_name", aws.bucket)
    (tmp_path / NAME).write_text(HEADER + ROWS)

    assert main(["upload", "--dir", str(tmp_path)]) == 0
    assert list(aws.keys()) == [KEY]
    captured = capsys.readouterr()
    assert SECRET_ACCESS_KEY not in captured.out + captured.err


def test_without_any_credentials_the_upload_fails_without_writing(aws, tmp_path: Path, monkeypatch):
    from botocore.exceptions import NoCredentialsError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (tmp_path / NAME).write_text(HEADER + ROWS)
    with pytest.raises(NoCredentialsError):
        main(["upload", "--dir", str(tmp_path)])
    assert aws.keys() == {}
