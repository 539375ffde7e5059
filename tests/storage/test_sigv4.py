"""SigV4 checks on received requests: the Authorization header's shape, the request time, and the
signature recomputed by botocore over what the client sent (any changed part fails)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.sigv4 import check_request_time, parse_authorization, signature_matches

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
URL = "http://training.example.com:8080/api/cloud/storage/cloud-outputs/job_x/a%20b.txt"


def signed(method: str = "PUT", url: str = URL, body: bytes = b"data") -> AWSRequest:
    request = AWSRequest(
        method, url, data=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    S3SigV4Auth(Credentials("STJKEY", SECRET), "s3", "us-east-1").add_auth(request)
    return request


def matches(
    request: AWSRequest, *, secret: str = SECRET, headers: list[tuple[str, str]] | None = None
) -> bool:
    items = headers if headers is not None else [(k, str(v)) for k, v in request.headers.items()]
    auth = parse_authorization(
        request.headers["Authorization"],
        request.headers["X-Amz-Date"],
        request.headers["X-Amz-Content-SHA256"],
    )
    path, _, query = request.url.split("://", 1)[1].partition("/")[2].partition("?")
    host = request.url.split("://", 1)[1].split("/", 1)[0]
    return signature_matches(
        auth,
        secret,
        method=request.method,
        url=f"http://{host}/{path}",
        raw_query=query,
        headers=[("Host", host), *items],
    )


def test_a_botocore_signed_request_verifies_and_the_wrong_secret_does_not() -> None:
    request = signed()
    assert matches(request)
    assert not matches(request, secret=SECRET[:-1] + "X")


def test_the_query_is_canonicalised_whatever_its_order_and_encoding() -> None:
    request = signed("GET", URL.rsplit("/", 2)[0] + "?prefix=job_x%2F&list-type=2", b"")
    assert matches(request)


def verify(
    request: AWSRequest, *, method: str, host: str, path: str, query: str, headers: dict[str, str]
) -> bool:
    auth = parse_authorization(
        headers["Authorization"], headers["X-Amz-Date"], headers["X-Amz-Content-SHA256"]
    )
    items = [("Host", host), *headers.items()]
    return signature_matches(
        auth, SECRET, method=method, url=f"http://{host}{path}", raw_query=query, headers=items
    )


@given(which=st.sampled_from(["method", "host", "path", "query", "sha256", "time"]), index=st.integers(0, 60))
def test_any_changed_signed_part_fails(which: str, index: int) -> None:
    request = signed("PUT", URL + "?partNumber=1&uploadId=abc")
    headers = {k: str(v) for k, v in request.headers.items()}
    parts = {
        "method": "PUT",
        "host": URL.split("/")[2],
        "path": "/" + URL.split("/", 3)[3],
        "query": "partNumber=1&uploadId=abc",
    }
    assert verify(request, **parts, headers=headers)

    def flip(text: str, at: int) -> str:
        i = at % len(text)
        return text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1 :]

    if which == "method":
        parts["method"] = "POST"
    elif which in ("host", "path", "query"):
        parts[which] = flip(parts[which], index)
    elif which == "sha256":
        headers["X-Amz-Content-SHA256"] = flip(headers["X-Amz-Content-SHA256"], index)
    else:  # the time of day (the day itself is checked against the scope before any signature)
        stamp = headers["X-Amz-Date"]
        headers["X-Amz-Date"] = stamp[:9] + flip(stamp[9:15], index) + "Z"
    assert not verify(request, **parts, headers=headers)


def test_a_signed_header_missing_from_the_request_fails() -> None:
    request = signed()
    items = [(k, str(v)) for k, v in request.headers.items() if k.lower() != "x-amz-content-sha256"]
    assert not matches(request, headers=items)


SCOPE = "AWS4-HMAC-SHA256 Credential=STJKEY/20261201/us-east-1/s3/aws4_request"


@pytest.mark.parametrize(
    ("header", "code", "message"),
    [
        (None, "AccessDenied", "Anonymous access is not allowed: sign the request with the job's key."),
        ("AWS STJKEY:abc", "InvalidRequest", "Only AWS4-HMAC-SHA256 signatures are accepted."),
        (SCOPE, "AuthorizationHeaderMalformed",
         "The Authorization header lacks Credential, SignedHeaders or Signature."),
        (SCOPE.replace("/s3/", "/iam/") + ", SignedHeaders=host, Signature=0",
         "AuthorizationHeaderMalformed", "The credential scope names service 'iam', not s3."),
        (SCOPE.replace("20261201", "20261202") + ", SignedHeaders=host, Signature=0",
         "AuthorizationHeaderMalformed", "The credential scope's date is not the X-Amz-Date day."),
        (SCOPE + ", SignedHeaders=x-amz-date, Signature=0",
         "AuthorizationHeaderMalformed", "SignedHeaders must be lowercase and include host."),
        (SCOPE + " SignedHeaders=host Signature=0", "AuthorizationHeaderMalformed",
         "The Authorization header is malformed."),
    ],
)  # fmt: skip
def test_malformed_authorization_headers(header: str | None, code: str, message: str) -> None:
    with pytest.raises(S3Error) as refused:
        parse_authorization(header, "20261201T120000Z", "UNSIGNED-PAYLOAD")
    assert (refused.value.code, refused.value.message) == (code, message)


def test_signed_streaming_is_not_supported_and_a_bad_payload_hash_is_refused() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=K/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    )
    with pytest.raises(S3Error) as streaming:
        parse_authorization(header, "20261201T120000Z", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    assert streaming.value.code == "NotImplemented"
    with pytest.raises(S3Error) as bad:
        parse_authorization(header, "20261201T120000Z", "abc")
    assert bad.value.code == "InvalidArgument"


def test_the_request_time_must_be_within_15_minutes() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=K/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    )
    auth = parse_authorization(header, "20261201T120000Z", "UNSIGNED-PAYLOAD")
    check_request_time(auth, datetime(2026, 12, 1, 12, 14, 59, tzinfo=UTC))
    with pytest.raises(S3Error) as skewed:
        check_request_time(auth, datetime(2026, 12, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=15, seconds=1))
    assert skewed.value.code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("name", ["x-amz-meta-evil", "X-Amz-Checksum-CRC32", "x-amz-copy-source"])
def test_an_x_amz_header_outside_signed_headers_is_refused(name: str) -> None:
    """Anyone on the way could add it; S3 answers AccessDenied, not SignatureDoesNotMatch."""
    request = signed()
    items = [*((k, str(v)) for k, v in request.headers.items()), (name, "1")]
    with pytest.raises(S3Error) as refused:
        matches(request, headers=items)
    assert (refused.value.code, refused.value.message) == (
        "AccessDenied",
        f"There were headers present in the request which were not signed: {name.lower()}",
    )


def test_headers_botocore_never_signs_may_come_unsigned() -> None:
    request = signed()
    extra = [("User-Agent", "aws-cli/1"), ("Expect", "100-continue"), ("X-Amzn-Trace-Id", "Root=1")]
    assert matches(request, headers=[*((k, str(v)) for k, v in request.headers.items()), *extra])
