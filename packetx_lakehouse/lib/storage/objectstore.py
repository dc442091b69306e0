"""A minimal object store: a local directory or an S3 prefix, behind one interface.

The landing area (what devices write or upload) and the raw archive (our immutable audit trail)
both live in one of these; code above never knows which.

The landing area is read *flat and contained* (``list_flat``): only regular files directly in it,
never a link (not even one pointing inside), a sub-folder or a hidden entry; what is skipped is
returned with its reason so that it can be reported. The archive keeps its nested
``date=<day>/`` layout and is listed recursively (``list``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
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
    #: When the object was last written (POSIX seconds): its age for retention.
    modified: float = 0.0

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of the landing area that is never read, and why (``symbolic link``, ``sub-folder``...)."""

    key: str
    reason: str


class ObjectTooLarge(ValueError):
    """An object holds more bytes than the reader was allowed to take."""


@dataclass(frozen=True)
class FlatListing:
    """The regular objects directly in a landing area, and every other entry with its reason."""

    objects: list[ObjectInfo]
    skipped: list[SkippedEntry]


SYMBOLIC_LINK, SUB_FOLDER, HIDDEN_ENTRY, NOT_A_FILE = (
    "symbolic link (never followed)", "sub-folder (the landing area is read flat)",
    "hidden entry (name starts with '.')", "not a regular file")


class ObjectChangedError(RuntimeError):
    """A conditional write found the object changed since it was read: re-read and redo."""


class ObjectStore(Protocol):
    """What the lakehouse needs from storage: list, read, write, test, and compare-and-swap."""

    def list(self, prefix: str = "") -> list[ObjectInfo]: ...
    def list_flat(self) -> FlatListing: ...
    def get(self, key: str, max_bytes: int | None = None) -> bytes: ...
    def get_range(self, key: str, start: int, max_bytes: int) -> bytes: ...
    def put(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def describe(self, key: str) -> str: ...
    def delete(self, key: str) -> None: ...
    def get_versioned(self, key: str) -> tuple[bytes, str] | None: ...
    def put_if_unchanged(self, key: str, data: bytes, version: str | None) -> None: ...


class LocalObjectStore:
    """Objects are files under ``root``; keys use '/' on every platform."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.rstrip("/").split("/")
        if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"object key {key!r} is not a plain relative key under {self.root}")
        return self.root.joinpath(*parts)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        found = []
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")):
            info = path.stat()
            key = path.relative_to(self.root).as_posix()
            found.append(ObjectInfo(key, info.st_size, str(info.st_mtime_ns), info.st_mtime))
        return found

    def list_flat(self) -> FlatListing:
        """Regular files directly in ``root``; links, sub-folders, hidden and special entries are skipped.

        ``lstat`` only: a link is never followed, not even to learn where it points.
        """
        objects: list[ObjectInfo] = []
        skipped: list[SkippedEntry] = []
        try:
            entries = sorted(os.scandir(self.root), key=lambda entry: entry.name)
        except FileNotFoundError:
            return FlatListing([], [])
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            key = entry.name + "/" if is_dir else entry.name  # a folder's key ends in '/', as on S3
            if entry.name.startswith("."):
                skipped.append(SkippedEntry(key, HIDDEN_ENTRY))
            elif entry.is_symlink():
                skipped.append(SkippedEntry(key, SYMBOLIC_LINK))
            elif is_dir:
                skipped.append(SkippedEntry(key, SUB_FOLDER))
            elif entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                objects.append(ObjectInfo(entry.name, info.st_size, str(info.st_mtime_ns), info.st_mtime))
            else:
                skipped.append(SkippedEntry(entry.name, NOT_A_FILE))
        return FlatListing(objects, skipped)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; never through a link, never from a FIFO or device, at most ``max_bytes``.

        Raises:
            ObjectTooLarge: if the file holds more than ``max_bytes`` now (it may have grown since
                it was listed).
            OSError: if the key names a link (``O_NOFOLLOW``) or something that is not a regular file.
        """
        path = self._path(key)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{path} is not a regular file")
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLarge(f"{path} holds more than {max_bytes:,} bytes")
        return data

    def get_range(self, key: str, start: int, max_bytes: int) -> bytes:
        """The object's bytes from ``start`` to its end (a refresh reads only what a file gained).

        Raises:
            ObjectTooLarge: if more than ``max_bytes`` follow ``start``.
            OSError: as ``get``.
        """
        path = self._path(key)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{path} is not a regular file")
            handle.seek(start)
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"{path} holds more than {max_bytes:,} bytes after byte {start:,}")
        return data

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def describe(self, key: str) -> str:
        return str(self.root.joinpath(*key.split("/")) if key else self.root)

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


def s3_client(region: str, endpoint_url: str = "") -> Any:
    """A boto3 S3 client as dagster-aws's ``S3Resource`` makes the pipeline's (5 attempts, standard
    retries), for callers outside Dagster: the device uploader must not import it."""
    import boto3  # ~0.3 s: only what talks to S3 pays it (``generate`` imports this module too)
    from botocore.config import Config

    return boto3.session.Session().client("s3", region_name=region or None, endpoint_url=endpoint_url or None,
                                          config=Config(retries={"max_attempts": 5, "mode": "standard"}))


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
                found.append(ObjectInfo(key, int(item["Size"]), item["ETag"].strip('"'),
                                        item["LastModified"].timestamp()))
        return sorted(found, key=lambda info: info.key)

    def list_flat(self) -> FlatListing:
        """Objects directly under the prefix: a key with a '/' after it is a sub-folder, never descended."""
        objects: list[ObjectInfo] = []
        skipped: list[SkippedEntry] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for folder in page.get("CommonPrefixes", []):
                skipped.append(SkippedEntry(folder["Prefix"][len(self.prefix):], SUB_FOLDER))
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if not key:
                    continue  # the prefix's own "folder" marker
                if key.startswith("."):
                    skipped.append(SkippedEntry(key, HIDDEN_ENTRY))
                else:
                    objects.append(ObjectInfo(key, int(item["Size"]), item["ETag"].strip('"'),
                                              item["LastModified"].timestamp()))
        return FlatListing(sorted(objects, key=lambda info: info.key), sorted(skipped, key=lambda s: s.key))

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes, at most ``max_bytes`` (streamed: a huge object is never fully read)."""
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        try:
            data = body.read() if max_bytes is None else body.read(max_bytes + 1)
        finally:
            body.close()
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLarge(f"{self.describe(key)} holds more than {max_bytes:,} bytes")
        return data

    def get_range(self, key: str, start: int, max_bytes: int) -> bytes:
        """The object's bytes from ``start`` to its end, in one ranged GET (see ``LocalObjectStore``)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key, Range=f"bytes={start}-")["Body"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # nothing after ``start``
                return b""
            raise
        try:
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"{self.describe(key)} holds more than {max_bytes:,} bytes after byte {start:,}")
        return data

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def exists(self, key: str) -> bool:
        response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + key, MaxKeys=1)
        return any(item["Key"] == self.prefix + key for item in response.get("Contents", []))

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

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
