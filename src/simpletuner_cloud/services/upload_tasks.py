"""In-memory state of the dataset uploads a server is running: phase, byte progress, result or error,
and a change signal that any number of Server-Sent-Event listeners follow. Listeners always get the
latest state (intermediate steps are coalesced), so a slow client never makes the server buffer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from typing import Any, Literal

from simpletuner_cloud.errors import CloudError

State = Literal["packaging", "uploading", "succeeded", "failed"]
KEEP_FINISHED = 50  # finished tasks kept for late listeners; older ones are forgotten
CANCEL_GRACE = 2.0  # seconds a cancelled upload gets to remove its temporary archive


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


class UploadTasks:
    """The registry one app holds (created by the app's lifespan, see `services.uploads.stop_uploads`).
    Background coroutines are kept referenced until they finish."""

    def __init__(self) -> None:
        self._tasks: dict[str, UploadTask] = {}
        self._running: dict[asyncio.Task[None], UploadTask] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def create(
        self, config: str | None, archive_bytes: int, files: int, warnings: list[str] | None = None
    ) -> UploadTask:
        self._forget_old()
        task = UploadTask(f"dsu_{secrets.token_hex(10)}", config, archive_bytes, files, warnings)
        self._tasks[task.id] = task
        return task

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
                f"No dataset upload `{task_id}` on this server.",
                code="upload_not_found",
                hint="Upload ids are kept in memory until the server restarts; start the upload again.",
            )
        return task

    @contextlib.asynccontextmanager
    async def lock(self, sha256: str) -> AsyncIterator[None]:
        """One upload per archive at a time, so a concurrent twin reuses it instead of sending it too."""
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
        return stopped

    def _forget_old(self) -> None:
        finished = [task for task in self._tasks.values() if task.finished]
        for task in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._tasks[task.id]
