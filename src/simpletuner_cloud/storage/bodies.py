"""Receiving one object's bytes (a PutObject or an UploadPart): plain bodies and `aws-chunked` ones,
streamed into a temporary file, never more than the limit, then checked: the length the client
declared, the payload SHA-256 it signed, `Content-MD5`, and the `x-amz-checksum-*` value sent as a
header or as an aws-chunked trailer. Any failure discards the file."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import anyio

from simpletuner_cloud.storage.chunked import AwsChunkedDecoder
from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.objects import IncomingFile
from simpletuner_cloud.storage.sigv4 import STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
SUPPORTED = ("crc32", "sha1", "sha256")
WRITE_BATCH = 1024 * 1024


@dataclass
class Body:
    file: IncomingFile
    checksum_algorithm: str | None
    checksum_value: str | None

    def echo_headers(self) -> dict[str, str]:
        if self.checksum_algorithm and self.checksum_value:
            return {f"x-amz-checksum-{self.checksum_algorithm}": self.checksum_value}
        return {}


def _get(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _announced_algorithm(headers: Sequence[tuple[str, str]]) -> str | None:
    """The checksum algorithm the request says it carries (header, trailer or SDK announcement)."""
    for name in ALGORITHMS:
        if _get(headers, f"x-amz-checksum-{name}") is not None:
            return name
    trailer = (_get(headers, "x-amz-trailer") or "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        return trailer.removeprefix("x-amz-checksum-")
    announced = (_get(headers, "x-amz-sdk-checksum-algorithm") or "").strip().lower()
    return announced or None


def _length(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be a number of bytes.") from None
    if length < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative.")
    return length


async def receive_body(
    headers: Sequence[tuple[str, str]],
    stream: AsyncIterator[bytes],
    begin: Callable[[], IncomingFile],
    limit: int,
    content_sha256: str,
) -> Body:
    streaming = (
        content_sha256 == STREAMING_UNSIGNED_TRAILER
        or "aws-chunked" in (_get(headers, "content-encoding") or "").lower()
    )
    declared = _length(_get(headers, "content-length"), "Content-Length")
    expected = _length(_get(headers, "x-amz-decoded-content-length"), "X-Amz-Decoded-Content-Length")
    if streaming and expected is None:
        raise S3Error("InvalidRequest", "An aws-chunked body needs X-Amz-Decoded-Content-Length.")
    if not streaming:
        expected = declared
    too_large = S3Error("EntityTooLarge", f"The object is larger than this server accepts ({limit:,} bytes).")
    if expected is not None and expected > limit:
        raise too_large  # before a byte is read: the client never gets its 100 Continue
    algorithm = _announced_algorithm(headers)
    if algorithm is not None and algorithm not in SUPPORTED:
        raise S3Error(
            "InvalidRequest", f"The checksum algorithm {algorithm.upper()} is not supported; use CRC32."
        )
    file = await anyio.to_thread.run_sync(begin)
    try:
        decoder = AwsChunkedDecoder() if streaming else None
        pending = bytearray()
        size = 0
        async for piece in stream:
            data = decoder.feed(piece) if decoder is not None else piece
            size += len(data)
            if size > limit:
                raise too_large
            pending += data
            if len(pending) >= WRITE_BATCH:
                await anyio.to_thread.run_sync(file.write, bytes(pending))
                pending.clear()
        if pending:
            await anyio.to_thread.run_sync(file.write, bytes(pending))
        if decoder is not None:
            decoder.finish()
        if expected is not None and size != expected:
            raise S3Error("IncompleteBody", f"The body has {size:,} bytes; the request said {expected:,}.")
        if (
            content_sha256 not in (UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER)
            and file.sha256_hex != content_sha256
        ):
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        _check_md5(_get(headers, "content-md5"), file)
        value = None
        if algorithm is not None:
            trailers = decoder.trailers if decoder is not None else {}
            value = _get(headers, f"x-amz-checksum-{algorithm}") or trailers.get(
                f"x-amz-checksum-{algorithm}"
            )
            if value is None:
                raise S3Error(
                    "InvalidRequest", f"The request announced a {algorithm.upper()} checksum but sent none."
                )
            if value.strip() != file.checksum(algorithm):
                raise S3Error(
                    "BadDigest",
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                )
    except BaseException:
        file.discard()
        raise
    return Body(file, algorithm, value.strip() if value else None)


def _check_md5(value: str | None, file: IncomingFile) -> None:
    if value is None:
        return
    try:
        sent = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.") from None
    if sent.hex() != file.md5_hex:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
