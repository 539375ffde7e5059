"""SigV4 for received requests, verified with botocore's own signer (never a hand-written copy of the
algorithm): parse the `Authorization` header, check the credential scope and the request time, then
let `S3SigV4Auth` recompute the signature over the request as the client sent it (method, the URL it
used with the raw path, the query, only the headers it signed, its `X-Amz-Content-SHA256`) and
compare in constant time. The payload itself is checked while the body streams (objects.py)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from simpletuner_cloud.storage.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
# Signed streaming (each chunk signed in turn) is what some SDKs other than botocore send.
SIGNED_STREAMING = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELD = re.compile(r"\s*(Credential|SignedHeaders|Signature)=([^,\s]*)\s*")


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # the X-Amz-Date header: the signing timestamp
    content_sha256: str  # a hex digest, UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER


def parse_authorization(
    header: str | None, amz_date: str | None, content_sha256: str | None
) -> Authorization:
    if not header:
        raise S3Error("AccessDenied", "Anonymous access is not allowed: sign the request with the job's key.")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise S3Error("InvalidRequest", f"Only {ALGORITHM} signatures are accepted.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        match = _FIELD.fullmatch(part)
        if match is None:
            raise S3Error("AuthorizationHeaderMalformed", "The Authorization header is malformed.")
        fields[match.group(1)] = match.group(2)
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            "The Authorization header lacks Credential, SignedHeaders or Signature.",
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise S3Error("AuthorizationHeaderMalformed", "The credential scope is malformed.")
    access_key, date, region, service, _ = scope
    if service != "s3":
        raise S3Error(
            "AuthorizationHeaderMalformed", f"The credential scope names service {service!r}, not s3."
        )
    signed = tuple(fields["SignedHeaders"].split(";"))
    if "host" not in signed or any(not name or name != name.lower() for name in signed):
        raise S3Error("AuthorizationHeaderMalformed", "SignedHeaders must be lowercase and include host.")
    if not amz_date:
        raise S3Error("AccessDenied", "The request has no X-Amz-Date header.")
    if not amz_date.startswith(date):
        raise S3Error(
            "AuthorizationHeaderMalformed", "The credential scope's date is not the X-Amz-Date day."
        )
    if not content_sha256:
        raise S3Error("InvalidRequest", "The request has no X-Amz-Content-SHA256 header.")
    if content_sha256 in SIGNED_STREAMING:
        raise S3Error(
            "NotImplemented", "Signed streaming payloads are not supported; send unsigned trailers."
        )
    if content_sha256 not in (UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER) and not _HEX_SHA256.match(
        content_sha256
    ):
        raise S3Error("InvalidArgument", "X-Amz-Content-SHA256 must be a hex SHA-256 or UNSIGNED-PAYLOAD.")
    return Authorization(
        access_key, date, region, service, signed, fields["Signature"], amz_date, content_sha256
    )


def check_request_time(authorization: Authorization, now: datetime | None = None) -> None:
    try:
        signed_at = datetime.strptime(authorization.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise S3Error("AccessDenied", "X-Amz-Date is not a timestamp like 20261201T120000Z.") from None
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and this server's time is too large (over 15 minutes).",
        )


class _ReceivedRequestSigner(S3SigV4Auth):
    """botocore's S3 signer, told to canonicalise exactly the headers the client signed (botocore
    would otherwise drop the few it never signs itself, and add `host` when it is missing)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            header_map[name.lower()] = value
        return header_map


def signature_matches(
    authorization: Authorization,
    secret_key: str,
    *,
    method: str,
    url: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
) -> bool:
    """`url`: scheme, the Host as the client sent it and the raw (still percent-encoded) path.
    Raises AccessDenied, as S3 does, for an `x-amz-*` header the signature does not cover: such a
    header changes what the request does (metadata, a checksum, a copy source) and anyone on the
    way could have added it. botocore leaves unsigned only hop-by-hop and tracing headers
    (user-agent, expect, transfer-encoding, x-amzn-trace-id, traceparent...), none of them
    `x-amz-*`."""
    signed = set(authorization.signed_headers)
    unsigned = sorted({name.lower() for name, _ in headers if name.lower().startswith("x-amz-")} - signed)
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed: " + ", ".join(unsigned),
        )
    request = AWSRequest(method=method, url=url)
    present = set()
    for name, value in headers:
        lowered = name.lower()
        if lowered in signed:
            request.headers[lowered] = value
            present.add(lowered)
    if present != signed:
        return False  # a signed header is missing from the request
    # Parsed pairs make botocore encode the canonical query itself, whatever the client's encoding.
    request.params = parse_qsl(raw_query, keep_blank_values=True)  # type: ignore[assignment]
    request.context["timestamp"] = authorization.amz_date
    signer = _ReceivedRequestSigner(
        Credentials(authorization.access_key, secret_key), authorization.service, authorization.region
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected.encode(), authorization.signature.encode())
