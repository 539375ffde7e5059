"""`Sandbox`: the emulator's state (catalogue, files, jobs, faults, clock) and its background work
(trainer runs, webhook delivery, retention sweeps), started and stopped by whoever serves the app."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from simpletuner_cloud.sandbox import retention
from simpletuner_cloud.sandbox.catalogue import Catalogue
from simpletuner_cloud.sandbox.clock import Clock
from simpletuner_cloud.sandbox.config import SandboxConfig, new_webhook_secret
from simpletuner_cloud.sandbox.faults import Faults, JobScript
from simpletuner_cloud.sandbox.files import FileStore
from simpletuner_cloud.sandbox.jobs import Job, job_json
from simpletuner_cloud.sandbox.rate_limits import TokenBucket
from simpletuner_cloud.sandbox.trainer import run_trainer
from simpletuner_cloud.sandbox.trainer_inputs import RunCanceled, TrainerFailed
from simpletuner_cloud.sandbox.webhooks import WebhookSender

log = logging.getLogger("simpletuner_cloud.sandbox")

# What Replicate shows for a run stopped at its time limit ("Prediction failed. Prediction timed
# out.", replicate/cog#2098); the exact `error` string is unconfirmed (docs/decisions.md).
RUN_TIMED_OUT = "Prediction timed out."


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.faults = Faults()
        self.webhook_secret = config.webhook_secret or new_webhook_secret()
        self.signing_key = secrets.token_bytes(32)  # signs file download URLs
        self._own_dir = config.data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="simpletuner-sandbox-"))
            if config.data_dir is None
            else config.data_dir
        )
        self.outputs_dir = self.data_dir / "outputs"
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        self.files = FileStore(self.data_dir / "files")
        self.webhooks = WebhookSender(self)
        self.create_bucket = TokenBucket(config.create_rate_per_minute)
        self.other_bucket = TokenBucket(config.other_rate_per_minute)
        self.poll_bucket = TokenBucket(config.poll_rate_per_minute)
        self.reset_state()
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._watchers: set[asyncio.Task[None]] = set()  # Cancel-After deadlines
        self._background: list[asyncio.Task[None]] = []

    def reset_state(self) -> None:
        self.catalogue = Catalogue(self.config.account_username)
        self.jobs: dict[str, Job] = {}
        self.hub_pushes: list[dict[str, Any]] = []
        self.output_files: dict[str, Path] = {}
        self._seq = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.webhooks.start()
        if not self._background:
            self._background.append(
                asyncio.create_task(retention.sweep_forever(self), name="sandbox-retention")
            )
            self._background.append(asyncio.create_task(self._time_out_forever(), name="sandbox-timeouts"))

    async def stop(self) -> None:
        tasks = [*self._runs.values(), *self._watchers, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        self._background.clear()
        await self.webhooks.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def reset(self) -> None:
        """Forget every job, file, fault and clock offset (test control)."""
        tasks = [*self._runs.values(), *self._watchers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        self.reset_state()
        self.files.clear()
        self.faults = Faults()
        self.clock.reset()
        self.webhooks.clear()

    async def forget(self, job_id: str) -> bool:
        """Drop one job as if the service lost it (test control); False when there is none."""
        job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        task = self._runs.pop(job_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.output_files.pop(job_id, None)
        return True

    # -- jobs --------------------------------------------------------------------------------
    def render(self, job: Job) -> dict[str, Any]:
        return job_json(job, self.config.base_url)

    def submit(
        self, job_fields: dict[str, Any], inputs: dict[str, Any], *, cancel_after: float | None = None
    ) -> Job:
        self._seq += 1
        faults = self.faults
        job = Job(seq=self._seq, created_at=round(self.clock.now(), 6), **job_fields)
        if cancel_after is not None:
            job.deadline = job.created_at + cancel_after
        job.starting_delay = faults.starting_delay
        job.fail_at_step = faults.fail_at_step
        job.run_timeout = faults.run_timeout_seconds
        job.script = faults.take_script(job.kind, job.webhook, job.input)
        self.jobs[job.id] = job
        self._runs[job.id] = asyncio.create_task(self._run(job, inputs), name=f"sandbox-run-{job.id}")
        if job.deadline is not None:
            watcher = asyncio.create_task(self._watch_deadline(job), name=f"sandbox-deadline-{job.id}")
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return job

    def log(self, job: Job, *lines: str) -> None:
        if job.terminal or not lines:
            return
        job.logs += "".join(f"{line}\n" for line in lines)
        self.webhooks.notify(job, "logs")

    def finish(self, job: Job, status: str, *, output: Any = None, error: str | None = None) -> bool:
        """Move a job to a terminal status once; later calls (a cancel racing completion) are no-ops."""
        if job.terminal:
            return False
        if output is not None:
            job.output = output
            self.webhooks.notify(job, "output", immediate=True)
        job.status = status
        job.error = error
        job.completed_at = self.clock.now()
        job.done.set()
        self.webhooks.notify(job, "completed")
        return True

    def cancel(self, job: Job) -> None:
        if self.finish(job, "canceled"):
            task = self._runs.pop(job.id, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def _run(self, job: Job, inputs: dict[str, Any]) -> None:
        try:
            delay = self.config.boot_seconds + job.starting_delay
            if job.starting_delay < 0:
                await asyncio.Event().wait()  # stuck in `starting` until canceled
            await asyncio.sleep(max(delay, 0))
            if job.script is not None:
                await self._scripted_start(job, job.script)
                if job.terminal:
                    return
            job.status = "processing"
            job.started_at = self.clock.now()
            self.webhooks.notify(job, "start")
            for name in job.unknown_inputs:
                self.log(job, f'Warning: unexpected input "{name}" was ignored (not in the model\'s schema)')
            if job.late_validation_errors:
                detail = "; ".join(f"{e['field']}: {e['description']}" for e in job.late_validation_errors)
                raise TrainerFailed(f"Prediction input failed validation: {detail}")
            output = await run_trainer(self, job, inputs)
            self.finish(job, "succeeded", output=self._training_output(job, output))
        except TrainerFailed as exc:
            self.finish(job, "failed", error=str(exc))
        except RunCanceled:
            self.finish(job, "canceled")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("sandbox: run %s crashed", job.id)
            self.finish(job, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._runs.pop(job.id, None)

    async def _scripted_start(self, job: Job, script: JobScript) -> None:
        """A script's time in `starting` (on the sandbox clock, so a test can move past it), and the
        outcomes that happen before the run starts: a boot failure or a cancel."""
        wait = script.waits_in_starting()
        until = None if wait is None else job.created_at + wait
        # Short naps against the movable clock, like the Cancel-After watcher.
        while until is None or self.clock.now() < until:  # noqa: ASYNC110
            await asyncio.sleep(0.1 if until is None else min(until - self.clock.now(), 0.1))
        if script.outcome == "fail" and script.stop_step is None:
            error, _ = script.failure(None, 0)
            self.finish(job, "failed", error=error)
        elif script.outcome == "cancel" and script.stop_step is None:
            self.finish(job, "canceled")

    def time_out_runs(self) -> int:
        """Fail every run that has been `processing` for longer than its run timeout (one pass)."""
        now, timed_out = self.clock.now(), 0
        for job in list(self.jobs.values()):
            if job.status == "processing" and job.started_at is not None:
                if now >= job.started_at + job.run_timeout and self.finish(
                    job, "failed", error=RUN_TIMED_OUT
                ):
                    task = self._runs.pop(job.id, None)
                    if task is not None:
                        task.cancel()
                    timed_out += 1
        return timed_out

    async def _time_out_forever(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.time_out_runs()

    def _training_output(self, job: Job, output: str) -> Any:
        if job.kind != "training":
            return output
        destination = self.catalogue.get(str(job.destination))
        assert destination is not None
        version = self.catalogue.add_trained_version(destination, self.clock.now())
        weights = f"{self.config.base_url}/delivery/{job.id}/pytorch_lora_weights.safetensors"
        return {"version": f"{destination.ref}:{version.id}", "weights": weights}

    async def _watch_deadline(self, job: Job) -> None:
        assert job.deadline is not None
        # Short naps against the sandbox clock, so a test that moves the clock sees the deadline pass.
        while not job.terminal and self.clock.now() < job.deadline:  # noqa: ASYNC110 (a movable clock)
            await asyncio.sleep(min(job.deadline - self.clock.now(), 0.1))
        if job.terminal or self.jobs.get(job.id) is not job:  # finished, or forgotten
            return
        if job.status == "starting":
            if self.finish(job, "aborted"):
                task = self._runs.pop(job.id, None)
                if task:
                    task.cancel()
        else:
            self.cancel(job)
