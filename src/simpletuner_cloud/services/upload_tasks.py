"""The state of dataset uploads: phase, byte progress, result or error, and a change signal that any
number of Server-Sent-Event listeners follow. Listeners always get the latest state (intermediate
steps are coalesced), so a slow client never makes the server buffer.

The server running an upload keeps it in memory and mirrors every change to the database
(`dataset_uploads`), so any server on the database can answer for it and stream its progress; an
upload whose server stopped answering (no heartbeat) reads as stopped. The one-upload-per-archive
lock is the database's `upload_locks` row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, Literal

from pydantic import BaseModel

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.dataset_views import ErrorDetailResponse
from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.store.database import Database, dialect_insert
from simpletuner_cloud.store.tables import DatasetUploadRow, utcnow

State = Literal["packaging", "uploading", "succeeded", "failed"]
KEEP_FINISHED = 50  # finished tasks kept for late listeners; older ones are forgotten
CANCEL_GRACE = 2.0  # seconds a cancelled upload gets to remove its temporary archive
MIRROR_EVERY = 0.25  # seconds between database writes of a running upload's progress
HEARTBEAT = 5.0  # a running upload's row is touched this often
STALE_AFTER = 30.0  # an unfinished upload whose row is older than this lost its server
REMOTE_POLL = 0.5  # how often a listener on another server re-reads the row
LOCK_LEASE = 60.0


class UploadResultResponse(BaseModel):
    upload_id: str
    file_id: str
    url: str
    sha256: str
    size: int
    files: int
    reused: bool
    expires_at: str | None


class DatasetUploadResponse(BaseModel):
    """An upload's snapshot as the API answers it. The snapshot itself stays JSON (`snapshot()`): it is
    what the database row mirrors and what the events carry."""

    id: str
    config: str | None
    state: State
    bytes_done: int
    bytes_total: int
    archive_bytes: int
    files: int
    warnings: list[str]
    result: UploadResultResponse | None
    error: ErrorDetailResponse | None
    events_url: str

    @classmethod
    def of(cls, upload: UploadTask | RemoteUpload) -> DatasetUploadResponse:
        return cls.model_validate(upload.snapshot())


class UploadTask:
    def __init__(
        self,
        task_id: str,
        config: str | None,
        archive_bytes: int,
        files: int,
        warnings: list[str] | None = None,
    ) -> None:
        self.id = task_id
        self.warnings = list(warnings or [])
        self.config = config
        self.archive_bytes = archive_bytes
        self.files = files
        self.state: State = "packaging"
        self.bytes_done = 0
        self.bytes_total = archive_bytes
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.version = 0
        self._changed = asyncio.Event()
        self.on_change: Any = None  # set by the registry that mirrors it to the database

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")

    def progress(self, phase: State, done: int, total: int) -> None:
        if self.finished:
            return  # a late callback from the packaging thread
        self.state, self.bytes_done, self.bytes_total = phase, done, total
        self._touch()

    def succeed(self, result: dict[str, Any]) -> None:
        if self.finished:
            return  # the first final state stays (say, `server_stopping` before a late success)
        self.state, self.result = "succeeded", result
        self.bytes_done = self.bytes_total = int(result["size"])
        self._touch()

    def fail(self, error: dict[str, Any]) -> None:
        if self.finished:
            return
        self.state, self.error = "failed", error
        self._touch()

    def _touch(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_change is not None:
            self.on_change(self)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "config": self.config,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "archive_bytes": self.archive_bytes,
            "files": self.files,
            "warnings": self.warnings,
            "result": self.result,
            "error": self.error,
            "events_url": f"/api/cloud/data/uploads/{self.id}/events",
        }

    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        """`progress` events while running, then one `succeeded` or `failed`, then the end."""
        sent = -1
        while True:
            changed = self._changed  # taken before reading, so no change slips between read and wait
            if self.version != sent:
                sent = self.version
                event = self.state if self.finished else "progress"
                yield {"event": event, "data": json.dumps(self.snapshot(), sort_keys=True)}
                if self.finished:
                    return
            await changed.wait()


class RemoteUpload:
    """An upload another server runs, read from its mirrored row (same `snapshot()` and `events()`)."""

    def __init__(self, database: Database, row: DatasetUploadRow) -> None:
        self.database = database
        self.id = row.id
        self._row = row

    @property
    def finished(self) -> bool:
        return self._snapshot()["state"] in ("succeeded", "failed")

    def _snapshot(self) -> dict[str, Any]:
        snapshot = dict(self._row.snapshot)
        stale = (utcnow() - self._row.heartbeat_at).total_seconds() > STALE_AFTER
        if snapshot["state"] not in ("succeeded", "failed") and stale:
            from simpletuner_cloud.services.uploads import SERVER_STOPPING  # the one stopped-upload state

            snapshot |= {"state": "failed", "error": SERVER_STOPPING}
        return snapshot

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot()

    async def _reload(self) -> None:
        async with self.database.session() as session:
            row = await session.get(DatasetUploadRow, self.id, populate_existing=True)
            if row is not None:
                self._row = row

    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        sent: dict[str, Any] | None = None
        while True:
            snapshot = self._snapshot()
            if snapshot != sent:
                sent = snapshot
                finished = snapshot["state"] in ("succeeded", "failed")
                event = snapshot["state"] if finished else "progress"
                yield {"event": event, "data": json.dumps(snapshot, sort_keys=True)}
                if finished:
                    return
            await asyncio.sleep(REMOTE_POLL)
            await self._reload()


class UploadTasks:
    """The registry one app holds (created by the app's lifespan, see `services.uploads.stop_uploads`).
    Background coroutines are kept referenced until they finish. With a database, every task is
    mirrored there (see the module's docstring); without one (unit tests) it is memory only."""

    def __init__(self, database: Database | None = None, holder: str | None = None) -> None:
        self._tasks: dict[str, UploadTask] = {}
        self._running: dict[asyncio.Task[None], UploadTask] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.database = database
        self.holder = holder or f"uploads-{secrets.token_hex(6)}"
        self._dirty: dict[str, UploadTask] = {}
        self._writer: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()  # a flush waits for a write already under way

    def create(
        self, config: str | None, archive_bytes: int, files: int, warnings: list[str] | None = None
    ) -> UploadTask:
        self._forget_old()
        task = UploadTask(f"dsu_{secrets.token_hex(10)}", config, archive_bytes, files, warnings)
        self._tasks[task.id] = task
        if self.database is not None:
            task.on_change = self._mark
            self._mark(task)
        return task

    def _mark(self, task: UploadTask) -> None:
        self._dirty[task.id] = task
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="dataset-upload-mirror")

    async def _write_loop(self) -> None:
        """Write changed tasks (coalesced), and keep the running ones' heartbeat fresh."""
        last_beat = 0.0
        loop = asyncio.get_running_loop()
        while self._dirty or any(not t.finished for t in self._tasks.values()):
            if self._dirty or loop.time() - last_beat >= HEARTBEAT:
                await self._write_pending(heartbeat=True)
                last_beat = loop.time()
            await asyncio.sleep(MIRROR_EVERY)

    async def _write_pending(self, *, heartbeat: bool = False) -> None:
        """The changed tasks (or, for a heartbeat, every running one), taken and written under one
        lock, so a flush returns only once what was pending before it is in the database."""
        assert self.database is not None
        async with self._writing:
            batch = list(self._dirty.values())
            self._dirty.clear()
            if not batch and heartbeat:
                batch = [t for t in self._tasks.values() if not t.finished]
            if not batch:
                return
            now = utcnow()
            async with self.database.session() as session:
                for task in batch:
                    values = {"snapshot": task.snapshot(), "holder": self.holder, "heartbeat_at": now}
                    insert = dialect_insert(session, DatasetUploadRow).values(
                        id=task.id, created_at=now, **values
                    )
                    await session.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))
                await session.commit()

    async def flush(self) -> None:
        """Write every pending change now (shutdown, tests)."""
        if self.database is not None:
            await self._write_pending()

    async def find(self, task_id: str) -> UploadTask | RemoteUpload:
        """This server's task, or another server's from the database; `upload_not_found` otherwise."""
        local = self._tasks.get(task_id)
        if local is not None:
            return local
        if self.database is not None:
            async with self.database.session() as session:
                row = await session.get(DatasetUploadRow, task_id)
            if row is not None:
                return RemoteUpload(self.database, row)
        return self.get(task_id)

    def run(self, task: UploadTask, work: Coroutine[Any, Any, None]) -> None:
        running = asyncio.create_task(work, name=f"dataset-upload-{task.id}")
        self._running[running] = task
        running.add_done_callback(self._done)

    def _done(self, running: asyncio.Task[None]) -> None:
        self._running.pop(running, None)

    def get(self, task_id: str) -> UploadTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise CloudError(
                f"No dataset upload `{task_id}`.",
                code="upload_not_found",
                hint="Start the upload again: `simpletuner cloud data upload <env>`.",
            )
        return task

    @contextlib.asynccontextmanager
    async def lock(self, sha256: str) -> AsyncIterator[None]:
        """One upload per archive at a time (across servers, with a database), so a concurrent twin
        reuses it instead of sending it too."""
        if self.database is not None:
            async with upload_lock(self.database, sha256, self.holder, LOCK_LEASE):
                yield
            return
        async with self._locks.setdefault(sha256, asyncio.Lock()):  # a few bytes per distinct archive
            yield

    async def wait(self) -> None:
        """Until every background upload has finished (tests)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def stop(
        self, drain_seconds: float, error: dict[str, Any], grace_seconds: float = CANCEL_GRACE
    ) -> list[str]:
        """Wait up to `drain_seconds` for the running uploads, then fail the rest with `error` (so their
        listeners get a final event now) and cancel them, allowing `grace_seconds` for their clean-up
        (the temporary archive). Returns the ids of the uploads that were stopped."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=drain_seconds)
        stopped = []
        for running, task in list(self._running.items()):
            if not task.finished:
                task.fail(error)
                stopped.append(task.id)
            running.cancel()
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace_seconds)
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        return stopped

    def _forget_old(self) -> None:
        finished = [task for task in self._tasks.values() if task.finished]
        for task in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._tasks[task.id]
