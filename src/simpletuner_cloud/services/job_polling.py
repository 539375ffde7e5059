"""Following queued and running jobs without trusting one signal: with many active jobs one list call
tells which changed, a GET reads a job's logs when they are due (slower while its webhooks flow),
the snapshot is applied forward-only, and a job queued too long says why (the status page)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, JobStatus, map_replicate_status
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.job_steps import ACTIVE, LIST_PAGES, LOOKUP_WINDOW, JobSteps
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow

log = logging.getLogger(__name__)


class PollingSteps(JobSteps):
    async def _reconcile_remote(self, jobs: list[JobRow]) -> None:
        """Many active jobs: one list call tells which changed; GET only those and the ones whose log
        poll is due. Few: a GET each."""
        statuses: dict[str, str] = {}
        if len(jobs) >= self.settings.list_threshold:
            statuses = await self._list_statuses(jobs)
        for job in jobs:
            try:
                await self._poll_one(job, statuses.get(job.prediction_id or ""))
            except CloudError as exc:
                log.info("job %s: poll failed (%s)", job.id, exc.code)
                await self._later(job.id, self.settings.poll_seconds)
            finally:
                await self._release(job.id)

    async def _list_statuses(self, jobs: list[JobRow]) -> dict[str, str]:
        oldest = min((j.submitted_at or j.created_at) for j in jobs) - LOOKUP_WINDOW
        wanted = {j.prediction_id for j in jobs if j.prediction_id}
        found: dict[str, str] = {}
        replicate = await self._replicate_settings()
        try:
            async with self.runtime.client(self.settings, replicate) as client:
                page = await client.list_predictions(created_after=oldest.isoformat().replace("+00:00", "Z"))
                for _ in range(LIST_PAGES * 4):
                    for item in page.get("results") or []:
                        if item.get("id") in wanted:
                            found[str(item["id"])] = str(item.get("status") or "")
                    if not page.get("next") or wanted <= set(found):
                        break
                    page = await client.list_predictions(url=page["next"])
        except CloudError as exc:
            log.info("predictions list failed (%s); polling one by one", exc.code)
            return {}
        return found

    async def _poll_one(self, job: JobRow, listed_status: str | None) -> None:
        now = utcnow()
        if job.prediction_id is None:  # queued without an id cannot happen; repair by looking for it
            await self._later(job.id, self.settings.poll_seconds)
            return
        listed = map_replicate_status(listed_status) if listed_status else None
        logs_due = JobStatus(job.status) is JobStatus.RUNNING and self._logs_due(job, now)
        unchanged = listed is not None and listed.value == job.status and listed not in TERMINAL_STATUSES
        if unchanged and not logs_due:
            await self._schedule_next(job, now)
            return
        replicate = await self._replicate_settings()
        async with self.runtime.client(self.settings, replicate) as client:
            prediction = await client.find_prediction(job.prediction_id)
        if prediction is None:
            await self._prediction_gone(job)
            return
        async with self.database.session() as session:
            applied = await apply_prediction(session, job.id, prediction, self.catalogue, source="poll")
            await repo.note_logs_read(session, job.id, now)
            await session.commit()
        self.bus.notify()
        fresh = await self._load(job.id)
        if applied.terminal:
            return
        if fresh.cancel_requested_at is not None:
            await self._cancel_at_replicate(fresh)
        await self._doctor(fresh, now)
        await self._schedule_next(fresh, now)

    def _logs_due(self, job: JobRow, now: datetime) -> bool:
        last = job.logs_polled_at  # on the job, so every server spaces the reads alike
        webhooks_flow = job.last_webhook_at is not None and now - job.last_webhook_at < timedelta(minutes=2)
        every = self.settings.log_poll_seconds * (4 if webhooks_flow else 1)
        return last is None or (now - last).total_seconds() >= every

    async def _schedule_next(self, job: JobRow, now: datetime) -> None:
        """Fast while webhooks are silent, slow while they flow (they carry the news)."""
        webhooks_flow = job.last_webhook_at is not None and now - job.last_webhook_at < timedelta(minutes=2)
        seconds = self.settings.poll_seconds * (6 if webhooks_flow else 1)
        async with self.database.session() as session:
            # Only while it runs: a job that ended meanwhile (a webhook) is due for its clean-up now.
            await repo.set_fields(
                session, job.id, while_status=ACTIVE, next_poll_at=now + timedelta(seconds=seconds)
            )
            await session.commit()

    async def _prediction_gone(self, job: JobRow) -> None:
        """A tracked id answering 404 (Replicate drops old trainings): fail with that reason."""
        error = CloudError(
            f"Replicate no longer knows prediction {job.prediction_id}.",
            code="prediction_missing",
            hint="Replicate removed it; check the job on replicate.com. Nothing more can be read here.",
        )
        await self._fail(job.id, error)

    async def _doctor(self, job: JobRow, now: datetime) -> None:
        """A job queued past the threshold says why it may wait, with the status page's word."""
        if JobStatus(job.status) is not JobStatus.QUEUED or job.notice is not None:
            return
        since = job.submitted_at or job.created_at
        if (now - since).total_seconds() < self.settings.stuck_queued_seconds:
            return
        replicate = await self._replicate_settings()
        status = await self.runtime.status_reader(self.settings, replicate).status()
        minutes = int((now - since).total_seconds() // 60)
        notice: dict[str, Any] = {
            "kind": "stuck_queued",
            "message": f"Queued for {minutes} min. Replicate queues jobs while GPUs are busy.",
            "hint": "Check Replicate's status page (https://replicate.statuspage.io/); the job starts when "
            "a GPU is free, and queue time is not billed.",
            "status_page": {"indicator": status.indicator, "description": status.description},
        }
        async with self.database.session() as session:
            await repo.set_fields(session, job.id, notice=notice)
            await repo.add_event(
                session, job.id, "stuck", message=notice["message"], data=notice["status_page"]
            )
            await announce(session, job.id)
            await session.commit()
        self.bus.notify()
