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

# Every x-amz-checksum-<name> botocore knows, so that one this server cannot check is refused, not ignored.
ALGORITHMS = (
    "crc32", "crc32c", "crc64nvme", "sha1", "sha256", "sha512", "md5", "xxhash64", "xxhash3", "xxhash128"
)  # fmt: skip
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


@dataclass(frozen=True)
class Announced:
    """What the request's headers say about its checksum: the algorithm (from a checksum header,
    the trailer or the SDK's announcement) and the trailer names that may follow the body."""

    algorithm: str | None
    trailers: frozenset[str]


def announced_checksum(headers: Sequence[tuple[str, str]]) -> Announced:
    in_headers = [name for name in ALGORITHMS if _get(headers, f"x-amz-checksum-{name}") is not None]
    trailers = frozenset(
        name.strip().lower() for name in (_get(headers, "x-amz-trailer") or "").split(",") if name.strip()
    )
    in_trailers = []
    for name in sorted(trailers):
        algorithm = name.removeprefix("x-amz-checksum-")
        if algorithm == name or algorithm not in ALGORITHMS:
            raise S3Error(
                "InvalidRequest", "The value specified in the x-amz-trailer header is not supported."
            )
        in_trailers.append(algorithm)
    given = in_headers + in_trailers
    if len(given) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    sdk = (_get(headers, "x-amz-sdk-checksum-algorithm") or "").strip().lower() or None
    if sdk is not None and given and sdk != given[0]:
        raise S3Error(
            "InvalidRequest",
            f"x-amz-sdk-checksum-algorithm says {sdk.upper()} but the checksum sent is {given[0].upper()}.",
        )
    return Announced(given[0] if given else sdk, trailers)


def _length(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    # ASCII digits only: int() also takes a sign, "_", whitespace and other scripts' digits.
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise S3Error("InvalidArgument", f"{name} must be a number of bytes.")
    return int(value)


async def receive_body(
    headers: Sequence[tuple[str, str]],
    stream: AsyncIterator[bytes],
    begin: Callable[[], IncomingFile],
    limit: int,
    content_sha256: str,
    required_checksum: str | None = None,
) -> Body:
    """`required_checksum`: the algorithm each part of a multipart upload created with one must carry."""
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
    announced = announced_checksum(headers)
    algorithm = announced.algorithm
    if content_sha256 == STREAMING_UNSIGNED_TRAILER and not announced.trailers:
        # The payload is not signed: without a trailing checksum nothing would vouch for the bytes.
        raise S3Error(
            "InvalidRequest",
            f"{STREAMING_UNSIGNED_TRAILER} needs an X-Amz-Trailer header naming the checksum that "
            "follows the body (x-amz-checksum-crc32).",
        )
    if algorithm is not None and algorithm not in SUPPORTED:
        raise S3Error(
            "InvalidRequest", f"The checksum algorithm {algorithm.upper()} is not supported; use CRC32."
        )
    if required_checksum is not None and algorithm is None:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using a {required_checksum.upper()} checksum: each part must carry "
            f"x-amz-checksum-{required_checksum} (as a header or a trailer).",
        )
    if required_checksum is not None and algorithm != required_checksum:
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: {required_checksum}, "
            f"actual checksum Type: {algorithm}.",
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
        trailers = decoder.trailers if decoder is not None else {}
        unannounced = sorted(set(trailers) - announced.trailers)
        if unannounced:
            raise S3Error(
                "MalformedTrailerError",
                f"The body carries the trailer {unannounced[0]}, which X-Amz-Trailer did not announce.",
            )
        value = None
        if algorithm is not None:
            name = f"x-amz-checksum-{algorithm}"
            value = _get(headers, name) or trailers.get(name)
            if value is None and name in announced.trailers:
                raise S3Error(
                    "MalformedTrailerError", f"X-Amz-Trailer announced {name} but the body ended without it."
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
