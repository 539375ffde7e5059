"""Creating the prediction, never twice: `create_sent_at` is committed before the create is sent; a
definite refusal fails the job, a create that sent nothing is retried, and one whose fate is unknown
(a timeout after sending, a 5xx, a dropped connection) is resolved by finding the prediction it made
(its inputs and version, created after the send) before anything is sent again."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import JobStatus, is_terminal
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.job_secrets import load_job_secrets
from simpletuner_cloud.services.job_steps import (
    LIST_PAGES,
    LOOKUP_WINDOW,
    MAX_CREATE_ATTEMPTS,
    CreateOutcome,
    JobSteps,
)
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow

log = logging.getLogger(__name__)


def secrets_missing(names: list[str]) -> CloudError:
    """The server about to send the create cannot read secrets the submit saved: several servers
    that do not share one secrets folder. Nothing has been sent, so failing costs nothing."""
    return CloudError(
        f"This server cannot read the job's secrets ({', '.join(names)}): they were saved by the server "
        "that took the submit, in its own secret store. Nothing was sent to Replicate.",
        code="job_secrets_missing",
        hint="Servers that share a database must share the secrets folder too (`cloud/secrets` under "
        "SIMPLETUNER_HOME, on shared storage, mode 0700; docs/deploy.md); then submit again.",
    )


def classify_create_failure(exc: CloudError) -> CreateOutcome:
    """Did a failed create reach Replicate? A 4xx is a definite refusal (429: nothing created, try
    later); an open breaker or a connection never made sent nothing; anything else (5xx, a timeout or
    a dropped connection after the body went out) may have created a billed prediction."""
    details = exc.details or {}
    if exc.code == "rate_limited" or "circuit" in details:
        return "not_sent"
    if details.get("network_error") in ("ConnectError", "ConnectTimeout", "PoolTimeout", "ProxyError"):
        return "not_sent"
    status = details.get("provider_status")
    if exc.code == "provider_unavailable" or (isinstance(status, int) and status >= 500):
        return "ambiguous"
    return "refused"


class CreateSteps(JobSteps):
    async def _create(self, job: JobRow) -> None:
        if job.prediction_id is not None:
            return
        if job.create_sent_at is not None:
            if await self._resolve_ambiguous_create(job):
                return
            job = await self._load(job.id)
        if job.cancel_requested_at is not None:
            await self._finish_canceled(job.id)
            return
        if job.create_attempts >= MAX_CREATE_ATTEMPTS:
            await self._fail(
                job.id,
                CloudError(
                    f"Replicate did not confirm the job after {job.create_attempts} tries.",
                    code="provider_unavailable",
                    hint="Check https://replicate.statuspage.io/ and submit again; no duplicate was created.",
                ),
                unless_created=True,  # its create's webhook may have recorded one since the lookup
            )
            return
        replicate = await self._replicate_settings()
        secrets = load_job_secrets(self.settings, job.id)
        missing = sorted(set(job.spec.get("secret_inputs") or ()) - set(secrets))
        if missing:  # never a create without them: a paid run that fails (or publishes nothing)
            await self._fail(job.id, secrets_missing(missing))
            return
        inputs = {**dict(job.spec.get("inputs") or {}), **secrets}
        sent_at = utcnow()
        async with self.database.session() as session:  # written before the side effect
            # One create of these inputs outstanding at a time, across servers: a lookup could not
            # tell two such predictions apart. The lock makes the check and the write one step.
            await _lock_create_inputs(session, job)
            twin = next((t.id for t in await repo.outstanding_creates(session, job) if _twins(t, job)), None)
            if twin is not None:
                await session.rollback()
                log.info("job %s: waiting for job %s's create (same inputs)", job.id, twin)
                await self._later(job.id, max(self.settings.create_lookup_seconds / 3, 0.2))
                return
            # A status compare-and-set: a cancel that landed since we read the job wins, and then
            # nothing is sent.
            written, _ = await repo.apply_status(
                session,
                job.id,
                JobStatus.SUBMITTING,
                fence=self.holder,
                create_sent_at=sent_at,
                create_attempts=job.create_attempts + 1,
            )
            await session.commit()
        if written.status != JobStatus.SUBMITTING.value or written.create_sent_at != sent_at:
            return
        self._maybe_crash("before_create")
        try:
            async with self.runtime.client(self.settings, replicate) as client:
                prediction = await client.create_prediction(
                    version=str(job.version),
                    input=inputs,
                    webhook=job.spec.get("webhook"),
                    webhook_events_filter=list(job.spec.get("webhook_events_filter") or []) or None,
                )
        except CloudError as exc:
            await self._create_failed(job, exc)
            return
        self._maybe_crash("after_create")
        if not await self._adopt(job.id, prediction, submitted_at=sent_at, source="create"):
            # Only a job that took our prediction in a lookup can hold it; sending again would make a
            # second one for the same work, so this job ends, saying where its prediction is.
            holder = await self._holder_of(str(prediction.get("id") or ""))
            await self._fail(
                job.id,
                CloudError(
                    f"Replicate created prediction {prediction.get('id')} for this job, but job "
                    f"{holder or 'another job'} with the same inputs recorded it first; it runs there.",
                    code="prediction_taken",
                    hint="Follow the other job; no second prediction was created for this one.",
                ),
            )

    async def _create_failed(self, job: JobRow, exc: CloudError) -> None:
        outcome = classify_create_failure(exc)
        log.warning("job %s: create failed (%s): %s", job.id, outcome, exc.code)
        async with self.database.session() as session:
            await repo.add_event(
                session,
                job.id,
                "create_failed",
                message=exc.message,
                data={"outcome": outcome, "code": exc.code},
            )
            await session.commit()
        if outcome == "refused":
            await self._fail(job.id, exc)
        elif outcome == "not_sent":
            wait = float((exc.details or {}).get("retry_after") or 2.0 * (job.create_attempts + 1))
            await self._later(job.id, wait, create_sent_at=None)
        else:  # maybe created: look for it, never create again blindly
            await self._later(job.id, self.settings.create_lookup_seconds / 3)

    async def _resolve_ambiguous_create(self, job: JobRow) -> bool:
        """True when the job is settled (its prediction found, or it is waiting for the list to show
        it); False when it is certain no prediction exists and the create may be sent again."""
        if await self._recover_prediction(job):
            return True
        assert job.create_sent_at is not None
        if utcnow() - job.create_sent_at < timedelta(seconds=self.settings.create_lookup_seconds):
            await self._later(job.id, self.settings.create_lookup_seconds / 3)
            return True
        async with self.database.session() as session:
            # Only while still unsent as far as the database knows: the create's own webhook (its URL
            # names the job) may have recorded the prediction while the list was read.
            reset = await repo.set_fields(
                session,
                job.id,
                fence=self.holder,
                expect={"status": JobStatus.SUBMITTING.value, "prediction_id": None},
                create_sent_at=None,
            )
            if not reset:
                await session.rollback()
                return True  # it moved on (found, canceled, or another worker has it): settled
            await repo.add_event(
                session, job.id, "create_retry", message="No prediction was created; sending again."
            )
            await session.commit()
        return False

    async def _recover_prediction(self, job: JobRow) -> bool:
        """Find the prediction a create of unknown fate made and adopt it; False when none is found.
        A candidate another job records first (between the list and the write) is not ours: the next
        one is tried."""
        for found in await self._find_predictions(job):
            if await self._adopt(job.id, found, submitted_at=job.create_sent_at, source="list"):
                async with self.database.session() as session:
                    await repo.add_event(
                        session, job.id, "create_recovered", data={"prediction_id": found.get("id")}
                    )
                    await session.commit()
                return True
        return False

    async def _find_predictions(self, job: JobRow) -> list[dict[str, Any]]:
        """The predictions a create may have made, oldest first: matched by its inputs (the archive
        URL, the config) and version, created after the send window opened, recorded by no other job.
        Only one create of these inputs is outstanding at a time (`_create`), so none of them is
        another job's create still in flight."""
        assert job.create_sent_at is not None
        replicate = await self._replicate_settings()
        wanted = _canonical(job.spec.get("inputs") or {})
        after = (job.create_sent_at - LOOKUP_WINDOW).isoformat().replace("+00:00", "Z")
        candidates: list[dict[str, Any]] = []
        async with self.runtime.client(self.settings, replicate) as client:
            page = await client.list_predictions(created_after=after)
            for _ in range(LIST_PAGES):
                for item in page.get("results") or []:
                    if _canonical(item.get("input") or {}) == wanted and _same_version(item, job.version):
                        candidates.append(item)
                if not page.get("next"):
                    break
                page = await client.list_predictions(url=page["next"])
        candidates.sort(key=lambda item: str(item.get("created_at") or ""))
        owners = {
            item_id: await self._holder_of(item_id) for item_id in (str(c.get("id")) for c in candidates)
        }
        return [item for item in candidates if owners[str(item.get("id"))] in (None, job.id)]

    async def _holder_of(self, prediction_id: str) -> str | None:
        async with self.database.session() as session:
            owner = await repo.get_job_by_prediction_id(session, prediction_id)
            return owner.id if owner is not None else None

    async def _adopt(
        self, job_id: str, prediction: dict[str, Any], *, submitted_at: datetime | None, source: str
    ) -> bool:
        """Record the prediction as this job's and move the job on; False (nothing written) when it is
        not this job's to take: another job recorded it, or this job holds a different one."""
        prediction_id = str(prediction.get("id") or "")
        async with self.database.session() as session:
            recorded = await repo.record_prediction_id(session, job_id, prediction_id)
            await session.commit()  # recorded whatever happens next
        if not recorded:
            log.warning(
                "job %s: prediction %s (%s) is not this job's; left alone", job_id, prediction_id, source
            )
            return False
        async with self.database.session() as session:
            job = await repo.require_job(session, job_id)
            if not is_terminal(job.status):
                await repo.apply_status(
                    session,
                    job_id,
                    JobStatus.QUEUED,
                    submitted_at=submitted_at or utcnow(),
                    next_poll_at=utcnow() + timedelta(seconds=self.settings.poll_seconds),
                    message=f"Prediction {prediction_id} created.",
                    data={"source": source},
                )
                await apply_prediction(session, job_id, prediction, self.catalogue, source=source)
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()
        job = await self._load(job_id)
        if job.cancel_requested_at is not None:
            await self._cancel_at_replicate(job)
        return True


async def _lock_create_inputs(session: AsyncSession, job: JobRow) -> None:
    """Serialise creates of the same inputs until this transaction ends: on PostgreSQL an advisory
    lock on their fingerprint (every server shares it); SQLite has one writer, so a first write takes
    the database's lock."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        digest = hashlib.sha256(_fingerprint(job).encode()).digest()
        await session.execute(
            select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], "big", signed=True)))
        )
    else:
        await session.execute(
            update(JobRow).where(JobRow.id == job.id).values(create_attempts=JobRow.create_attempts)
        )


def _fingerprint(job: JobRow) -> str:
    """What a lookup matches a prediction on: the version and the create's inputs (no secrets)."""
    return json.dumps([job.version, _canonical(job.spec.get("inputs") or {})], sort_keys=True, default=str)


def _twins(other: JobRow, job: JobRow) -> bool:
    return _fingerprint(other) == _fingerprint(job)


def _canonical(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs that identify a create: everything but the Secret inputs (Replicate may hide them)."""
    return {k: v for k, v in inputs.items() if k not in ("hf_token", "s3_access_key", "s3_secret_key")}


def _same_version(item: dict[str, Any], version: str | None) -> bool:
    found = str(item.get("version") or "")
    return version is None or found == version or found.endswith(f":{version}")
