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
import os
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

import anyio
from sqlalchemy import and_, or_, select

from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, JobStatus, is_terminal, map_replicate_status
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.datasets import build_dataset_archive, load_config
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.job_secrets import delete_job_secrets, load_job_secrets
from simpletuner_cloud.services.job_tracking import apply_prediction, final_cost
from simpletuner_cloud.services.job_views import rate_of
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.services.uploads import delete_dataset_upload, upload_dataset, uploads_dir
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow
from simpletuner_cloud.trainer.inputs import JobSpec, dataset_inputs

log = logging.getLogger(__name__)
CreateOutcome = Literal["not_sent", "ambiguous", "refused"]
PREPARE_STATUSES = frozenset(
    {JobStatus.CREATED, JobStatus.PACKAGING, JobStatus.UPLOADING, JobStatus.SUBMITTING}
)
REMOTE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
ACTIVE = [status.value for status in JobStatus if status not in TERMINAL_STATUSES]
LOOKUP_WINDOW = timedelta(minutes=2)  # a create's prediction was made at most this long before it was sent
LIST_PAGES = 5
MAX_CREATE_ATTEMPTS = 3
MAX_PREPARE_ATTEMPTS = 5
PROGRESS_EVERY = 0.5  # seconds between progress writes while packaging or uploading


class Stopped(Exception):
    """The job was canceled (or its lease lost) while a long step ran."""


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


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        runtime: ProviderRuntime | Callable[[], ProviderRuntime],
        bus: EventBus,
        *,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        # The app's runtime is read at each use: tests install their own after the app is built.
        self._runtime = runtime if callable(runtime) else (lambda: runtime)
        self.bus = bus
        self.holder = holder or f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(4)}"
        self.lease_seconds = settings.job_lease_seconds
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._logs_polled_at: dict[str, datetime] = {}
        self.catalogue = load_hardware_catalogue(settings)

    @property
    def runtime(self) -> ProviderRuntime:
        return self._runtime()

    # The pass ------------------------------------------------------------------------------------
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

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _release(self, job_id: str) -> None:
        async with self.database.session() as session:
            await repo.release_job(session, job_id, self.holder)
            await session.commit()

    async def stop(self, drain_seconds: float) -> None:
        """Let running steps finish for `drain_seconds`, then cancel them (their leases run out and
        another server, or this one after a restart, resumes them)."""
        tasks = list(self._busy.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)

    async def _later(self, job_id: str, seconds: float, **fields: Any) -> None:
        async with self.database.session() as session:
            await repo.set_fields(
                session,
                job_id,
                next_poll_at=utcnow() + timedelta(seconds=seconds),
                fence=self.holder,
                **fields,
            )
            await session.commit()

    # Packaging, upload, create ------------------------------------------------------------------
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

    async def _prepare(self, job: JobRow) -> bool:
        """Package and upload; True when the job reached `submitting`."""
        request = dict(job.spec.get("request") or {})
        attempts = int(job.spec.get("prepare_attempts") or 0) + 1
        await self._move(job.id, JobStatus.PACKAGING, message="Packaging the dataset.")
        try:
            config = await anyio.to_thread.run_sync(
                lambda: load_config(
                    self.settings,
                    request.get("config"),
                    request.get("config_json"),
                    request.get("dataloader_json"),
                )
            )
            overrides = dict(job.spec.get("config_overrides") or {})
            if overrides:  # what the destination needs (set at submit), over the config as it is now
                config = replace(config, options={**config.options, **overrides})
            preflight = await anyio.to_thread.run_sync(
                lambda: run_preflight(
                    config,
                    merge_local=bool(request.get("merge_local_datasets")),
                    rename_to_captions=bool(request.get("rename_to_captions")),
                )
            )
            spec = JobSpec(
                preflight.config,
                preflight.plan,
                None,
                max_train_steps=request.get("max_train_steps"),
                archive_url="pending" if preflight.needs_upload else None,
            )
            upload_id = None
            archive_url = None
            if preflight.needs_upload:
                upload_id, archive_url = await self._package_and_upload(job, preflight)
            inputs = dataset_inputs(
                JobSpec(
                    preflight.config,
                    preflight.plan,
                    None,
                    archive_url=archive_url,
                    max_train_steps=spec.max_train_steps,
                )
            )
        except CloudError as exc:
            retry = exc.code in ("provider_unavailable", "rate_limited") and attempts < MAX_PREPARE_ATTEMPTS
            if retry:
                await self._later(job.id, 2.0**attempts, spec={**job.spec, "prepare_attempts": attempts})
                return False
            await self._fail(job.id, exc)
            return False
        inputs.update(job.spec.get("destination_inputs") or {})
        new_spec = {**job.spec, "inputs": inputs, "archive_url": archive_url, "prepare_attempts": attempts}
        async with self.database.session() as session:
            await repo.apply_status(
                session,
                job.id,
                JobStatus.SUBMITTING,
                fence=self.holder,
                upload_id=upload_id,
                spec=new_spec,
                message="Creating the prediction at Replicate.",
            )
            await announce(session, job.id)
            await session.commit()
        self.bus.notify()
        return True

    async def _package_and_upload(self, job: JobRow, preflight: Any) -> tuple[str, str]:
        progress = _ProgressWriter(self, job.id)
        path = uploads_dir(self.settings) / f"{job.id}.zip"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replicate = await self._replicate_settings()
        async with progress.running():
            try:

                def packaging(done: int, total: int) -> None:
                    progress.update("packaging", done, total)
                    if done and self.settings.fault_point == "during_packaging":
                        self._maybe_crash("during_packaging")

                archive = await build_dataset_archive(preflight, path, packaging)
                await self._move(job.id, JobStatus.UPLOADING, message=f"Uploading {archive.size:,} bytes.")
                progress.update("uploading", 0, archive.size)
                async with (
                    upload_lock(self.database, archive.sha256, self.holder, self.lease_seconds),
                    self.runtime.client(self.settings, replicate) as client,
                ):
                    uploaded = await upload_dataset(
                        self.database,
                        client.http,
                        path,
                        archive,
                        on_progress=lambda done, total: progress.update("uploading", done, total),
                    )
            finally:
                path.unlink(missing_ok=True)
        if uploaded.reused:
            async with self.database.session() as session:
                await repo.add_event(session, job.id, "upload_reused", data={"upload_id": uploaded.upload_id})
                await session.commit()
        self._maybe_crash("after_upload")
        return uploaded.upload_id, uploaded.url

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
            )
            return
        replicate = await self._replicate_settings()
        inputs = {**dict(job.spec.get("inputs") or {}), **load_job_secrets(self.settings, job.id)}
        sent_at = utcnow()
        async with self.database.session() as session:  # written before the side effect
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
        await self._adopt(job.id, prediction, submitted_at=sent_at, source="create")

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
        found = await self._find_prediction(job)
        if found is not None:
            await self._adopt(job.id, found, submitted_at=job.create_sent_at, source="list")
            async with self.database.session() as session:
                await repo.add_event(
                    session, job.id, "create_recovered", data={"prediction_id": found.get("id")}
                )
                await session.commit()
            return True
        assert job.create_sent_at is not None
        if utcnow() - job.create_sent_at < timedelta(seconds=self.settings.create_lookup_seconds):
            await self._later(job.id, self.settings.create_lookup_seconds / 3)
            return True
        async with self.database.session() as session:
            await repo.set_fields(session, job.id, fence=self.holder, create_sent_at=None)
            await repo.add_event(
                session, job.id, "create_retry", message="No prediction was created; sending again."
            )
            await session.commit()
        return False

    async def _find_prediction(self, job: JobRow) -> dict[str, Any] | None:
        """The prediction a create made, matched by its inputs (the archive URL, the config) and
        version, created after the send window opened and not yet adopted by another job."""
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
        async with self.database.session() as session:
            for item in candidates:
                owner = await repo.get_job_by_prediction_id(session, str(item.get("id")))
                if owner is None or owner.id == job.id:
                    return item
        return None

    async def _adopt(
        self, job_id: str, prediction: dict[str, Any], *, submitted_at: datetime | None, source: str
    ) -> None:
        prediction_id = str(prediction.get("id") or "")
        async with self.database.session() as session:
            await repo.record_prediction_id(session, job_id, prediction_id)  # recorded whatever happens next
            await session.commit()
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

    # Tracking ------------------------------------------------------------------------------------
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
            try:
                prediction = await client.get_prediction(job.prediction_id)
            except CloudError as exc:
                if exc.code != "not_found":
                    raise
                await self._prediction_gone(job)
                return
        async with self.database.session() as session:
            applied = await apply_prediction(session, job.id, prediction, self.catalogue, source="poll")
            await session.commit()
        self._logs_polled_at[job.id] = now
        self.bus.notify()
        fresh = await self._load(job.id)
        if applied.terminal:
            return
        if fresh.cancel_requested_at is not None:
            await self._cancel_at_replicate(fresh)
        await self._doctor(fresh, now)
        await self._schedule_next(fresh, now)

    def _logs_due(self, job: JobRow, now: datetime) -> bool:
        # Per process on purpose: another replica taking the job over costs at most one extra GET.
        last = self._logs_polled_at.get(job.id)
        webhooks_flow = job.last_webhook_at is not None and now - job.last_webhook_at < timedelta(minutes=2)
        every = self.settings.log_poll_seconds * (4 if webhooks_flow else 1)
        return last is None or (now - last).total_seconds() >= every

    async def _schedule_next(self, job: JobRow, now: datetime) -> None:
        """Fast while webhooks are silent, slow while they flow (they carry the news)."""
        webhooks_flow = job.last_webhook_at is not None and now - job.last_webhook_at < timedelta(minutes=2)
        seconds = self.settings.poll_seconds * (6 if webhooks_flow else 1)
        async with self.database.session() as session:
            await repo.set_fields(session, job.id, next_poll_at=now + timedelta(seconds=seconds))
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

    # Cancel and the end ----------------------------------------------------------------------------
    async def _cancel_at_replicate(self, job: JobRow) -> bool:
        if job.prediction_id is None:
            return False
        replicate = await self._replicate_settings()
        async with self.runtime.client(self.settings, replicate) as client:
            prediction = await client.cancel_prediction(job.prediction_id)
        async with self.database.session() as session:
            await repo.add_event(
                session, job.id, "canceled_at_replicate", data={"prediction_id": job.prediction_id}
            )
            current = await repo.require_job(session, job.id)
            if not is_terminal(current.status):
                await apply_prediction(session, job.id, prediction, self.catalogue, source="cancel")
            await announce(session, job.id)
            await session.commit()
        self.bus.notify()
        return True

    async def _finish_canceled(self, job_id: str) -> None:
        async with self.database.session() as session:
            await repo.apply_status(
                session,
                job_id,
                JobStatus.CANCELED,
                message="Canceled before anything was created at Replicate.",
            )
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()

    async def _finish(self, job_id: str) -> None:
        """After a terminal state: nothing left running at Replicate, final logs and cost kept, the
        dataset file deleted, the job's secrets gone. Until all of that is done the job is retried."""
        job = await self._load(job_id)
        if job.prediction_id is None and job.create_sent_at is not None:
            # Canceled while a create's fate was unknown: find it (and stop it) before forgetting it.
            if job.create_sent_at > utcnow() - timedelta(seconds=self.settings.create_lookup_seconds * 2):
                found = await self._find_prediction(job)
                if found is None:
                    await self._later(job_id, self.settings.create_lookup_seconds / 3)
                    return
                await self._adopt(job_id, found, submitted_at=job.create_sent_at, source="list")
                job = await self._load(job_id)
        if job.prediction_id is not None:
            replicate = await self._replicate_settings()
            async with self.runtime.client(self.settings, replicate) as client:
                try:
                    prediction = await client.get_prediction(job.prediction_id)
                except CloudError as exc:
                    if exc.code != "not_found":
                        raise
                    prediction = {}
                remote = map_replicate_status(prediction.get("status")) if prediction else None
                if prediction and remote is not None and remote not in TERMINAL_STATUSES:
                    prediction = await client.cancel_prediction(job.prediction_id)
                    async with self.database.session() as session:
                        await repo.add_event(
                            session,
                            job_id,
                            "canceled_at_replicate",
                            data={"prediction_id": job.prediction_id},
                        )
                        await session.commit()
                    remote = map_replicate_status(prediction.get("status"))
                if prediction and remote is not None and remote not in TERMINAL_STATUSES:
                    await self._later(job_id, self.settings.poll_seconds)  # still stopping: come back
                    return
            if prediction:
                async with self.database.session() as session:
                    await apply_prediction(session, job_id, prediction, self.catalogue, source="poll")
                    current = await repo.require_job(session, job_id)
                    # A local cancel finished the job before Replicate billed it: record what it billed.
                    if current.actual_cost_usd is None or (prediction.get("metrics") or {}).get(
                        "predict_time"
                    ):
                        cost = final_cost(prediction, rate_of(self.catalogue, current.hardware))
                        await repo.set_fields(session, job_id, actual_cost_usd=cost)
                    await session.commit()
        if not await self._delete_dataset(job):
            await self._later(job_id, self.settings.poll_seconds)
            return
        delete_job_secrets(self.settings, job_id)
        async with self.database.session() as session:
            await repo.set_fields(session, job_id, fence=self.holder, cleaned_at=utcnow(), next_poll_at=None)
            await repo.add_event(
                session, job_id, "cleaned_up", message="Dataset file deleted at Replicate; secrets removed."
            )
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()

    async def _delete_dataset(self, job: JobRow) -> bool:
        """Delete the job's dataset file at Replicate, unless another job may still read it: one that
        holds the same upload, or one not yet past `submitting` (it may be about to reuse it: the
        reuse check and this delete would race). False: come back later."""
        if job.upload_id is None:
            return True
        async with self.database.session() as session:
            still_needed = await session.scalar(
                select(JobRow.id)
                .where(
                    JobRow.id != job.id,
                    or_(
                        and_(JobRow.upload_id == job.upload_id, JobRow.status.in_(ACTIVE)),
                        JobRow.status.in_([s.value for s in PREPARE_STATUSES]),
                    ),
                )
                .limit(1)
            )
        if still_needed is not None:
            return False
        replicate = await self._replicate_settings()
        async with self.runtime.client(self.settings, replicate) as client:
            await delete_dataset_upload(self.database, client.http, job.upload_id)
        return True

    # Small steps -----------------------------------------------------------------------------------
    async def _move(self, job_id: str, target: JobStatus, *, message: str) -> None:
        async with self.database.session() as session:
            job, _ = await repo.apply_status(
                session, job_id, target, fence=self.holder, message=message, data={"worker": self.holder}
            )
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()
        if is_terminal(job.status):
            raise Stopped(job_id)

    async def _fail(self, job_id: str, exc: CloudError) -> None:
        async with self.database.session() as session:
            await repo.apply_status(
                session,
                job_id,
                JobStatus.FAILED,
                error_code=exc.code,
                error=exc.message,
                error_hint=exc.hint,
                message=exc.message,
                data={"code": exc.code},
            )
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()

    async def _load(self, job_id: str) -> JobRow:
        async with self.database.session() as session:
            return await repo.require_job(session, job_id)

    async def _replicate_settings(self) -> Any:
        async with self.database.session() as session:
            return await load_replicate_settings(session, self.settings)

    def _maybe_crash(self, point: str) -> None:
        """The kill test's seam: `SIMPLETUNER_FAULT_POINT=<point>` kills this process right there."""
        if self.settings.fault_point == point:
            log.warning("fault point %s reached: killing the server", point)
            os.kill(os.getpid(), signal.SIGKILL)


class _ProgressWriter:
    """Byte progress from the packaging thread and the upload, written to the job (and its timeline)
    at most every PROGRESS_EVERY seconds; it also notices a cancel and stops the step."""

    def __init__(self, runner: JobRunner, job_id: str) -> None:
        self.runner = runner
        self.job_id = job_id
        self.latest: tuple[str, int, int] | None = None
        self.written: tuple[str, int, int] | None = None
        self.stopped = False

    def update(self, phase: str, done: int, total: int) -> None:  # any thread
        if self.stopped:
            raise Stopped(self.job_id)
        self.latest = (phase, done, total)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if not self.stopped:
                await self._write()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            await self._write()

    async def _write(self) -> None:
        latest = self.latest
        if latest is None or latest == self.written:
            return
        phase, done, total = latest
        async with self.runner.database.session() as session:
            job = await repo.require_job(session, self.job_id)
            if is_terminal(job.status) or job.cancel_requested_at is not None:
                self.stopped = True
                return
            progress = {**(job.progress or {}), "phase": phase, "bytes_done": done, "bytes_total": total}
            if not await repo.set_fields(session, self.job_id, fence=self.runner.holder, progress=progress):
                self.stopped = True
                return
            await repo.add_event(
                session,
                self.job_id,
                "upload_progress",
                data={"phase": phase, "bytes_done": done, "bytes_total": total},
            )
            await announce(session, self.job_id)
            await session.commit()
        self.written = latest
        self.runner.bus.notify()


def _canonical(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs that identify a create: everything but the Secret inputs (Replicate may hide them)."""
    return {k: v for k, v in inputs.items() if k not in ("hf_token", "s3_access_key", "s3_secret_key")}


def _same_version(item: dict[str, Any], version: str | None) -> bool:
    found = str(item.get("version") or "")
    return version is None or found == version or found.endswith(f":{version}")
