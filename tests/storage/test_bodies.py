"""Receiving one object's body: what the headers announce about its checksum is what must arrive and
match (one checksum, every trailer announced, an unsigned streaming body only with its trailer), a
multipart upload's algorithm is required of each part, and lengths are ASCII digits. Every refusal
leaves nothing behind."""

from __future__ import annotations

import base64
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simpletuner_cloud.storage.bodies import Body, receive_body
from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.objects import ObjectStore

TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
CRC = base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")).decode()  # DUoRhQ==
STREAMING = [
    ("Content-Encoding", "aws-chunked"),
    ("X-Amz-Decoded-Content-Length", "11"),
    ("X-Amz-Content-SHA256", TRAILER),
]
ANNOUNCED = [*STREAMING, ("X-Amz-Trailer", "x-amz-checksum-crc32")]


def chunked(trailers: str = f"x-amz-checksum-crc32:{CRC}\r\n") -> bytes:
    return b"b\r\nhello world\r\n0\r\n" + trailers.encode() + b"\r\n"


async def receive(
    store: ObjectStore,
    headers: list[tuple[str, str]],
    body: bytes,
    content_sha256: str = TRAILER,
    required: str | None = None,
) -> Body:
    async def stream() -> AsyncIterator[bytes]:
        yield body

    extra = {"required_checksum": required} if required else {}
    return await receive_body(headers, stream(), store.begin, 1 << 20, content_sha256, **extra)


async def refused(store: ObjectStore, *args: object, **kwargs: object) -> tuple[str, str]:
    with pytest.raises(S3Error) as error:
        await receive(store, *args, **kwargs)  # type: ignore[arg-type]
    assert list(store.incoming_dir.glob("*")) == []  # no temporary file left
    return error.value.code, error.value.message


async def test_an_announced_trailer_is_checked_and_kept(tmp_path: Path) -> None:
    body = await receive(ObjectStore(tmp_path), ANNOUNCED, chunked())
    body.file.close()
    assert body.file.path.read_bytes() == b"hello world"
    assert body.echo_headers() == {"x-amz-checksum-crc32": CRC}


NEEDS_TRAILER = (
    "InvalidRequest",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER needs an X-Amz-Trailer header naming the checksum that "
    "follows the body (x-amz-checksum-crc32).",
)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # No X-Amz-Trailer: with a wrong trailer, with a right one, with none (the body is not signed).
        (STREAMING, chunked("x-amz-checksum-crc32:AAAAAA==\r\n"), NEEDS_TRAILER),
        (STREAMING, chunked(), NEEDS_TRAILER),
        (STREAMING, chunked(""), NEEDS_TRAILER),
        (
            ANNOUNCED,
            chunked("x-amz-checksum-crc32:AAAAAA==\r\n"),
            ("BadDigest", "The CRC32 you specified did not match the calculated checksum."),
        ),
        (
            ANNOUNCED,
            chunked(""),
            ("MalformedTrailerError",
             "X-Amz-Trailer announced x-amz-checksum-crc32 but the body ended without it."),
        ),
        (
            ANNOUNCED,
            chunked(f"x-amz-checksum-crc32:{CRC}\r\nx-amz-meta-evil:1\r\n"),
            ("MalformedTrailerError",
             "The body carries the trailer x-amz-meta-evil, which X-Amz-Trailer did not announce."),
        ),
        (
            [*STREAMING, ("X-Amz-Trailer", "x-amz-meta-evil")],
            chunked("x-amz-meta-evil:1\r\n"),
            ("InvalidRequest", "The value specified in the x-amz-trailer header is not supported."),
        ),
        (
            [*ANNOUNCED, ("x-amz-checksum-sha256", "x")],
            chunked(),
            ("InvalidRequest",
             "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."),
        ),
        (
            [*ANNOUNCED, ("x-amz-sdk-checksum-algorithm", "SHA256")],
            chunked(),
            ("InvalidRequest", "x-amz-sdk-checksum-algorithm says SHA256 but the checksum sent is CRC32."),
        ),
        (
            [*STREAMING, ("X-Amz-Trailer", "x-amz-checksum-sha512")],
            chunked("x-amz-checksum-sha512:x\r\n"),
            ("InvalidRequest", "The checksum algorithm SHA512 is not supported; use CRC32."),
        ),
    ],
)  # fmt: skip
async def test_what_the_headers_announce_is_what_must_arrive(
    tmp_path: Path, headers: list[tuple[str, str]], body: bytes, expected: tuple[str, str]
) -> None:
    assert await refused(ObjectStore(tmp_path), headers, body) == expected


async def test_a_checksum_header_botocore_knows_and_this_server_cannot_check_is_refused(
    tmp_path: Path,
) -> None:
    """x-amz-checksum-sha512 (and md5, xxhash...) were ignored: the object was stored unchecked."""
    headers = [("Content-Length", "5"), ("x-amz-checksum-sha512", "AAAA")]
    assert await refused(ObjectStore(tmp_path), headers, b"hello", "UNSIGNED-PAYLOAD") == (
        "InvalidRequest",
        "The checksum algorithm SHA512 is not supported; use CRC32.",
    )


async def test_a_multipart_uploads_algorithm_is_required_of_each_part(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    plain = [("Content-Length", "11")]
    assert await refused(store, plain, b"hello world", "UNSIGNED-PAYLOAD", required="crc32") == (
        "InvalidRequest",
        "The upload was created using a CRC32 checksum: each part must carry x-amz-checksum-crc32 "
        "(as a header or a trailer).",
    )
    sha1 = [*plain, ("x-amz-checksum-sha1", "x")]
    assert await refused(store, sha1, b"hello world", "UNSIGNED-PAYLOAD", required="crc32") == (
        "InvalidRequest",
        "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: sha1.",
    )
    body = await receive(store, ANNOUNCED, chunked(), required="crc32")
    assert (body.checksum_algorithm, body.checksum_value) == ("crc32", CRC)


@pytest.mark.parametrize("value", ["+11", " 11", "1_1", "١١", "１１", "11.0", "-0", "0x0b", "1" * 21])
@pytest.mark.parametrize("header", ["Content-Length", "X-Amz-Decoded-Content-Length"])
async def test_lengths_are_ascii_digits(tmp_path: Path, header: str, value: str) -> None:
    """int() takes a sign, spaces, "_" and other scripts' digits; the rule is ASCII digits."""
    headers = [(h, value if h == header else v) for h, v in [*ANNOUNCED, ("Content-Length", "51")]]
    assert await refused(ObjectStore(tmp_path), headers, chunked()) == (
        "InvalidArgument",
        f"{header} must be a number of bytes.",
    )
