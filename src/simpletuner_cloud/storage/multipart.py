"""Multipart uploads (boto3 switches to them above 8 MiB): each upload is a private folder under the
root's `.multipart/` holding its target key and owner, and one file per received part (parts may
arrive out of order and in parallel; a repeated part number replaces the earlier one). An upload
created with a checksum algorithm takes only parts that carry that checksum (verified as they
arrive, see bodies.py). Completing checks the listed parts, their ETags and any checksums the list
gives against the parts received, joins them into one checked temporary file and renames it into
place like a single PUT. Blocking: use a thread."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.objects import IncomingFile, ObjectStore, StoredObject

MULTIPART = ".multipart"
MIN_PART = 5 * 1024 * 1024  # S3's smallest part, except the last one
MAX_PARTS = 10_000
STALE_SECONDS = 7 * 24 * 3600  # an upload neither completed nor aborted is removed after this
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # secrets.token_hex(16), ASCII only


@dataclass(frozen=True)
class Upload:
    upload_id: str
    key: str
    owner: str  # the job whose key started it
    checksum: str | None  # the algorithm announced by CreateMultipartUpload (e.g. crc32)
    checksum_type: str = "COMPOSITE"  # or FULL_OBJECT (x-amz-checksum-type at CreateMultipartUpload)


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    checksum: str | None  # base64, as x-amz-checksum-<algorithm> carried it, verified on arrival
    algorithm: str | None = None


@dataclass(frozen=True)
class ListedPart:
    """One Part of a CompleteMultipartUpload body: its number, ETag and any Checksum<ALGORITHM>."""

    number: int
    etag: str
    checksums: dict[str, str] = field(default_factory=dict)  # lowercase algorithm -> base64


@dataclass(frozen=True)
class Completed:
    stored: StoredObject
    checksum_algorithm: str | None
    checksum: str | None  # COMPOSITE: "<digest of the parts' digests>-<parts>"; FULL_OBJECT: the object's
    checksum_type: str | None


def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "sha1":
        return hashlib.sha1(data).digest()  # noqa: S324 (the S3 checksum algorithm)
    return hashlib.sha256(data).digest()


class MultipartUploads:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.folder = store.root / MULTIPART

    def _dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise S3Error("NoSuchUpload", "The specified upload does not exist.")
        return self.folder / upload_id

    def create(self, key: str, owner: str, checksum: str | None, checksum_type: str = "COMPOSITE") -> Upload:
        self.store.resolve(key)  # refuse a bad key now, not at completion
        upload = Upload(secrets.token_hex(16), key, owner, checksum, checksum_type)
        folder = self._dir(upload.upload_id)
        folder.mkdir(mode=0o700, parents=True)
        meta = {
            "key": key,
            "owner": owner,
            "checksum": checksum,
            "checksum_type": checksum_type,
            "created": time.time(),
        }
        (folder / "upload.json").write_text(json.dumps(meta))
        return upload

    def get(self, upload_id: str) -> Upload:
        try:
            meta = json.loads((self._dir(upload_id) / "upload.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            raise S3Error(
                "NoSuchUpload", "The specified upload does not exist.", resource=upload_id
            ) from None
        return Upload(
            upload_id,
            str(meta["key"]),
            str(meta["owner"]),
            meta.get("checksum"),
            meta.get("checksum_type") or "COMPOSITE",
        )

    def add_part(
        self,
        upload: Upload,
        number: int,
        incoming: IncomingFile,
        algorithm: str | None,
        checksum: str | None,
    ) -> Part:
        """`algorithm`/`checksum`: the part's verified x-amz-checksum-*, if it carried one."""
        if not 1 <= number <= MAX_PARTS:
            incoming.discard()
            raise S3Error("InvalidArgument", f"Part number must be an integer from 1 to {MAX_PARTS}.")
        if upload.checksum is not None and (algorithm != upload.checksum or checksum is None):
            incoming.discard()
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {upload.checksum.upper()} checksum: "
                "each part must carry it.",
            )
        folder = self._dir(upload.upload_id)
        if not folder.is_dir():
            incoming.discard()
            raise S3Error("NoSuchUpload", "The specified upload does not exist.", resource=upload.upload_id)
        incoming.close()
        part = Part(number, incoming.size, incoming.md5_hex, checksum, algorithm if checksum else None)
        # The part's data first, its record last: a record always describes a complete part file.
        incoming.path.replace(folder / f"{number:05d}.part")
        record = {"size": part.size, "etag": part.etag, "checksum": checksum, "algorithm": part.algorithm}
        (folder / f"{number:05d}.json").write_text(json.dumps(record))
        return part

    def parts(self, upload: Upload) -> dict[int, Part]:
        found = {}
        for record in sorted(self._dir(upload.upload_id).glob("*.json")):
            if record.name == "upload.json":
                continue
            meta = json.loads(record.read_text())
            number = int(record.stem)
            checksum = meta.get("checksum")
            # A record written before parts kept their algorithm carries the upload's, if any.
            algorithm = meta.get("algorithm") or (upload.checksum if checksum else None)
            found[number] = Part(number, int(meta["size"]), str(meta["etag"]), checksum, algorithm)
        return found

    def complete(
        self, upload: Upload, listed: list[ListedPart], full_checksum: str | None = None
    ) -> Completed:
        """`full_checksum`: the object's checksum in the upload's algorithm, if the client sent one
        (x-amz-checksum-<algorithm> on the Complete request): of the whole object for a FULL_OBJECT
        upload, of the parts' checksums for a COMPOSITE one. Checked before anything is kept."""
        if not listed:
            raise S3Error("MalformedXML", "CompleteMultipartUpload lists no parts.")
        numbers = [item.number for item in listed]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "The parts must be listed in ascending order, each once.")
        received = self.parts(upload)
        for index, item in enumerate(listed):
            part = received.get(item.number)
            if part is None or part.etag != item.etag.strip('"'):
                raise S3Error(
                    "InvalidPart", f"Part {item.number} was not uploaded or its ETag does not match."
                )
            self._check_listed_checksums(upload, item, part)
            if index < len(listed) - 1 and part.size < MIN_PART:
                raise S3Error(
                    "EntityTooSmall", f"Part {item.number} is smaller than 5 MiB and is not the last part."
                )
        incoming = self.store.begin()
        digests = hashlib.md5()  # noqa: S324 (S3's multipart ETag: md5 of the parts' md5s)
        try:
            folder = self._dir(upload.upload_id)
            for item in listed:
                digests.update(bytes.fromhex(received[item.number].etag))
                with (folder / f"{item.number:05d}.part").open("rb") as source:
                    while chunk := source.read(1024 * 1024):
                        incoming.write(chunk)
            algorithm = upload.checksum
            if algorithm is not None and upload.checksum_type == "FULL_OBJECT":
                checksum: str | None = incoming.checksum(algorithm)
            elif algorithm is not None:
                joined = b"".join(base64.b64decode(received[item.number].checksum or "") for item in listed)
                checksum = f"{base64.b64encode(_digest(algorithm, joined)).decode()}-{len(listed)}"
            else:
                checksum = None
            if full_checksum is not None and checksum is not None:
                sent = full_checksum.strip()
                if sent not in (checksum, checksum.rsplit("-", 1)[0]):
                    raise S3Error(
                        "BadDigest",
                        f"The {str(algorithm).upper()} you specified did not match the calculated checksum.",
                    )
            stored = self.store.commit(incoming, upload.key, etag=f"{digests.hexdigest()}-{len(listed)}")
        except BaseException:
            incoming.discard()
            raise
        self.abort(upload)
        return Completed(stored, algorithm, checksum, upload.checksum_type if algorithm else None)

    @staticmethod
    def _check_listed_checksums(upload: Upload, item: ListedPart, part: Part) -> None:
        if upload.checksum is not None and upload.checksum not in item.checksums:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {upload.checksum} checksum. The complete request must "
                f"include the checksum for each part. It was missing for part {item.number} in the request.",
            )
        for algorithm, value in item.checksums.items():
            if algorithm != part.algorithm or value.strip() != part.checksum:
                raise S3Error(
                    "InvalidPart",
                    f"Part {item.number}'s {algorithm.upper()} does not match the checksum of the part "
                    "uploaded.",
                )

    def abort(self, upload: Upload) -> None:
        shutil.rmtree(self._dir(upload.upload_id), ignore_errors=True)

    def remove_stale(self, now: float | None = None) -> int:
        """Drop uploads started long ago and never finished; returns how many."""
        now = now or time.time()
        removed = 0
        if not self.folder.is_dir():
            return 0
        for folder in self.folder.iterdir():
            try:
                created = float(json.loads((folder / "upload.json").read_text())["created"])
            except (OSError, ValueError, KeyError):
                created = folder.stat().st_mtime
            if now - created > STALE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed
