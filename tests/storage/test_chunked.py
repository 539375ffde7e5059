"""The aws-chunked decoder: boto3's framing decoded whatever the pieces the network delivers, the
trailers kept, and every malformed or cut body refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpletuner_cloud.storage.chunked import AwsChunkedDecoder
from simpletuner_cloud.storage.errors import S3Error

HELLO = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"


def framed(payload: bytes, chunk: int, trailers: bytes = b"x-amz-checksum-crc32:AAAAAA==\r\n") -> bytes:
    body = b"".join(
        f"{len(payload[i : i + chunk]):x}\r\n".encode() + payload[i : i + chunk] + b"\r\n"
        for i in range(0, len(payload), chunk)
    )
    return body + b"0\r\n" + trailers + b"\r\n"


def decode(body: bytes, cut: int = 1 << 30) -> tuple[bytes, AwsChunkedDecoder]:
    decoder = AwsChunkedDecoder()
    out = b"".join(decoder.feed(body[i : i + cut]) for i in range(0, len(body), cut))
    decoder.finish()
    return out, decoder


def test_the_boto3_example_decodes_with_its_trailer() -> None:
    out, decoder = decode(HELLO)
    assert out == b"hello world" and decoder.trailers == {"x-amz-checksum-crc32": "DUoRhQ=="}


@given(payload=st.binary(max_size=3000), chunk=st.integers(1, 700), cut=st.integers(1, 97))
def test_any_payload_in_any_pieces_decodes_to_itself(payload: bytes, chunk: int, cut: int) -> None:
    assert decode(framed(payload, chunk), cut)[0] == payload


def test_chunk_extensions_are_ignored() -> None:
    assert decode(b"5;chunk-signature=abc\r\nhello\r\n0\r\n\r\n")[0] == b"hello"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "The aws-chunked body is malformed: bad chunk size b'zz'."),
        (
            b"3\r\nhello\r\n0\r\n\r\n",
            "The aws-chunked body is malformed: a chunk is longer than its size says.",
        ),
        (b"0\r\nno colon here\r\n\r\n", "The aws-chunked body is malformed: a trailer line has no colon."),
        (b"0\r\n\r\nmore", "The aws-chunked body is malformed: bytes after the trailers."),
        (b"9" * 5000, "The aws-chunked body is malformed: a line is too long."),
        (b"ffffffff\r\n", "The aws-chunked body is malformed: a chunk is too large."),
        # int(text, 16) takes these; a chunk size is ASCII hex digits and nothing else.
        (b"0xb\r\nhello world\r\n0\r\n\r\n", "The aws-chunked body is malformed: bad chunk size b'0xb'."),
        (b"+b\r\nhello world\r\n0\r\n\r\n", "The aws-chunked body is malformed: bad chunk size b'+b'."),
        (b"-0\r\n\r\n", "The aws-chunked body is malformed: bad chunk size b'-0'."),
        (b" b\r\nhello world\r\n0\r\n\r\n", "The aws-chunked body is malformed: bad chunk size b' b'."),
        (b"1_0\r\n", "The aws-chunked body is malformed: bad chunk size b'1_0'."),
        (b"\r\n", "The aws-chunked body is malformed: bad chunk size b''."),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(S3Error) as refused:
        decode(body)
    assert (refused.value.code, refused.value.message) == ("IncompleteBody", message)


def test_a_cut_body_is_incomplete() -> None:
    decoder = AwsChunkedDecoder()
    decoder.feed(HELLO[:-4])
    with pytest.raises(S3Error) as refused:
        decoder.finish()
    assert refused.value.message == "The body ended before the aws-chunked framing was complete."
