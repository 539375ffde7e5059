"""The one retry policy and the circuit breaker, as an httpx transport under every Replicate call
(official client and raw requests alike). Only safe calls are retried; creates never are, except
when the connection was never made (no byte left this machine). Sleep, clock and dice are injected."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from simpletuner_cloud.errors import ProviderUnavailable
from simpletuner_cloud.replicate.errors import (
    CLIENT_REQUEST_ID,
    error_from_network,
    error_from_response,
    parse_problem,
    retry_after_seconds,
)
from simpletuner_cloud.replicate.proxies import InvalidProxy

Sleep = Callable[[float], Awaitable[None]]
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Failures before the request reached Replicate: resending cannot duplicate a job.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
NO_RETRY = "simpletuner_no_retry"  # request extension: a caller can opt a safe call out
STREAM = "simpletuner_stream"  # request extension: leave a large body unread for the caller to stream


def is_retry_safe(request: httpx.Request) -> bool:
    """GETs, deleting an uploaded file (a 404 on a retry means the first attempt worked) and
    cancels (cancelling twice is harmless). Everything else creates something."""
    if request.extensions.get(NO_RETRY):
        return False
    path = request.url.path
    if request.method in ("GET", "HEAD"):
        return True
    if request.method == "DELETE" and "/v1/files/" in path:
        return True
    return request.method == "POST" and path.rstrip("/").endswith("/cancel")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A longer Retry-After is not waited for inside one API call: the caller gets `rate_limited`.
    max_retry_after: float = 20.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Equal jitter: half of the capped exponential step is fixed, half random, so concurrent
        callers spread out but none retries immediately."""
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return step / 2 + rng.uniform(0, step / 2)


class CircuitBreaker:
    """Opens after `threshold` consecutive 5xx or network failures and fails fast for `cooldown`
    seconds; then lets one trial call through (half-open). Any answer below 500, 4xx included,
    proves Replicate is up and closes it: a bad token must never look like an outage."""

    def __init__(
        self, threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_failure = ""
        self._trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self.opened_at >= self.cooldown else "open"

    def before_call(self) -> None:
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return
        assert self.opened_at is not None
        wait = max(0.0, self.cooldown - (self._clock() - self.opened_at))
        raise ProviderUnavailable(
            f"Replicate failed {self.failures} times in a row (last: {self.last_failure}); "
            f"not calling it again for {wait:.0f} s.",
            details={"circuit": state, "retry_after": round(wait, 1), "failures": self.failures},
        )

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_running = False

    def record_failure(self, what: str) -> None:
        self.failures += 1
        self.last_failure = what
        if self._trial_running or self.failures >= self.threshold:
            self.opened_at = self._clock()
        self._trial_running = False

    def abandon_trial(self) -> None:
        """The call ended with no verdict (cancelled, say, by a caller's timeout): let the next one
        be the trial instead of failing fast forever."""
        self._trial_running = False


class PolicyTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport: request id, breaker, retries, and the mapping of every failure to
    a `CloudError` (raised here, so callers above never see a raw status or socket error)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._inner = inner
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if CLIENT_REQUEST_ID not in request.headers:
            request.headers[CLIENT_REQUEST_ID] = str(uuid.uuid4())
        safe = is_retry_safe(request)
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt >= self.policy.max_attempts
            self.breaker.before_call()
            try:
                response = await self._inner.handle_async_request(request)
                if not request.extensions.get(STREAM):
                    # Read here, so a body that breaks off or stalls is a network failure under this
                    # policy (retried when safe, mapped to a CloudError), not a raw httpx error above.
                    await response.aread()
            except InvalidProxy as exc:  # this machine's configuration, not Replicate failing
                self.breaker.abandon_trial()
                raise error_from_network(request, exc) from None
            except httpx.TransportError as exc:
                self.breaker.record_failure(type(exc).__name__)
                if not last_try and (safe or isinstance(exc, NOT_SENT_ERRORS)):
                    await self._sleep(self.policy.backoff(attempt, self._rng))
                    continue
                raise error_from_network(request, exc) from None
            except BaseException:
                self.breaker.abandon_trial()
                raise
            if response.status_code >= 500:
                self.breaker.record_failure(f"HTTP {response.status_code}")
            else:
                self.breaker.record_success()
            if response.status_code < 400:
                return response
            await response.aread()
            await response.aclose()
            wait = self._retry_wait(response, attempt) if safe and not last_try else None
            if wait is None:
                raise error_from_response(request, response)
            await self._sleep(wait)

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        if response.status_code not in RETRYABLE_STATUSES:
            return None
        retry_after = retry_after_seconds(response, parse_problem(response.content))
        if retry_after is None:
            return self.policy.backoff(attempt, self._rng)
        return retry_after if retry_after <= self.policy.max_retry_after else None

    async def aclose(self) -> None:
        await self._inner.aclose()
