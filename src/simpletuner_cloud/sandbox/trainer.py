"""The simulated `simpletuner/advanced-trainer`: stages the dataset, parses the config like the real
trainer (an unknown key, or a value its parser cannot read, fails the run), "trains" with the real
trainer's log lines, fills the output folder and publishes it like the real one: S3 with boto3 after
each validation run only, and a recorded Hub push per checkpoint and for the final model. Returns
the output string; raises `TrainerFailed` (or `RunCanceled` for a scripted cancel) otherwise."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from simpletuner_cloud.sandbox import trainer_logs as tl
from simpletuner_cloud.sandbox.dataset_archive import ArchiveRejected, count_samples
from simpletuner_cloud.sandbox.jobs import Job
from simpletuner_cloud.sandbox.outputs import OutputFolder, normalise_hub_id, s3_output_url, upload_to_s3
from simpletuner_cloud.sandbox.trainer_inputs import (
    HUB_TOKEN_REQUIRED,
    NO_BACKENDS,
    NO_DATA,
    RunCanceled,
    TrainerFailed,
    TrainingPlan,
    plan_training,
    read_config,
    read_json_input,
    require_config,
)
from simpletuner_cloud.sandbox.trainer_options import raw_arguments

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.runtime import Sandbox

_FILE_URL = re.compile(r"/v1/files/([a-z0-9]+)(?:/download)?/?$")


async def fetch_images(sandbox: Sandbox, url: str) -> bytes:
    """Sandbox file URLs are read from the store (Replicate resolves its own URLs internally);
    `data:` URIs are decoded; any other URL is downloaded."""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        return base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
    match = _FILE_URL.search(urlsplit(url).path)
    if url.startswith(sandbox.config.base_url) and match:
        stored = sandbox.files.get(match.group(1), sandbox.clock.now())
        if stored is None:
            raise TrainerFailed(f"Failed to download input images: {url}: 404 File not found")
        return await asyncio.to_thread(stored.path.read_bytes)
    try:
        async with httpx.AsyncClient(timeout=60, follow_redirects=True) as client:
            response = await client.get(url)
            response.raise_for_status()
            return response.content
    except httpx.HTTPError as exc:
        raise TrainerFailed(f"Failed to download input images: {url}: {exc}") from exc


def _loss(rng: random.Random, step: int, total: int) -> float:
    return 0.08 + 0.3 * math.exp(-3 * step / max(total, 1)) + rng.uniform(-0.02, 0.02)


@dataclass
class StagedData:
    samples: int
    images_mode: bool  # the trainer generated the dataset entry (and its VAE cache) from `images`
    text_cache: bool  # no text-embeds entry given, so the trainer adds one under the output folder


async def _stage_data(sandbox: Sandbox, job: Job, inputs: dict[str, Any], dataloader: Any) -> StagedData:
    """Step 5 of trainer-contract 2.1: `dataloader_json` is written out as-is (so only its local
    folders and `csv` entries can fail here), otherwise `images` is staged."""
    if dataloader is not None:
        entries = dataloader.get("datasets", []) if isinstance(dataloader, dict) else dataloader
        if not entries:
            raise TrainerFailed(NO_BACKENDS)
        enabled = [
            e for e in entries if isinstance(e, dict) and not e.get("disabled") and not e.get("disable")
        ]
        missing = [
            str(e.get("instance_data_dir"))
            for e in enabled
            if e.get("type", "local") == "local" and e.get("instance_data_dir")
        ]
        if missing:  # nothing of the user's disk exists inside the container
            raise TrainerFailed(f"The following dataset directories do not exist: {', '.join(missing)}")
        csv = [e for e in enabled if e.get("type") == "csv"]
        if csv:  # the CSV file it names is on the user's disk, never on the trainer's (2.7)
            raise TrainerFailed(_csv_missing(csv[0]))
        has_text_embeds = any(isinstance(e, dict) and e.get("dataset_type") == "text_embeds" for e in entries)
        return StagedData(10, images_mode=False, text_cache=not has_text_embeds)
    if not inputs.get("images"):
        raise TrainerFailed(NO_DATA)
    data = await fetch_images(sandbox, str(inputs["images"]))
    try:
        return StagedData(count_samples(data), images_mode=True, text_cache=True)
    except ArchiveRejected as exc:
        raise TrainerFailed(str(exc)) from exc


def _csv_missing(entry: dict[str, Any]) -> str:
    """The contract names the cause (no CSV file on the trainer's disk) but not the text; this one
    names the entry and the file it looked for."""
    where = entry.get("csv_file") or entry.get("csv_cache_dir") or entry.get("instance_data_dir") or "(none)"
    return f"Dataset `{entry.get('id', '?')}` (type csv): CSV file not found: {where}"


def _reject_arguments(sandbox: Sandbox, job: Job, plan: TrainingPlan, message: str) -> None:
    """The parser's failure as the trainer prints it: the raw argument list (S3 keys included, as
    the real trainer leaks them), argparse's message, the cog receiver's notification."""
    arguments = raw_arguments(plan.arguments)
    now = sandbox.clock.now()
    sandbox.log(
        job,
        tl.console_line(now, f"Could not parse input: {arguments!r}"),
        tl.console_line(now, f"argparse.ArgumentError: {message}"),
        tl.ARGUMENT_ERROR_NOTIFICATION,
        tl.console_line(now, f"Argument parsing failed for input: {arguments!r}"),
        tl.receiver_stopped(),
    )
    raise TrainerFailed(message)


def _fail_start(sandbox: Sandbox, job: Job, message: str) -> None:
    """A check after parsing or after the data backends are set up: the failed start's status line,
    the exception on the console, the receiver stopping."""
    sandbox.log(
        job,
        tl.training_status("training_failed"),
        tl.console_line(sandbox.clock.now(), message),
        tl.receiver_stopped(),
    )
    raise TrainerFailed(message)


async def run_trainer(sandbox: Sandbox, job: Job, inputs: dict[str, Any]) -> str:
    """The cog's order (trainer-contract 2.1): read the string inputs, publishing, merge the config,
    stage the data, then the trainer parses its arguments and starts."""
    pause = sandbox.config.step_seconds
    log = sandbox.log
    lycoris = read_json_input("lycoris_config", inputs.get("lycoris_config"))
    config = read_config(inputs)
    dataloader = read_json_input("dataloader_json", inputs.get("dataloader_json"))
    if inputs.get("hub_model_id") and not inputs.get("hf_token"):
        raise TrainerFailed(HUB_TOKEN_REQUIRED)
    job_name = f"cog-{uuid.uuid4().hex[:10]}"
    config = require_config(config)
    staged = await _stage_data(sandbox, job, inputs, dataloader)
    plan = plan_training(
        config,
        inputs,
        job_name,
        samples=staged.samples,
        images_mode=staged.images_mode,
        text_cache=staged.text_cache,
        known_extra=sandbox.config.extra_trainer_options,
        reject_unknown=sandbox.config.reject_unknown_config_keys,
        lycoris=lycoris,
    )
    rng = random.Random(job.id)
    log(job, tl.receiver_started(rng.randint(40000, 60000)))
    if plan.parse_error:
        _reject_arguments(sandbox, job, plan, plan.parse_error)
    if plan.startup_error:
        _fail_start(sandbox, job, plan.startup_error)
    folder = OutputFolder(
        sandbox.outputs_dir / job.id / plan.folder_name, plan.config, job_name, plan.total_steps
    )
    for label in ("Loading base model", "Configuring data backends", "Preparing model components"):
        log(job, tl.stage(tl.RUNNING, label))
        await asyncio.sleep(pause)
        log(job, tl.stage(tl.DONE, label))
    await asyncio.to_thread(folder.write_caches, staged.samples, vae=plan.images_mode, text=plan.text_cache)
    log(job, tl.stage(tl.DONE, "Text Embedding Caching in Progress", percent=100.0))
    log(job, tl.stage(tl.DONE, "VAE Caching (bucket 1.0)", percent=100.0))
    if plan.stop_error:  # the trainer sizes the run only once the data backends are set up
        _fail_start(sandbox, job, plan.stop_error)
    log(
        job,
        tl.running_training_block(
            batches=staged.samples,
            epochs=plan.epochs,
            total_steps=plan.total_steps,
            batch_size=plan.batch_size,
            accumulation=plan.accumulation,
        ),
    )
    run = _Run(sandbox, job, inputs, plan, folder, rng)
    await run.train()
    return await run.finish()


class _Run:
    """One simulated training run: the step loop with its checkpoints and validations, then the
    final save. Holds the debug.log lines that `return_logs` prints at the end."""

    def __init__(
        self,
        sandbox: Sandbox,
        job: Job,
        inputs: dict[str, Any],
        plan: TrainingPlan,
        folder: OutputFolder,
        rng: random.Random,
    ) -> None:
        self.sandbox, self.job, self.inputs, self.plan, self.folder, self.rng = (
            sandbox,
            job,
            inputs,
            plan,
            folder,
            rng,
        )
        self.debug: list[str] = []
        self.validated = False  # a validation run produced images (the Hub upload sends them)

    def log(self, *lines: str) -> None:
        self.sandbox.log(self.job, *lines)

    def note(self, message: str, level: str = "DEBUG") -> None:
        self.debug.append(tl.debug_line(self.sandbox.clock.now(), message, level=level))

    async def train(self) -> None:
        plan, job, config = self.plan, self.job, self.sandbox.config
        total, epochs = plan.total_steps, plan.epochs
        stride = max(1, math.ceil(total / max(config.max_simulated_steps, 1)))
        # A job's own script decides its fate; without one the global `fail_at_step` fault does.
        script = job.script
        stop_at = script.stop_step if script is not None else job.fail_at_step
        self.log(tl.progress_first(1, epochs, total))
        started, previous, step = asyncio.get_running_loop().time(), 0, 0
        while step < total:
            await asyncio.sleep(config.step_seconds)
            step = min(previous + stride, total)
            if stop_at is not None and previous < stop_at <= step:
                step = stop_at
            epoch = min(epochs, 1 + (step - 1) * epochs // total)
            loss = _loss(self.rng, step, total)
            elapsed = asyncio.get_running_loop().time() - started
            self.note(tl.step_summary(step, total, loss, plan.learning_rate, epoch, epochs))
            self.log(tl.progress(epoch, epochs, step, total, elapsed, loss, plan.learning_rate))
            if stop_at is not None and step >= stop_at:
                self._stop(step)
            if _crossed(plan.checkpoint_interval, previous, step):
                crossed = step // plan.checkpoint_interval * plan.checkpoint_interval
                await self._checkpoint(crossed, loss, epoch)
            if _crossed(plan.validation_interval, previous, step):
                await self._validate(step // plan.validation_interval * plan.validation_interval)
            previous = step

    def _stop(self, step: int) -> None:
        script = self.job.script
        if script is not None and script.outcome == "cancel":
            raise RunCanceled
        if script is not None:
            error, lines = script.failure(step, self.plan.total_steps)
        else:
            total = self.plan.total_steps
            error = f"RuntimeError: simulated trainer failure at step {step} of {total} (sandbox fault)"
            lines = [f"[ERROR] Training failed: {error}"]
        self.log(*lines, tl.stage(tl.FAILED, "Training Aborted"))
        raise TrainerFailed(error)

    async def _checkpoint(self, step: int, loss: float, epoch: int) -> None:
        plan = self.plan
        text = tl.step_summary(step, plan.total_steps, loss, plan.learning_rate, epoch, plan.epochs)
        saved = await asyncio.to_thread(self.folder.save_checkpoint, step, plan.checkpoints_total_limit)
        self.log(*tl.checkpoint_lines(text, plan.output_dir, step))
        if plan.hub_model_id:  # push_checkpoints_to_hub is forced on with hub_model_id
            self._record_hub_push("checkpoint", saved, step)

    async def _validate(self, step: int) -> None:
        """A validation run, then (only then) the S3 upload of the whole output folder."""
        self.log(tl.stage(tl.RUNNING, "Running Validation"))
        await asyncio.to_thread(self.folder.write_validation_image, step, self.plan.validation_resolution)
        self.log(tl.stage(tl.DONE, "Running Validation"))
        self.validated = True
        if not self.plan.publish_s3:
            return
        files = await asyncio.to_thread(self.folder.files)
        try:
            keys = await asyncio.to_thread(upload_to_s3, self.inputs, self.plan.folder_name, files)
        except Exception as exc:  # boto3 raises many types; the real trainer fails with the text
            raise TrainerFailed(f"{type(exc).__name__}: {exc}"[:512]) from exc
        self.note(
            f"Published {len(keys)} files to {s3_output_url(self.inputs)} after validation at step {step}",
            "INFO",
        )

    def _record_hub_push(self, kind: str, files: list[str], step: int | None) -> None:
        self.sandbox.hub_pushes.append(
            {
                "repo_id": normalise_hub_id(str(self.plan.hub_model_id)),
                "job_id": self.job.id,
                "run": self.plan.job_name,
                "kind": kind,
                "step": step,
                "files": files,
            }
        )

    async def finish(self) -> str:
        plan, inputs = self.plan, self.inputs
        self.log(tl.stage(tl.RUNNING, "Saving Final Model"))
        final = await asyncio.to_thread(self.folder.save_final)
        self.sandbox.output_files[self.job.id] = final[0][1]
        self.log(tl.stage(tl.DONE, "Saving Final Model"))
        result = f"Training complete. Output: {plan.cog_output_dir}"
        final_line = result
        if plan.hub_model_id:
            repo = normalise_hub_id(plan.hub_model_id)
            if self.validated:  # the validation images go up with the model card first (1.3)
                self.log(tl.training_status("uploading_validation_samples"))
            self.log(tl.training_status("uploading_model"))
            self._record_hub_push("final", [key for key, _ in final], None)
            self.log(tl.training_status("model_available"))
            result = f"https://huggingface.co/{repo}"
            final_line = f"Model published to: {result}"
            self.note(f"Pushed {len(final)} files to {repo}", "INFO")
        if plan.publish_s3:  # the final save itself is never published (trainer-contract 2.4)
            result = s3_output_url(inputs)
            final_line = f"Checkpoints published to: {result}"
        self.log(tl.training_complete(), tl.receiver_stopped())
        if inputs.get("return_logs", True):
            self.log(*tl.debug_tail(self.debug, final_line))
        return result


def _crossed(interval: int, previous: int, step: int) -> bool:
    """A multiple of `interval` was reached in this tick (a tick may cover several steps; only the
    latest multiple counts, as docs/sandbox.md says)."""
    return interval > 0 and step // interval > previous // interval
