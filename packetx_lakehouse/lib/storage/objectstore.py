"""A minimal object store: a local directory or an S3 prefix, behind one interface.

The landing area (what devices write or upload) and the raw archive (our immutable audit trail)
both live in one of these; code above never knows which.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader or watching sensor never sees half a file.

    The temporary name starts with '.', which listings skip.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the file from other readers
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a listing sees it; ``version`` is an mtime (local) or ETag (S3)."""

    key: str
    size: int
    version: str

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class ObjectChangedError(RuntimeError):
    """A conditional write found the object changed since it was read: re-read and redo."""


class ObjectStore(Protocol):
    """What the lakehouse needs from storage: list, read, write, test, and compare-and-swap."""

    def list(self, prefix: str = "") -> list[ObjectInfo]: ...
    def get(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def describe(self, key: str) -> str: ...
    def get_versioned(self, key: str) -> tuple[bytes, str] | None: ...
    def put_if_unchanged(self, key: str, data: bytes, version: str | None) -> None: ...


class LocalObjectStore:
    """Objects are files under ``root``; keys use '/' on every platform."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        found = []
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")):
            stat = path.stat()
            key = path.relative_to(self.root).as_posix()
            found.append(ObjectInfo(key, stat.st_size, str(stat.st_mtime_ns)))
        return found

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def describe(self, key: str) -> str:
        return str(self._path(key))

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and its version (the SHA-256 of its bytes), or None if absent."""
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def put_if_unchanged(self, key: str, data: bytes, version: str | None) -> None:
        """Write ``key`` only if it is still at ``version`` (None: still absent).

        Writers of the same key, in any process on this host (or on a shared file system with
        working locks), take an exclusive lock on a hidden sibling file, so the check and the
        atomic rename cannot interleave with another writer's.

        Raises:
            ObjectChangedError: if another writer changed the object since ``version`` was read.
        """
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.get_versioned(key)
            if (current[1] if current else None) != version:
                raise ObjectChangedError(f"{self.describe(key)} changed while this run was using it")
            write_bytes_atomically(path, data)


class S3ObjectStore:
    """Objects under ``s3://bucket/prefix``; ``client`` is a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                found.append(ObjectInfo(key, int(item["Size"]), item["ETag"].strip('"')))
        return sorted(found, key=lambda info: info.key)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + key, MaxKeys=1)
        return any(item["Key"] == self.prefix + key for item in response.get("Contents", []))

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and its ETag, or None if absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read(), response["ETag"]

    def put_if_unchanged(self, key: str, data: bytes, version: str | None) -> None:
        """S3's conditional write: ``If-Match`` the ETag read, or ``If-None-Match: *`` for a new key.

        Raises:
            ObjectChangedError: on 412 Precondition Failed, or 409 when another conditional
                write of the key is in flight.
        """
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, **condition)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise ObjectChangedError(f"{self.describe(key)} changed while this run was using it") from exc
            raise
