"""Objects as files under one root (`cloud_outputs/`): a key is a relative path of plain names, never
anything that could leave the root (`..`, absolute paths, backslashes, control characters, a link
on the way). A write streams into a private temporary file in the root's own `.incoming/` folder
(same file system), hashing as it goes; once checked it is renamed into place, so a reader never sees
half a file and a repeated upload of the same key replaces it in one step. Blocking: use a thread."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simpletuner_cloud.storage.errors import S3Error

INCOMING = ".incoming"
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class StoredObject:
    key: str
    path: Path
    size: int
    sha256: str
    md5: str
    crc32: str  # base64 of the big-endian CRC32, as `x-amz-checksum-crc32` carries it
    sha1: str  # base64, as `x-amz-checksum-sha1`
    sha256_b64: str  # base64, as `x-amz-checksum-sha256`
    etag: str


@dataclass(frozen=True)
class ListedFile:
    key: str
    size: int
    mtime: float


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class IncomingFile:
    """A temporary file being received, with the digests S3 clients may check."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix="upload-")  # 0600 from the start
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1()  # noqa: S324 (the S3 checksum algorithm, not a security use)
        self._md5 = hashlib.md5()  # noqa: S324 (S3's ETag)
        self._crc32 = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.size += len(data)
        self._sha256.update(data)
        self._sha1.update(data)
        self._md5.update(data)
        self._crc32 = zlib.crc32(data, self._crc32)

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)

    def checksum(self, algorithm: str) -> str:
        """The base64 digest for `x-amz-checksum-<algorithm>`."""
        if algorithm == "crc32":
            return _b64(self._crc32.to_bytes(4, "big"))
        if algorithm == "sha1":
            return _b64(self._sha1.digest())
        if algorithm == "sha256":
            return _b64(self._sha256.digest())
        raise S3Error(
            "InvalidRequest", f"The checksum algorithm {algorithm.upper()} is not supported; use CRC32."
        )

    @property
    def sha256_hex(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    def stored(self, key: str, path: Path, etag: str | None = None) -> StoredObject:
        return StoredObject(
            key=key,
            path=path,
            size=self.size,
            sha256=self.sha256_hex,
            md5=self.md5_hex,
            crc32=self.checksum("crc32"),
            sha1=self.checksum("sha1"),
            sha256_b64=self.checksum("sha256"),
            etag=etag or self.md5_hex,
        )


def key_parts(key: str) -> list[str]:
    """The names of a key, or S3Error for one that is not a plain relative path."""
    if not key:
        raise S3Error("InvalidArgument", "The object key is empty.")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", f"The object key is longer than {MAX_KEY_BYTES} bytes.")
    if "\\" in key or any(not c.isprintable() for c in key):
        raise S3Error("InvalidArgument", "The object key has a backslash or a control character.")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise S3Error("InvalidArgument", "The object key must be a relative path without '.', '..' or '//'.")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        raise S3Error("KeyTooLongError", f"A name in the object key is longer than {MAX_NAME_BYTES} bytes.")
    return parts


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def incoming_dir(self) -> Path:
        return self.root / INCOMING

    def begin(self) -> IncomingFile:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return IncomingFile(self.incoming_dir)

    def resolve(self, key: str) -> Path:
        """The key's path; refuses one that passes through a link or names the private folders."""
        parts = key_parts(key)
        if parts[0].startswith("."):
            raise S3Error("InvalidArgument", "The object key may not start with a hidden name.")
        path = self.root
        for part in parts[:-1]:
            path = path / part
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise S3Error("InvalidRequest", f"{part!r} in the key is not a folder here.")
        return path / parts[-1]

    def commit(self, incoming: IncomingFile, key: str, etag: str | None = None) -> StoredObject:
        """Rename the checked file into place (replacing what the key held), its folders made 0700.
        On any refusal the temporary file is gone."""
        try:
            return self._commit(incoming, key, etag)
        except BaseException:
            incoming.discard()
            raise

    def _commit(self, incoming: IncomingFile, key: str, etag: str | None) -> StoredObject:
        target = self.resolve(key)
        incoming.close()
        folder = self.root
        for part in key_parts(key)[:-1]:
            folder = folder / part
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                raise S3Error("InvalidRequest", f"{part!r} in the key is not a folder here.")
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise S3Error("InvalidRequest", "The key names a folder that holds other objects.")
        os.chmod(incoming.path, 0o600)
        os.replace(incoming.path, target)
        return incoming.stored(key, target, etag)

    def file(self, key: str) -> tuple[Path, os.stat_result]:
        path = self.resolve(key)
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise S3Error("NoSuchKey", "The specified key does not exist.", resource=key) from None
        if not stat.S_ISREG(info.st_mode):
            raise S3Error("NoSuchKey", "The specified key does not exist.", resource=key)
        return path, info

    def delete(self, key: str) -> bool:
        path = self.resolve(key)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return False
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def walk(self, top: str) -> Iterator[ListedFile]:
        """Every regular file under the folder `top` (one key name), links skipped, in key order."""
        base = self.root / key_parts(top)[0]
        found: list[ListedFile] = []
        for folder, dirs, files in os.walk(base, followlinks=False):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for name in files:
                path = Path(folder, name)
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode):
                    key = path.relative_to(self.root).as_posix()
                    found.append(ListedFile(key, info.st_size, info.st_mtime))
        yield from sorted(found, key=lambda item: item.key)
