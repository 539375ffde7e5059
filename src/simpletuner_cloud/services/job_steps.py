"""The shared base of the worker's job pass (`job_runner.py`): the runner's state and the small
writes every step makes (a later poll, a status move fenced by the lease, a failure, a cancel at
Replicate). The steps themselves live in `job_prepare.py`, `job_create.py`, `job_polling.py` and
`job_finish.py`."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES, JobStatus, is_terminal
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.hardware_catalogue import load_hardware_catalogue
from simpletuner_cloud.services.job_tracking import apply_prediction
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow, utcnow

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


class JobSteps:
    """What every step of the job pass shares: settings, database, provider runtime, event bus, this
    worker's name (its lease token), and the small writes every step makes."""

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
        self.catalogue = load_hardware_catalogue(settings)

    @property
    def runtime(self) -> ProviderRuntime:
        return self._runtime()

    async def _release(self, job_id: str) -> None:
        async with self.database.session() as session:
            await repo.release_job(session, job_id, self.holder)
            await session.commit()

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

    async def _fail(self, job_id: str, exc: CloudError, *, unless_created: bool = False) -> bool:
        """Fail the job with `exc`; with `unless_created`, only while no prediction is recorded (a
        create's webhook may record one at any moment: that job runs, it has not failed). True when
        this call failed it."""
        async with self.database.session() as session:
            _, failed = await repo.apply_status(
                session,
                job_id,
                JobStatus.FAILED,
                expect={"prediction_id": None} if unless_created else None,
                error_code=exc.code,
                error=exc.message,
                error_hint=exc.hint,
                message=exc.message,
                data={"code": exc.code},
            )
            await announce(session, job_id)
            await session.commit()
        self.bus.notify()
        return failed

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
