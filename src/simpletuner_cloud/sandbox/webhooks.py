"""Webhook delivery: the events a job's filter selects, `logs`/`output` coalesced to one per
throttle window, signed per attempt with the account secret, sent in order by one worker, with
only `completed` retried (same `webhook-id`, fresh timestamp and signature). Faults apply here."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from simpletuner_cloud.replicate.webhooks import signed_headers
from simpletuner_cloud.sandbox.config import new_webhook_secret
from simpletuner_cloud.sandbox.jobs import Job

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.runtime import Sandbox

log = logging.getLogger("simpletuner_cloud.sandbox")
_ALPHANUMERIC = string.ascii_letters + string.digits


def new_webhook_id() -> str:
    return "msg_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(27))


@dataclass
class Delivery:
    job_id: str
    event: str
    url: str
    webhook_id: str
    body: bytes


class WebhookSender:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.records: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._last_sent: dict[tuple[str, str], float] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._held: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._worker is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False, timeout=self.sandbox.config.webhook_timeout_seconds, trust_env=False
            )
            self._worker = asyncio.create_task(self._run(), name="sandbox-webhooks")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [*self._tasks, *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def clear(self) -> None:
        """Forget the delivery log and anything held or waiting for its throttle window (reset)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._held.clear()
        self._last_sent.clear()
        self.records.clear()

    def notify(self, job: Job, event: str, *, immediate: bool = False) -> None:
        """Called on every change; decides whether and when an event goes out. `immediate` skips
        the throttle (the final output, sent just before `completed`)."""
        if not job.webhook or event not in job.events:
            return
        if event in ("logs", "output") and not job.terminal and not immediate:
            key = (job.id, event)
            loop = asyncio.get_running_loop()
            wait = (
                self._last_sent.get(key, float("-inf"))
                + self.sandbox.config.webhook_throttle_seconds
                - loop.time()
            )
            if wait > 0:
                if key not in self._timers:
                    self._timers[key] = loop.call_later(wait, self._fire, job, event)
                return
            self._last_sent[key] = loop.time()
        if event == "completed":
            for kind in ("logs", "output"):
                timer = self._timers.pop((job.id, kind), None)
                if timer:
                    timer.cancel()
        self._enqueue(job, event)

    def _fire(self, job: Job, event: str) -> None:
        self._timers.pop((job.id, event), None)
        if not job.terminal:
            self._last_sent[(job.id, event)] = asyncio.get_running_loop().time()
            self._enqueue(job, event)

    def _enqueue(self, job: Job, event: str) -> None:
        body = json.dumps(self.sandbox.render(job)).encode()
        delivery = Delivery(job.id, event, str(job.webhook), new_webhook_id(), body)
        faults = self.sandbox.faults.webhooks
        if faults.drops(event):
            self._record(delivery, attempt=0, outcome="dropped")
            return
        if not faults.reorder:
            self._queue.put_nowait(delivery)
            return
        # Each intermediate event waits for the next event of its job; `completed` is never held,
        # so it always overtakes the last intermediate event (when there was one).
        held = self._held.pop(job.id, None)
        if event == "completed":
            self._queue.put_nowait(delivery)
            if held is not None:
                self._queue.put_nowait(held)
            return
        if held is not None:
            self._queue.put_nowait(held)
        self._held[job.id] = delivery

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:  # one bad delivery must never stop the only worker
                log.exception("sandbox: webhook %s for %s failed", delivery.event, delivery.job_id)
                self._record(delivery, attempt=1, outcome="error: internal")

    async def _deliver(self, delivery: Delivery) -> None:
        faults = self.sandbox.faults.webhooks
        if faults.delay:
            await asyncio.sleep(faults.delay)
        headers = self._headers(delivery)
        ok = await self._send(delivery, headers, attempt=1)
        if faults.duplicate:
            await self._send(delivery, headers, attempt=1, duplicate=True)
        if not ok and delivery.event == "completed":
            task = asyncio.create_task(self._retry(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _retry(self, delivery: Delivery) -> None:
        try:
            for attempt, delay in enumerate(self.sandbox.config.webhook_retry_delays, start=2):
                await asyncio.sleep(delay)
                if await self._send(delivery, self._headers(delivery), attempt=attempt):
                    return
        except Exception:  # a task of its own: logged here, or nowhere
            log.exception("sandbox: retrying webhook %s for %s failed", delivery.event, delivery.job_id)

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        faults = self.sandbox.faults.webhooks
        secret = new_webhook_secret() if faults.bad_signature else self.sandbox.webhook_secret
        timestamp = int(self.sandbox.clock.now() - faults.stale_seconds)
        headers = signed_headers(secret, delivery.webhook_id, timestamp, delivery.body)
        if faults.rotation:  # the old key's entry first, as a receiver sees it mid-rotation
            old_key = signed_headers(new_webhook_secret(), delivery.webhook_id, timestamp, delivery.body)
            headers["webhook-signature"] = f"{old_key['webhook-signature']} {headers['webhook-signature']}"
        if faults.omit_header:
            del headers[faults.omit_header]
        return {**headers, "content-type": "application/json", "user-agent": "simpletuner-cloud-sandbox/1"}

    async def _send(
        self, delivery: Delivery, headers: dict[str, str], *, attempt: int, duplicate: bool = False
    ) -> bool:
        assert self._client is not None
        try:
            response = await self._client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            self._record(delivery, attempt=attempt, outcome=f"error: {type(exc).__name__}", headers=headers)
            return False
        except (httpx.InvalidURL, ValueError) as exc:  # not an HTTPError: a URL httpx cannot send to
            log.warning("sandbox: webhook URL %r cannot be sent to: %s", delivery.url, exc)
            self._record(delivery, attempt=attempt, outcome=f"error: {type(exc).__name__}", headers=headers)
            return False
        self._record(
            delivery, attempt=attempt, outcome=str(response.status_code), headers=headers, duplicate=duplicate
        )
        return 200 <= response.status_code < 300

    def _record(
        self,
        delivery: Delivery,
        *,
        attempt: int,
        outcome: str,
        headers: dict[str, str] | None = None,
        duplicate: bool = False,
    ) -> None:
        self.records.append(
            {
                "webhook_id": delivery.webhook_id,
                "job_id": delivery.job_id,
                "event": delivery.event,
                "url": delivery.url,
                "attempt": attempt,
                "outcome": outcome,
                "duplicate": duplicate,
                "timestamp": int(headers["webhook-timestamp"]) if headers else None,
            }
        )
