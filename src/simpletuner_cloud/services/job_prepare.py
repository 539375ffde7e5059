"""Packaging and upload, the first steps of a job in the worker: the dataset is packaged again from
its config (exactly what submit checked), uploaded once per sha256 across servers (a live upload of
the same bytes is reused), and the trainer's inputs are written on the job before it moves to
`submitting`. Byte progress goes to the job and its timeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio

from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.domain.jobs import JobStatus, is_terminal
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.background import beside
from simpletuner_cloud.services.datasets import build_dataset_archive, load_config
from simpletuner_cloud.services.job_steps import MAX_PREPARE_ATTEMPTS, PROGRESS_EVERY, JobSteps, Stopped
from simpletuner_cloud.services.upload_locks import upload_lock
from simpletuner_cloud.services.uploads import upload_dataset, uploads_dir
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.notify import announce
from simpletuner_cloud.store.tables import JobRow
from simpletuner_cloud.trainer.inputs import JobSpec, dataset_inputs


class PrepareSteps(JobSteps):
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
                        job_id=job.id,
                    )
            finally:
                path.unlink(missing_ok=True)
        if uploaded.reused:
            async with self.database.session() as session:
                await repo.add_event(session, job.id, "upload_reused", data={"upload_id": uploaded.upload_id})
                await session.commit()
        self._maybe_crash("after_upload")
        return uploaded.upload_id, uploaded.url


class _ProgressWriter:
    """Byte progress from the packaging thread and the upload, written to the job (and its timeline)
    at most every PROGRESS_EVERY seconds; it also notices a cancel and stops the step."""

    def __init__(self, runner: JobSteps, job_id: str) -> None:
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
        try:
            async with beside(self._loop(), name=f"progress-{self.job_id}"):
                yield
        finally:
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
