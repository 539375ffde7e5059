"""The delivery task: a periodic worker task of its own, apart from the job runner, that follows each
job's deliveries (the ledger written at submit) to the end. It leases due deliveries like the job
runner leases jobs, checks each one where it landed once its job has ended (delivery_checks.py),
writes `delivered`, then `verified` or `failed` with the reason and hint, and checks again later while
that can help (the network, a Hub still processing) until it cannot (`failed` stays, or `expired`).
It never touches a job's training status: a succeeded training stays succeeded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from simpletuner_cloud.domain.jobs import is_terminal
from simpletuner_cloud.services.background import finish_or_cancel
from simpletuner_cloud.services.delivery_checks import CHECKS, CheckContext, Landed, Problem, write_model_card
from simpletuner_cloud.services.delivery_plan import DeliveryPlan
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.publishing import load_publishing
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.storage.multipart import MultipartUploads
from simpletuner_cloud.storage.objects import ObjectStore
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import DeliveryRow, JobRow

log = logging.getLogger(__name__)
LEASE_SECONDS = 600.0  # a check hashes files or lists a bucket: minutes at most
BATCH = 50
MAX_ATTEMPTS = 12
MAX_DELAY = timedelta(hours=1)
STALE_SWEEP_EVERY = 500  # passes between sweeps of abandoned multipart uploads


async def record_deliveries(session: Any, job_id: str, plan: DeliveryPlan) -> None:
    """The ledger rows of a new job, in the transaction that creates it."""
    if plan.deliveries:
        await ledger.create_deliveries(session, job_id, [(d.destination, d.target) for d in plan.deliveries])


class DeliveryTracker:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        bus: EventBus,
        *,
        environ: Callable[[], Any] | None = None,
        holder: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.bus = bus
        self._environ = environ or (lambda: None)
        self.holder = holder or f"{socket.gethostname()[:24]}-{os.getpid()}-dlv-{secrets.token_hex(3)}"
        self.clock = clock or (lambda: datetime.now(UTC))
        self._claim_clock = clock  # None: the database's own clock decides what is due (one for all replicas)
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._passes = 0

    @property
    def base_delay(self) -> timedelta:
        return timedelta(seconds=max(self.settings.poll_seconds * 3, 0.1))

    async def run_pass(self) -> None:
        self._passes += 1
        if self._passes % STALE_SWEEP_EVERY == 1:
            await anyio.to_thread.run_sync(
                MultipartUploads(ObjectStore(self.settings.outputs_dir)).remove_stale
            )
        async with self.database.session() as session:
            now = self._claim_clock() if self._claim_clock is not None else None
            claimed = await ledger.claim_due_deliveries(
                session, self.holder, limit=BATCH, lease_seconds=LEASE_SECONDS, now=now
            )
            await session.commit()
        for delivery in claimed:
            if delivery.id not in self._busy:  # checks run beside the worker's other tasks
                self._busy[delivery.id] = asyncio.create_task(
                    self._run(delivery.id), name=f"delivery-{delivery.id}"
                )

    async def drain(self) -> None:
        """Wait for the checks in progress (tests, and a shutdown that lets them finish)."""
        while self._busy:
            await asyncio.gather(*list(self._busy.values()), return_exceptions=True)

    async def stop(self, drain_seconds: float) -> None:
        await finish_or_cancel(list(self._busy.values()), drain_seconds)

    async def _run(self, delivery_id: str) -> None:
        try:
            await self.check(delivery_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery %s: check failed; trying again later", delivery_id)
            async with self.database.session() as session:
                await ledger.update_delivery(
                    session, delivery_id, fence=self.holder, next_check_at=self.clock() + self.base_delay
                )
                await session.commit()
        finally:
            self._busy.pop(delivery_id, None)
            with contextlib.suppress(Exception):
                async with self.database.session() as session:
                    await ledger.release_delivery(session, delivery_id, self.holder)
                    await session.commit()

    async def check(self, delivery_id: str) -> None:
        """One check of one delivery (the caller holds its lease)."""
        async with self.database.session() as session:
            delivery = await ledger.get_delivery(session, delivery_id)
            job = await repo.get_job(session, delivery.job_id) if delivery else None
            publishing = await load_publishing(session, self.settings, self._environ())
            rows = await ledger.list_artifacts(session, delivery_id=delivery_id) if delivery else []
            # The Hub check looks for this job's own push in its log (the repo may hold other runs').
            hub = delivery is not None and delivery.destination == "hub"
            log = await repo.read_logs(session, job.id) if hub and job is not None else ""
        if delivery is None or job is None:
            return
        context = CheckContext(self.settings, publishing, self.clock(), rows, log=log)
        if not is_terminal(job.status):
            await self._while_training(context, delivery, job)
            return
        outcome = await CHECKS[delivery.destination](context, delivery, job)
        if isinstance(outcome, Problem):
            await self._failed(delivery, job, outcome)
        else:
            await self._landed(delivery, job, outcome)

    async def _while_training(self, context: CheckContext, delivery: DeliveryRow, job: JobRow) -> None:
        """Before the end only an external bucket is looked at (the local ingress records its own
        arrivals, the Hub is read at the end): what the trainer published so far, for the gallery.
        The claim picks every delivery up again once its job ends."""
        if delivery.destination != "s3" or job.status != "running":
            later = self.clock() + self.base_delay * 4 if delivery.destination == "s3" else None
            await self._write(delivery, job, next_check_at=later)
            return
        outcome = await CHECKS["s3"](context, delivery, job)
        values: dict[str, Any] = {"next_check_at": self.clock() + self.base_delay * 4}
        listed = outcome.artifacts
        if listed:
            async with self.database.session() as session:
                await ledger.replace_artifacts(session, delivery.id, job.id, listed)
                await session.commit()
            if delivery.state == "pending":
                values.update(state="receiving", received_at=self.clock())
        await self._write(delivery, job, message="Files are arriving in the bucket.", **values)

    async def _landed(self, delivery: DeliveryRow, job: JobRow, outcome: Landed) -> None:
        now = self.clock()
        async with self.database.session() as session:
            if outcome.artifacts is not None:
                await ledger.replace_artifacts(session, delivery.id, job.id, outcome.artifacts)
            elif job.status == "succeeded" and delivery.destination == "local":
                rows = await ledger.list_artifacts(session, delivery_id=delivery.id)
                if not any(r.name == "README.md" for r in rows):
                    card = await anyio.to_thread.run_sync(write_model_card, self.settings, job, rows)
                    await ledger.record_artifact(
                        session, delivery.id, job.id, "README.md", kind="model_card", step=None,
                        size=card.size, sha256=card.sha256, etag=card.etag, location=str(card.path),
                        received_at=now,
                    )  # fmt: skip
            await session.commit()
        hub = delivery.destination == "hub"  # the commit read back; a download is pinned to it
        pinned = {"target": {**delivery.target, "revision": outcome.revision}} if hub else {}
        await self._write(
            delivery,
            job,
            state="delivered",
            delivered_at=delivery.delivered_at or now,
            message=outcome.summary,
            **pinned,
        )
        async with self.database.session() as session:
            for row in await ledger.list_artifacts(session, delivery_id=delivery.id):
                row.verified_at = now
            await session.commit()
        await self._write(
            delivery,
            job,
            state="verified",
            verified_at=now,
            reason_code=None,
            reason=None,
            hint=None,
            next_check_at=None,
            message=f"Verified: {outcome.summary}",
        )

    async def _failed(self, delivery: DeliveryRow, job: JobRow, problem: Problem) -> None:
        if problem.artifacts is not None:  # what is there all the same, for "what is where"
            async with self.database.session() as session:
                await ledger.replace_artifacts(session, delivery.id, job.id, problem.artifacts)
                await session.commit()
        attempts = delivery.attempts + 1
        again = problem.retry and attempts < MAX_ATTEMPTS
        delay = min(self.base_delay * (2 ** (attempts - 1)), MAX_DELAY)
        state = "failed" if again else problem.final_state
        await self._write(
            delivery,
            job,
            state=state,
            reason_code=problem.code,
            reason=problem.message,
            hint=problem.hint,
            attempts=attempts,
            next_check_at=self.clock() + delay if again else None,
            message=problem.message
            if (delivery.reason_code != problem.code or state != delivery.state)
            else None,
        )

    async def _write(
        self, delivery: DeliveryRow, job: JobRow, *, message: str | None = None, **values: Any
    ) -> None:
        """Write the delivery (fenced by the lease) and, on a state change, a timeline event."""
        new_state = values.get("state", delivery.state)
        async with self.database.session() as session:
            if not await ledger.update_delivery(session, delivery.id, fence=self.holder, **values):
                return  # the lease ran out and another worker took the delivery over
            if message is not None and (new_state != delivery.state or values.get("reason_code")):
                await repo.add_event(
                    session,
                    job.id,
                    "delivery",
                    message=f"{delivery.destination}: {message}",
                    data={
                        "destination": delivery.destination,
                        "state": new_state,
                        "reason_code": values.get("reason_code"),
                    },
                )
                await announce(session, job.id)
            await session.commit()
        delivery.state = new_state
        for key, value in values.items():
            setattr(delivery, key, value)
        self.bus.notify()


async def retry_delivery(database: Database, job_id: str, destination: str) -> DeliveryRow:
    """Check a delivery again now (the user fixed a token, restored files, or simply asks)."""
    from simpletuner_cloud.errors import CloudError

    async with database.session() as session:
        await repo.require_job(session, job_id)  # an unknown job is `job_not_found`, as on every route
        delivery = await ledger.delivery_of(session, job_id, destination)
        if delivery is None:
            raise CloudError(
                f"Job {job_id} has no {destination} delivery.",
                code="job_delivery_not_found",
                hint="GET /api/cloud/jobs/{id}/artifacts lists the job's deliveries.",
            )
        if delivery.state in ("pending", "receiving"):
            raise CloudError(
                f"The {destination} delivery is still {delivery.state}: it is checked when the job ends.",
                code="delivery_not_retryable",
                hint="Wait for the job to end.",
            )
        # The lease goes too: a check running now must not write its result (attempts + 1, a backoff
        # of up to an hour) over this retry; its fenced writes miss, and the retry runs anew.
        await ledger.update_delivery(
            session,
            delivery.id,
            next_check_at=datetime.now(UTC),
            attempts=0,
            lock_token=None,
            locked_until=None,
        )
        await session.commit()
        refreshed = await ledger.get_delivery(session, delivery.id)
    assert refreshed is not None
    return refreshed
