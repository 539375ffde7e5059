"""The webhook signing secret as the receiver keeps it (fetched once per account, refetched after a
mismatch at most every 10 s, single-flight, a failed fetch refused fast for 5 s), and the answers to a
signature that does not check out: 401 `signature_missing`, `timestamp_out_of_tolerance` or
`signature_invalid`. The check itself is `replicate.webhooks.verify_webhook`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.webhooks import InvalidSignature

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SECRET_FETCH_TIMEOUT = 5.0
MIN_REFETCH_SECONDS = 10.0  # a flood of bad signatures refetches the secret at most this often
FAILED_FETCH_SECONDS = 5.0  # after a failed fetch, deliveries are refused at once for this long
SELF_TEST_HINT = (
    "Replicate signs every delivery; this answer means the URL reaches the receiver. To test the whole "
    "path with a signed event, run POST /api/cloud/providers/replicate/test-webhook "
    "(`simpletuner cloud webhooks test`)."
)
_CODES = {
    "missing_headers": "signature_missing",
    "timestamp_too_old": "timestamp_out_of_tolerance",
    "timestamp_too_new": "timestamp_out_of_tolerance",
}


class WebhookSecrets:
    """The account's signing secret, fetched once and kept per (Replicate URL, token): a new token may
    belong to another account. `refreshed` refetches after a mismatch (a rotated key), single-flight
    and at most every MIN_REFETCH_SECONDS, so forged signatures cannot make us hammer Replicate."""

    def __init__(self, min_refetch: float = MIN_REFETCH_SECONDS) -> None:
        self.min_refetch = min_refetch
        self._key: str | None = None
        self._secret: str | None = None
        self._refetched_at = float("-inf")
        self._failure: tuple[float, CloudError] | None = None
        self._lock = asyncio.Lock()

    async def current(self, key: str, fetch: Callable[[], Awaitable[str]]) -> str:
        if self._secret is not None and self._key == key:
            return self._secret
        async with self._lock:
            if self._secret is None or self._key != key:
                await self._fetch(key, fetch)
        assert self._secret is not None
        return self._secret

    async def refreshed(self, key: str, fetch: Callable[[], Awaitable[str]]) -> str | None:
        """A different secret than the one that just failed, or None (unchanged, or asked too recently)."""
        before = self._secret
        async with self._lock:
            if self._secret != before:
                return self._secret  # another request refetched it while we waited
            if time.monotonic() - self._refetched_at < self.min_refetch:
                return None
            self._refetched_at = time.monotonic()
            await self._fetch(key, fetch)
        return self._secret if self._secret != before else None

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[str]]) -> None:
        if self._failure is not None and time.monotonic() - self._failure[0] < FAILED_FETCH_SECONDS:
            raise self._failure[1]  # a queue of deliveries behind a dead Replicate fails fast
        try:
            async with asyncio.timeout(SECRET_FETCH_TIMEOUT):
                secret = await fetch()
        except (CloudError, TimeoutError) as exc:
            reason = (
                exc.message if isinstance(exc, CloudError) else f"no answer in {SECRET_FETCH_TIMEOUT:g} s"
            )
            error = CloudError(
                f"The webhook signing secret could not be read from Replicate ({reason}).",
                code="webhook_secret_unavailable",
                hint="Check the Replicate token (`simpletuner cloud provider validate`) and Replicate's "
                "status; Replicate retries the final delivery, and polling follows the job meanwhile.",
            )
            self._failure = (time.monotonic(), error)
            raise error from None
        self._failure = None
        self._key, self._secret = key, secret


def signature_error(exc: InvalidSignature, headers: Mapping[str, str]) -> CloudError:
    """The answer to a refused signature: which headers are missing, or which check failed."""
    code = _CODES.get(exc.reason, "signature_invalid")
    if code == "signature_missing":
        missing = [name for name in SIGNATURE_HEADERS if not (headers.get(name) or "").strip()]
        return CloudError(
            f"This request is not a signed webhook: the {', '.join(missing)} header"
            f"{'s are' if len(missing) > 1 else ' is'} missing.",
            code=code,
            hint=SELF_TEST_HINT,
            details={"missing_headers": missing},
        )
    if code == "timestamp_out_of_tolerance":
        return CloudError(
            f"{exc.message} Deliveries are accepted within 5 minutes of their webhook-timestamp.",
            code=code,
            hint="Check this machine's clock (NTP); an old capture replayed later is refused on purpose.",
        )
    return CloudError(
        f"The webhook signature does not match ({exc.reason})."
        if exc.reason == "no_matching_signature"
        else f"{exc.message} ({exc.reason})",
        code=code,
        hint="The body must arrive byte for byte as Replicate signed it (a proxy must not rewrite it), "
        "and the server must use the token of the account that created the job.",
    )
