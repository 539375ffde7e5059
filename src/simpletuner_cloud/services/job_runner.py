"""The worker's job pass, in dstack's rhythm: claim due jobs with a lease, call Replicate outside any
transaction, apply the result with writes fenced by the lease. Nothing here trusts one signal: every
active job is reconciled on its own schedule (`next_poll_at`) whether or not webhooks arrive.

Per job, by status:
- created / packaging / uploading / submitting: package the dataset, upload it (reusing a live upload
  of the same bytes), then create the prediction. Each step is written before its side effect. A
  create is never resent blindly: `create_sent_at` is committed first, and a create whose fate is
  unknown (timeout after sending, 5xx, dropped connection) is resolved by finding the prediction.
- queued / running: read the prediction (one list call for many jobs, a GET for logs) and apply it.
- finished but not cleaned up: make sure nothing still runs at Replicate (a local cancel), keep the
  final logs and cost, delete the uploaded dataset file and the job's secrets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from simpletuner_cloud.domain.jobs import JobStatus, is_terminal
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.background import beside, finish_or_cancel
from simpletuner_cloud.services.job_finish import FinishSteps
from simpletuner_cloud.services.job_polling import PollingSteps
from simpletuner_cloud.services.job_prepare import PrepareSteps
from simpletuner_cloud.services.job_steps import PREPARE_STATUSES, REMOTE_STATUSES, Stopped
from simpletuner_cloud.store import jobs as repo

log = logging.getLogger(__name__)


class JobRunner(PrepareSteps, FinishSteps, PollingSteps):
    """The worker's job pass; `stop()` drains it at shutdown."""

    async def run_pass(self) -> None:
        async with self.database.session() as session:
            claimed = await repo.claim_due_jobs(
                session, self.holder, limit=self.settings.worker_batch, lease_seconds=self.lease_seconds
            )
            await session.commit()
        claimed = [job for job in claimed if job.id not in self._busy]
        if not claimed:
            return
        remote = [j for j in claimed if JobStatus(j.status) in REMOTE_STATUSES]
        for job in claimed:
            if JobStatus(job.status) in PREPARE_STATUSES:
                self._spawn(job.id, self._drive(job.id))
            elif is_terminal(job.status):
                self._spawn(job.id, self._finish(job.id))
        if remote:
            await self._reconcile_remote(remote)

    def _spawn(self, job_id: str, work: Any) -> None:
        task = asyncio.create_task(self._leased(job_id, work), name=f"job-{job_id}")
        self._busy[job_id] = task

    async def _leased(self, job_id: str, work: Any) -> None:
        try:
            async with self._heartbeat(job_id):
                await work
        except (repo.LeaseLost, Stopped):
            log.info("job %s: stopped (canceled or lease lost)", job_id)
        except asyncio.CancelledError:
            raise
        except CloudError as exc:  # Replicate unreachable or refusing: expected, retried on schedule
            log.warning("job %s: %s (%s); retrying later", job_id, exc.message, exc.code)
            await self._later(job_id, self.settings.poll_seconds)
        except Exception:
            log.exception("job %s: worker step failed; retrying later", job_id)
            await self._later(job_id, self.settings.poll_seconds)
        finally:
            self._busy.pop(job_id, None)
            with contextlib.suppress(Exception):
                await self._release(job_id)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, job_id: str) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                async with self.database.session() as session:
                    if not await repo.claim_job(session, job_id, self.holder, self.lease_seconds):
                        return
                    await session.commit()

        async with beside(renew(), name=f"lease-{job_id}"):
            yield

    async def stop(self, drain_seconds: float) -> None:
        """Let running steps finish for `drain_seconds`, then cancel them (their leases run out and
        another server, or this one after a restart, resumes them)."""
        await finish_or_cancel(list(self._busy.values()), drain_seconds)

    async def _drive(self, job_id: str) -> None:
        job = await self._load(job_id)
        if job.cancel_requested_at is not None and job.create_sent_at is None and job.prediction_id is None:
            await self._finish_canceled(job_id)
            return
        if JobStatus(job.status) in (JobStatus.CREATED, JobStatus.PACKAGING, JobStatus.UPLOADING):
            if not await self._prepare(job):
                return
        job = await self._load(job_id)
        if JobStatus(job.status) is JobStatus.SUBMITTING:
            await self._create(job)
