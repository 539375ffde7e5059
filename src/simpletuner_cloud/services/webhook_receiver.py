"""Receive one Replicate webhook: verify the Standard Webhooks signature over the raw body (the account
secret cached, refetched once on a mismatch), then the IP allowlist, then apply the prediction to its
job forward-only, recording the delivery by `webhook-id` in the same transaction. A redelivery is
acknowledged and changes nothing; a delivery for an unknown job is acknowledged and recorded as
ignored. Every refusal is a `CloudError` (401/403/400/503), recorded in the flight recorder first.

With `require_signature: false` a delivery is only a hint: the job's own prediction is read from
Replicate in the background and *that* is applied, so a forged request can at most cause one poll."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.hardware import HardwareCatalogue
from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, is_terminal, map_replicate_status
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.factory import replicate_base_url, resolve_token
from simpletuner_cloud.replicate.webhooks import InvalidSignature, verify_webhook
from simpletuner_cloud.services import webhook_sources as sources
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import ReplicateSettings, load_replicate_settings
from simpletuner_cloud.services.webhook_bulk import Contended, Delivery, apply_together
from simpletuner_cloud.services.webhook_recorder import ArrivalBudget, kept_headers, stored_body
from simpletuner_cloud.services.webhook_signatures import SIGNATURE_HEADERS, WebhookSecrets, signature_error
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store import webhook_deliveries as deliveries
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow

log = logging.getLogger(__name__)
SELF_TEST_MARK = "simpletuner_self_test"  # set in the body the self-test signs
LARGE_BODY = 256 * 1024  # bytes: compressed in a worker thread, not on the event loop
SETTINGS_TTL = 1.0  # seconds: another server's settings change reaches this receiver this late
HINT_REASON = "signature checks are off: the job is read from Replicate instead"


@dataclass(frozen=True)
class Arrival:
    """One request as the route saw it."""

    body: bytes
    headers: list[tuple[str, str]]
    peer: str | None
    job_ref: str | None  # the `?job=` our webhook URL carries (not signed: checked against the body)
    started: float = field(default_factory=time.perf_counter)

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return ", ".join(values) if values else None

    @property
    def signature_headers(self) -> dict[str, str]:
        return {name: self.header(name) or "" for name in SIGNATURE_HEADERS}

    def headers_named(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


@dataclass(frozen=True)
class Receipt:
    """The 2xx answer: what became of the delivery."""

    status: int
    outcome: str
    delivery_id: int | None = None
    job_id: str | None = None
    job_status: str | None = None
    reason: str | None = None

    @property
    def body(self) -> dict[str, Any]:
        return {
            "received": True,
            "outcome": self.outcome,
            "delivery_id": self.delivery_id,
            "job_id": self.job_id,
            "status": self.job_status,
            "reason": self.reason,
        }


def infer_event(payload: dict[str, Any]) -> str:
    """Replicate does not say which event a delivery is; the body tells it closely enough."""
    status = map_replicate_status(str(payload.get("status") or "") or None)
    if status in TERMINAL_STATUSES:
        return "completed"
    if payload.get("output") is not None:
        return "output"
    if payload.get("logs"):
        return "logs"
    return "start"


def _claimable(webhook_id: str) -> str:
    """The id as the unique key: over-long ids (never seen from Replicate) are hashed, not cut."""
    return (
        webhook_id if len(webhook_id) <= 255 else "sha256:" + hashlib.sha256(webhook_id.encode()).hexdigest()
    )


BATCH_LIMIT = 64  # deliveries per transaction at most
T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]
Together = Callable[[AsyncSession, list[tuple[int, Any]]], Awaitable[dict[int, Any]]]


class GroupCommit:
    """Write many deliveries in one transaction, each in its own SAVEPOINT (one that fails is rolled
    back alone), and answer each only after the commit that holds it. No timer: a delivery that finds
    the writer idle is written at once, alone; those that arrive while a transaction is under way
    queue up and go together into the next one, up to `BATCH_LIMIT`. One writer per process on both
    backends (SQLite takes one writer at a time anyway; on PostgreSQL two batches taking the same jobs'
    rows in different orders could deadlock), so the batch is the unit of parallelism.

    With `together`, deliveries queued with an item (`run(work, item=...)`) are first offered to it
    as a whole, in one SAVEPOINT: it answers the results of those it wrote, by index, and the rest run
    their `work` one by one as before. If it raises, its SAVEPOINT is rolled back and all run alone."""

    def __init__(
        self, database: Database, limit: int = BATCH_LIMIT, together: Together | None = None
    ) -> None:
        self.database = database
        self.limit = limit
        self.together = together
        self._queue: deque[tuple[Work, Any, asyncio.Future[Any]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (for tests and the benchmark's numbers)
        self.written_together = 0  # deliveries `together` wrote (the rest went one by one)

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]], *, item: Any = None) -> T:
        """`work`'s result once it is committed; its exception if it failed (nothing of it is kept)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="webhook-group-commit")
        return await asyncio.shield(future)  # a client gone away does not cancel the others' batch

    @property
    def waiting(self) -> int:
        """Deliveries queued for the next transaction."""
        return len(self._queue)

    async def drain(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.limit, len(self._queue)))]
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:  # the commit itself failed: none of the batch is durable
                log.warning("webhook group commit of %d deliveries failed: %s", len(batch), exc)
                outcomes = [(None, exc)] * len(batch)
            for (_, _, future), (result, error) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

    async def _commit(
        self, batch: list[tuple[Work, Any, asyncio.Future[Any]]]
    ) -> list[tuple[Any, BaseException | None]]:
        outcomes: list[tuple[Any, BaseException | None]] = []
        async with self.database.session() as session:
            if self.database.dialect == "sqlite":
                # Begin ourselves: otherwise the first SAVEPOINT opens the transaction and its RELEASE
                # commits it. IMMEDIATE takes the write lock before anything is read.
                connection = await session.connection()
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            done = await self._together(session, batch)
            for index, (work, _, _) in enumerate(batch):
                if index in done:
                    outcomes.append((done[index], None))
                    continue
                session.expire_all()  # the next delivery reads rows as this transaction has them
                try:
                    async with session.begin_nested():
                        outcomes.append((await work(session), None))
                except Exception as exc:
                    outcomes.append((None, exc))
            await session.commit()
        self.batches += 1
        self.written_together += len(done)
        return outcomes

    async def _together(
        self, session: AsyncSession, batch: list[tuple[Work, Any, asyncio.Future[Any]]]
    ) -> dict[int, Any]:
        offered = [(index, item) for index, (_, item, _) in enumerate(batch) if item is not None]
        if self.together is None or not offered:
            return {}
        try:
            async with session.begin_nested():
                return await self.together(session, offered)
        except Contended as exc:  # rolled back: each delivery goes on its own
            log.info("webhook deliveries written one by one: another writer moved job %s", exc)
            return {}
        except Exception:
            log.warning("webhook deliveries written one by one: the bulk write failed", exc_info=True)
            return {}


class WebhookReceiver:
    """One per app (`app.state.webhook_receiver`): the secret cache, the budget for recording what
    anyone can send, and the background polls of unsigned hints."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        runtime: Callable[[], ProviderRuntime],
        bus: EventBus,
        wake: Callable[[], None],
        catalogue: HardwareCatalogue,
    ) -> None:
        self.settings = settings
        self.database = database
        self._runtime = runtime
        self.bus = bus
        self.wake = wake
        self.catalogue = catalogue
        self.secrets = WebhookSecrets()
        self.budget = ArrivalBudget()
        self._hints: dict[str, asyncio.Task[None]] = {}
        self._settings_cache: tuple[float, ReplicateSettings] | None = None
        self._settings_lock = asyncio.Lock()
        self._settings_generation = 0  # bumped by every change: a read begun before it is not cached
        self.writes = GroupCommit(database, together=self._write_together)

    @property
    def runtime(self) -> ProviderRuntime:
        return self._runtime()

    async def stop(self) -> None:
        await self.writes.drain()
        tasks = list(self._hints.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # The secret ------------------------------------------------------------------------------------
    def _secret_key(self) -> str:
        token = resolve_token(self.settings, self.runtime.environ).value or ""
        return f"{replicate_base_url(self.settings)} {hashlib.sha256(token.encode()).hexdigest()}"

    def _fetcher(self, replicate: ReplicateSettings) -> Callable[[], Awaitable[str]]:
        async def fetch() -> str:
            async with self.runtime.client(self.settings, replicate) as client:
                return await client.webhook_secret()

        return fetch

    async def signing_secret(self, replicate: ReplicateSettings) -> str:
        """The secret Replicate signs with (the self-test signs its event with it too)."""
        return await self.secrets.current(self._secret_key(), self._fetcher(replicate))

    async def _verify(self, replicate: ReplicateSettings, arrival: Arrival) -> None:
        headers = arrival.signature_headers
        if not all(value.strip() for value in headers.values()):
            verify_webhook("", headers, arrival.body)  # raises missing_headers before any fetch
        key, fetch = self._secret_key(), self._fetcher(replicate)
        try:
            verify_webhook(await self.secrets.current(key, fetch), headers, arrival.body)
        except InvalidSignature as exc:
            if exc.reason != "no_matching_signature":
                raise
            rotated = await self.secrets.refreshed(key, fetch)
            if rotated is None:
                raise
            verify_webhook(rotated, headers, arrival.body)

    # Receiving -------------------------------------------------------------------------------------
    async def _replicate_settings(self) -> ReplicateSettings:
        """The provider settings, read at most every SETTINGS_TTL seconds (one read per delivery would
        cost more than the rest of the check); a PUT on this server forgets them at once."""
        cached = self._settings_cache
        if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL:
            return cached[1]
        async with self._settings_lock:  # one read for the deliveries that arrive meanwhile
            cached = self._settings_cache
            if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL:
                return cached[1]
            generation = self._settings_generation
            async with self.database.session() as session:
                replicate = await load_replicate_settings(session, self.settings)
            if generation == self._settings_generation:  # no PUT landed while this read ran
                self._settings_cache = (time.monotonic(), replicate)
        return replicate

    def settings_changed(self) -> None:
        self._settings_generation += 1
        self._settings_cache = None

    async def receive(self, arrival: Arrival) -> Receipt:
        replicate = await self._replicate_settings()
        trusted = sources.networks(replicate.trusted_proxies)
        client_ip = sources.client_address(
            arrival.peer, arrival.headers_named("x-forwarded-for"), arrival.header("x-real-ip"), trusted
        )
        context = {"client_ip": client_ip, "peer_ip": arrival.peer}
        allowed = sources.is_allowed(client_ip, sources.networks(replicate.webhook_allowed_ips))
        if not replicate.require_signature:
            if not allowed:
                await self._reject(arrival, context, self._ip_refused(client_ip))
            return await self._hint(arrival, context)
        try:
            await self._verify(replicate, arrival)
        except InvalidSignature as exc:
            await self._reject(arrival, context, signature_error(exc, arrival.signature_headers))
        except CloudError as exc:
            await self._reject(arrival, context, exc)
        if not allowed:
            await self._reject(arrival, context, self._ip_refused(client_ip))
        payload = await self._payload(arrival, context)
        return await self._apply(arrival, context, payload)

    def _ip_refused(self, client_ip: str | None) -> CloudError:
        return CloudError(
            f"Webhooks from {client_ip or 'an unknown address'} are not allowed.",
            code="ip_not_allowed",
            hint="Add the source to `webhook_allowed_ips`, or list the reverse proxy in front of this "
            "server in `trusted_proxies` so its X-Forwarded-For is believed.",
            details={"client_ip": client_ip},
        )

    async def _payload(self, arrival: Arrival, context: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = json.loads(arrival.body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            await self._reject(
                arrival,
                context,
                CloudError(
                    "The webhook body is not a JSON object.",
                    code="webhook_body_invalid",
                    hint="Replicate sends the prediction as a JSON object; something in between changed it.",
                ),
            )
        assert isinstance(payload, dict)
        return payload

    async def _reject(self, arrival: Arrival, context: dict[str, Any], error: CloudError) -> None:
        """Record the refusal (within the budget) and raise it."""
        if self.budget.take():
            async with self.database.session() as session:
                await deliveries.record_arrival(
                    session,
                    outcome="rejected",
                    error_code=error.code,
                    reason=error.message,
                    http_status=error.status,
                    **self._fields(arrival, context),
                )
                await session.commit()
        raise error

    def _fields(self, arrival: Arrival, context: dict[str, Any]) -> dict[str, Any]:
        presented = arrival.header("webhook-id")
        return {
            "presented_id": presented[:255] if presented else None,
            "headers": kept_headers(arrival.headers),
            "body_size": len(arrival.body),
            "body_sha256": hashlib.sha256(arrival.body).hexdigest(),
            "latency_ms": arrival.elapsed_ms,
            **context,
        }

    async def _find_job(
        self, session: Any, payload: dict[str, Any], job_ref: str | None
    ) -> tuple[JobRow | None, str | None]:
        """The job a delivery is about, or None with the reason it is ignored. The prediction id in
        the (signed) body decides; the URL's `?job=` only names a job whose create has not returned."""
        prediction_id = str(payload.get("id") or "")
        if not prediction_id:
            return None, "the body has no prediction id"
        owner = await repo.get_job_by_prediction_id(session, prediction_id)
        if owner is not None:
            if job_ref and job_ref != owner.id:
                return None, f"prediction {prediction_id} belongs to job {owner.id}, not {job_ref}"
            return owner, None
        if not job_ref:
            return None, f"no job follows prediction {prediction_id}"
        named = await repo.get_job(session, job_ref)
        if named is None:
            return None, f"no job {job_ref}"
        if named.prediction_id is not None:
            return None, f"job {job_ref} follows prediction {named.prediction_id}, not {prediction_id}"
        return named, None

    async def _apply(self, arrival: Arrival, context: dict[str, Any], payload: dict[str, Any]) -> Receipt:
        prediction_id = str(payload.get("id") or "") or None
        fields = {
            **self._fields(arrival, context),
            "event": infer_event(payload),
            "status": str(payload.get("status") or "")[:32] or None,
            "prediction_id": prediction_id[:64] if prediction_id else None,
            "http_status": 200,
        }
        now = utcnow()
        # Compressed before the group commit: a 10 MiB body takes a while, and other deliveries wait.
        if len(arrival.body) > LARGE_BODY:
            kept = await anyio.to_thread.run_sync(stored_body, arrival.body, payload)
        else:
            kept = stored_body(arrival.body, payload)
        delivery = Delivery(
            webhook_id=_claimable((arrival.header("webhook-id") or "").strip()),
            payload=payload,
            job_ref=arrival.job_ref,
            fields=fields,
            kept=kept,
            now=now,
            started=arrival.started,
        )
        receipt = await self.writes.run(
            lambda session: self._record(session, arrival, payload, fields, kept, now), item=delivery
        )
        if receipt.outcome == "accepted" and receipt.job_id is not None:
            self.bus.notify()
            self.wake()  # coalesced: at most one pass per 50 ms, whatever the delivery rate
        return receipt

    async def _write_together(
        self, session: AsyncSession, batch: list[tuple[int, Any]]
    ) -> dict[int, Receipt]:
        """The batch's deliveries that only grow a log, written in bulk (`webhook_bulk`)."""
        taken = await apply_together(session, batch, self.catalogue, skip_marked=SELF_TEST_MARK)
        return {
            index: Receipt(200, "accepted", t.row_id, t.job_id, t.job_status) for index, t in taken.items()
        }

    async def _record(
        self,
        session: AsyncSession,
        arrival: Arrival,
        payload: dict[str, Any],
        fields: dict[str, Any],
        kept: bytes | None,
        now: datetime,
    ) -> Receipt:
        """One delivery's writes, inside its SAVEPOINT of a group commit (the writer commits)."""
        webhook_id = (arrival.header("webhook-id") or "").strip()
        if payload.get(SELF_TEST_MARK) is True:
            fields = fields | {"outcome": "test", "event": "test", "reason": "the self-test's signed event"}
            row_id = await deliveries.claim_delivery(session, _claimable(webhook_id), **fields)
            return Receipt(200, "test", row_id)
        row_id = await deliveries.claim_delivery(
            session, _claimable(webhook_id), outcome="accepted", **fields
        )
        if row_id is None:  # claimed by an earlier transaction, or earlier in this batch
            duplicate = await deliveries.record_arrival(
                session, outcome="duplicate", reason="already received", **fields
            )
            return Receipt(200, "duplicate", duplicate, reason="already received")
        job, ignored = await self._find_job(session, payload, arrival.job_ref)
        if job is None:
            await deliveries.update_delivery(
                session, row_id, outcome="ignored", accepted=False, reason=ignored, job_id=None
            )
            return Receipt(200, "ignored", row_id, reason=ignored)
        applied = await apply_prediction(
            session,
            job.id,
            payload,
            self.catalogue,
            source="webhook",
            now=now,
            job=job,
            also={"last_webhook_at": now},
        )
        quiet = not applied.status_changed and not applied.new_logs
        await deliveries.update_delivery(
            session,
            row_id,
            job_id=job.id,
            body=kept,
            latency_ms=arrival.elapsed_ms,
            reason="nothing newer than what the job already had" if quiet else None,
        )
        if quiet:  # apply_prediction announced a change itself
            await announce(session, job.id)
        return Receipt(200, "accepted", row_id, job.id, applied.status.value)

    # Unsigned hints ------------------------------------------------------------------------------
    async def _hint(self, arrival: Arrival, context: dict[str, Any]) -> Receipt:
        try:
            payload = json.loads(arrival.body)
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        async with self.database.session() as session:
            job, ignored = await self._find_job(session, payload, arrival.job_ref)
        outcome = "test" if payload.get(SELF_TEST_MARK) is True else "hint" if job else "ignored"
        reason = {
            "test": "the self-test's event (signature checks are off)",
            "hint": HINT_REASON,
        }.get(outcome, ignored)
        row_id = None
        if self.budget.take():
            async with self.database.session() as session:
                row_id = await deliveries.record_arrival(
                    session,
                    outcome=outcome,
                    reason=reason,
                    job_id=job.id if job else None,
                    http_status=202,
                    **self._fields(arrival, context),
                )
                await session.commit()
        if job is not None and outcome == "hint":
            self._poll_soon(job.id)
        if outcome == "test":
            return Receipt(202, "test", row_id, reason=reason)
        # The same answer whether or not a job matched: an unsigned caller learns nothing about jobs.
        return Receipt(202, "hint", row_id, reason=HINT_REASON)

    def _poll_soon(self, job_id: str) -> None:
        if job_id in self._hints:
            return  # one read per job at a time: a flood of hints is still one poll
        task = asyncio.create_task(self._read_for_hint(job_id), name=f"webhook-hint-{job_id}")
        self._hints[job_id] = task
        task.add_done_callback(lambda _: self._hints.pop(job_id, None))

    async def _read_for_hint(self, job_id: str) -> None:
        try:
            async with self.database.session() as session:
                job = await repo.get_job(session, job_id)
                replicate = await load_replicate_settings(session, self.settings)
            if job is None or (is_terminal(job.status) and job.cleaned_at is not None):
                return
            if job.prediction_id is None:  # never trust a body to name the prediction: the worker finds it
                async with self.database.session() as session:
                    await repo.set_fields(session, job_id, next_poll_at=utcnow())
                    await session.commit()
                self.wake()
                return
            async with self.runtime.client(self.settings, replicate) as client:
                prediction = await client.get_prediction(job.prediction_id)
            now = utcnow()
            async with self.database.session() as session:
                await apply_prediction(
                    session, job_id, prediction, self.catalogue, source="webhook-hint", now=now
                )
                await repo.set_fields(session, job_id, last_webhook_at=now)
                await announce(session, job_id)
                await session.commit()
            self.bus.notify()
            self.wake()
        except asyncio.CancelledError:
            raise
        except CloudError as exc:
            log.info("webhook hint for job %s: reading the prediction failed (%s)", job_id, exc.code)
        except Exception:
            log.exception("webhook hint for job %s failed", job_id)
