"""What the storage ingress checks about a body and its signature, through the real server: an
unsigned streaming body only with its announced trailer, a multipart upload's part checksums at
UploadPart and at Complete (boto3, with and without its default CRC32s), `x-amz-*` headers the
signature does not cover, and numbers in ASCII digits only (partNumber, max-keys)."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.api.test_storage import BUCKET, Ingress, error_of, running_ingress

TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


@pytest.fixture
def ingress() -> Iterator[Ingress]:
    with running_ingress() as running:
        yield running


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def signed(
    access_key: str,
    secret: str,
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    streaming: bool = False,
) -> dict[str, str]:
    """The headers botocore's signer gives `method url` (every header given is signed)."""
    request = AWSRequest(method, url, data=body, headers=headers or {})
    if streaming:  # what botocore's checksum handling tells the signer for a trailing checksum
        request.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32"}}
    else:
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(access_key, secret), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def s3_error(answer: httpx.Response) -> tuple[int, str, str]:
    text = answer.text
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""
    message = text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else ""
    return answer.status_code, code, message


# 1. An unsigned streaming body must announce its trailer ----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",  # a wrong CRC, not announced
        b"b\r\nhello world\r\n0\r\n\r\n",  # no trailer at all
    ],
)
def test_an_unsigned_streaming_body_without_x_amz_trailer_is_refused(ingress: Ingress, body: bytes) -> None:
    job_id, access_key, secret = ingress.job()
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x.txt"
    streaming = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "11"}
    headers = signed(access_key, secret, "PUT", url, headers=streaming, streaming=True)
    assert headers["X-Amz-Content-SHA256"] == TRAILER
    answer = httpx.put(url, content=body, headers=headers, trust_env=False)
    assert s3_error(answer) == (
        400,
        "InvalidRequest",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER needs an X-Amz-Trailer header naming the checksum that "
        "follows the body (x-amz-checksum-crc32).",
    )
    assert answer.headers["content-type"] == "application/xml"
    assert not (ingress.app.state.settings.outputs_dir / job_id).exists()


def test_an_announced_trailer_is_verified_and_an_unannounced_one_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x.txt"
    announced = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": "11",
        "X-Amz-Trailer": "x-amz-checksum-crc32",
    }

    def put(trailers: str) -> httpx.Response:
        headers = signed(access_key, secret, "PUT", url, headers=announced, streaming=True)
        body = b"b\r\nhello world\r\n0\r\n" + trailers.encode() + b"\r\n"
        return httpx.put(url, content=body, headers=headers, trust_env=False)

    assert s3_error(put("x-amz-checksum-crc32:AAAAAA==\r\n")) == (
        400,
        "BadDigest",
        "The CRC32 you specified did not match the calculated checksum.",
    )
    assert s3_error(put(f"x-amz-checksum-crc32:{crc32(b'hello world')}\r\nx-amz-checksum-sha1:x\r\n")) == (
        400,
        "MalformedTrailerError",
        "The body carries the trailer x-amz-checksum-sha1, which X-Amz-Trailer did not announce.",
    )
    assert not (ingress.app.state.settings.outputs_dir / job_id).exists()
    good = put(f"x-amz-checksum-crc32:{crc32(b'hello world')}\r\n")
    assert good.status_code == 200, good.text
    assert good.headers["x-amz-checksum-crc32"] == crc32(b"hello world")
    assert (ingress.app.state.settings.outputs_dir / job_id / "x.txt").read_bytes() == b"hello world"


# 2. Multipart part checksums --------------------------------------------------------------------------


def test_a_crc32_multipart_upload_needs_checks_and_keeps_each_parts_checksum(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    key = f"{job_id}/big.bin"
    s3 = ingress.client(access_key, secret)
    bare = ingress.client(access_key, secret, request_checksum_calculation="when_required")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
    one, two = os.urandom(5 * 1024 * 1024), b"tail"

    with pytest.raises(ClientError) as missing:  # no checksum at all (boto3 told not to add one)
        bare.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=one)
    assert error_of(missing) == (
        "InvalidRequest",
        "The upload was created using a CRC32 checksum: each part must carry x-amz-checksum-crc32 "
        "(as a header or a trailer).",
    )
    with pytest.raises(ClientError) as other:
        s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=one, ChecksumAlgorithm="SHA1"
        )
    assert error_of(other) == (
        "InvalidRequest",
        "Checksum Type mismatch occurred, expected checksum Type: crc32, actual checksum Type: sha1.",
    )
    with pytest.raises(ClientError) as wrong:
        s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=one, ChecksumCRC32="AAAAAA=="
        )
    assert error_of(wrong) == ("BadDigest", "The CRC32 you specified did not match the calculated checksum.")

    # boto3's default: a CRC32 with each part, echoed back as S3 does.
    first = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=one)
    second = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=2, Body=two)
    assert (first["ChecksumCRC32"], second["ChecksumCRC32"]) == (crc32(one), crc32(two))

    def complete(parts: list[dict[str, Any]]) -> dict[str, Any]:
        return s3.complete_multipart_upload(  # type: ignore[no-any-return]
            Bucket=BUCKET, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )

    listed = [
        {"PartNumber": 1, "ETag": first["ETag"], "ChecksumCRC32": first["ChecksumCRC32"]},
        {"PartNumber": 2, "ETag": second["ETag"], "ChecksumCRC32": second["ChecksumCRC32"]},
    ]
    with pytest.raises(ClientError) as differs:
        complete([listed[0], {**listed[1], "ChecksumCRC32": "AAAAAA=="}])
    assert error_of(differs) == (
        "InvalidPart",
        "Part 2's CRC32 does not match the checksum of the part uploaded.",
    )
    with pytest.raises(ClientError) as unlisted:
        complete([listed[0], {"PartNumber": 2, "ETag": second["ETag"]}])
    assert error_of(unlisted) == (
        "InvalidRequest",
        "The upload was created using a crc32 checksum. The complete request must include the checksum "
        "for each part. It was missing for part 2 in the request.",
    )
    assert not (ingress.app.state.settings.outputs_dir / job_id).exists()

    done = complete(listed)
    raw = base64.b64decode(crc32(one)) + base64.b64decode(crc32(two))
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (f"{crc32(raw)}-2", "COMPOSITE")
    assert (ingress.app.state.settings.outputs_dir / key).read_bytes() == one + two


def test_upload_file_sends_crc32s_for_its_parts_and_they_are_checked(
    ingress: Ingress, tmp_path: Path
) -> None:
    """boto3's default (request_checksum_calculation=when_supported): s3transfer creates the upload
    with CRC32 and lists each part's CRC32 at Complete; all of it passes the checks."""
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    sent: dict[str, list[dict[str, str]]] = {}

    def record(request: Any, event_name: str, **_: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
        }
        body = request.body if isinstance(request.body, bytes) else b""
        sent.setdefault(event_name.rsplit(".", 1)[1], []).append({**headers, "body": body.decode("latin-1")})

    s3.meta.events.register("before-send.s3.CreateMultipartUpload", record)
    s3.meta.events.register("before-send.s3.CompleteMultipartUpload", record)
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024))
    s3.upload_file(str(source), BUCKET, f"{job_id}/weights.bin")
    assert sent["CreateMultipartUpload"][0]["x-amz-checksum-algorithm"] == "CRC32"
    assert sent["CompleteMultipartUpload"][0]["body"].count("<ChecksumCRC32>") == 2
    assert (
        ingress.app.state.settings.outputs_dir / job_id / "weights.bin"
    ).read_bytes() == source.read_bytes()


def test_a_full_object_checksum_at_complete_is_checked(ingress: Ingress, tmp_path: Path) -> None:
    """s3transfer with a ChecksumCRC32 given by the caller: a FULL_OBJECT upload, the whole object's
    CRC32 sent with Complete."""
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    data = os.urandom(9 * 1024 * 1024)
    source = tmp_path / "weights.bin"
    source.write_bytes(data)
    with pytest.raises(S3UploadFailedError) as wrong:
        s3.upload_file(str(source), BUCKET, f"{job_id}/a.bin", ExtraArgs={"ChecksumCRC32": "AAAAAA=="})
    assert str(wrong.value).endswith(
        "(BadDigest) when calling the CompleteMultipartUpload operation: "
        "The CRC32 you specified did not match the calculated checksum."
    )
    s3.upload_file(str(source), BUCKET, f"{job_id}/b.bin", ExtraArgs={"ChecksumCRC32": crc32(data)})
    outputs = ingress.app.state.settings.outputs_dir / job_id
    assert sorted(p.name for p in outputs.iterdir()) == ["b.bin"]


# 3. x-amz-* headers outside SignedHeaders -------------------------------------------------------------


def test_x_amz_headers_the_signature_does_not_cover_are_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x"
    headers = signed(access_key, secret, "PUT", url, b"body")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in headers["Authorization"]
    added = {**headers, "x-amz-meta-evil": "1", "x-amz-checksum-crc32": crc32(b"body")}
    answer = httpx.put(url, content=b"body", headers=added, trust_env=False)
    assert s3_error(answer) == (
        403,
        "AccessDenied",
        "There were headers present in the request which were not signed: "
        "x-amz-checksum-crc32, x-amz-meta-evil",
    )
    assert not (ingress.app.state.settings.outputs_dir / job_id).exists()
    # Headers botocore never signs (user-agent, expect, x-amzn-trace-id) are not x-amz-*: still fine.
    others = {**headers, "User-Agent": "test", "X-Amzn-Trace-Id": "Root=1-0-0", "Expect": "100-continue"}
    good = httpx.put(url, content=b"body", headers=others, trust_env=False)
    assert good.status_code == 200, good.text


# 4. Numbers are ASCII digits --------------------------------------------------------------------------


def test_a_part_number_or_max_keys_in_other_digits_is_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    key = f"{job_id}/big"
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    base = f"{ingress.base}/api/cloud/storage/{BUCKET}"
    for number in ("%EF%BC%95", "%2B5", "%205", "5_0", "-1"):  # a full-width 5, a sign, a space, "_"
        url = f"{base}/{key}?partNumber={number}&uploadId={upload}"
        answer = httpx.put(
            url, content=b"x", headers=signed(access_key, secret, "PUT", url, b"x"), trust_env=False
        )
        assert s3_error(answer) == (
            400,
            "InvalidArgument",
            "partNumber must be an integer from 1 to 10000.",
        ), number
    for keys in ("%EF%BC%95", "%2B5", "-1"):
        url = f"{base}?list-type=2&prefix={job_id}%2F&max-keys={keys}"
        answer = httpx.get(url, headers=signed(access_key, secret, "GET", url), trust_env=False)
        assert s3_error(answer) == (
            400,
            "InvalidArgument",
            "max-keys must be an integer from 0 to 2147483647.",
        ), keys
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in upload)  # ａｂｃ...
    url = f"{base}/{key}?partNumber=1&uploadId={quote(full_width)}"
    answer = httpx.put(
        url, content=b"x", headers=signed(access_key, secret, "PUT", url, b"x"), trust_env=False
    )
    assert s3_error(answer)[:2] == (404, "NoSuchUpload")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{job_id}/", MaxKeys=5)["MaxKeys"] == 5
