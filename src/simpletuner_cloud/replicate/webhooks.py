"""Standard Webhooks signing and verification: the one module that knows the header format.

The sandbox signs with `signed_headers`; the server's receiver checks with `verify_webhook`. Built on
the `standardwebhooks` package for the key decoding and HMAC, with our own header parsing because that
package hard-codes the 5-minute tolerance and raises `ValueError` on a malformed signature entry."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar

from standardwebhooks.webhooks import Webhook

from simpletuner_cloud.errors import CloudError

DEFAULT_TOLERANCE = 300  # seconds, either direction, as the Standard Webhooks spec and Replicate say
MAX_TIMESTAMP_DIGITS = 20  # a Unix time in seconds has 10; int() refuses strings past 4,300 digits


class InvalidSignature(CloudError):
    """A webhook that must not be trusted. `reason` says which check failed."""

    code: ClassVar[str] = "invalid_signature"
    default_hint: ClassVar[str] = (
        "Check that the server uses the signing secret of the account that created the job "
        "(GET /v1/webhooks/default/secret) and that this machine's clock is right."
    )

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


def _webhook(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except Exception as exc:  # binascii.Error, EmptyWebhookSecretError, RuntimeError
        # An unusable secret is a configuration problem, but to the caller it still means
        # "this signature cannot be trusted", never a crash in the request handler.
        raise InvalidSignature(
            "The webhook signing secret is not valid base64.", reason="bad_secret"
        ) from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value (`v1,<base64>`) for one attempt."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSignature("Webhook bodies must be UTF-8.", reason="body_not_utf8") from exc
    return _webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), text)


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def _signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures of a header; malformed or other-version entries are skipped."""
    found: list[bytes] = []
    for entry in header.split(" "):
        version, sep, value = entry.partition(",")
        if not sep or version != "v1" or "," in value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise `InvalidSignature` unless `body` was signed with `secret` within `tolerance` seconds."""
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get("webhook-id", "").strip()
    raw_timestamp = lowered.get("webhook-timestamp", "").strip()
    header = lowered.get("webhook-signature", "").strip()
    if not (msg_id and raw_timestamp and header):
        raise InvalidSignature(
            "The webhook is missing its webhook-id, webhook-timestamp or webhook-signature header.",
            reason="missing_headers",
        )
    # ASCII digits only (`str.isdigit` takes `²`, which int() refuses), and no more than a Unix time
    # needs (int() refuses past 4,300 digits).
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > MAX_TIMESTAMP_DIGITS:
        raise InvalidSignature("The webhook-timestamp header is not a Unix time.", reason="bad_timestamp")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise InvalidSignature("The webhook timestamp is too old.", reason="timestamp_too_old")
    if timestamp > current + tolerance:
        raise InvalidSignature("The webhook timestamp is in the future.", reason="timestamp_too_new")
    expected = base64.b64decode(sign(secret, msg_id, timestamp, body).partition(",")[2])
    if not any(hmac.compare_digest(expected, candidate) for candidate in _signatures(header)):
        raise InvalidSignature("No webhook signature matches the body.", reason="no_matching_signature")
