"""The simulated `simpletuner/advanced-trainer`: stages the dataset, "trains" with the real
trainer's log lines, writes placeholder outputs and publishes them like the real one (S3 with
boto3, or a recorded Hub push). Returns the output string; raises `TrainerFailed` otherwise."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from simpletuner_cloud.sandbox import trainer_logs as tl
from simpletuner_cloud.sandbox.dataset_archive import ArchiveRejected, count_samples
from simpletuner_cloud.sandbox.jobs import Job
from simpletuner_cloud.sandbox.outputs import normalise_hub_id, s3_output_url, upload_to_s3, write_outputs
from simpletuner_cloud.sandbox.trainer_inputs import (
    HUB_TOKEN_REQUIRED,
    NO_BACKENDS,
    NO_DATA,
    TrainerFailed,
    TrainingPlan,
    plan_training,
    read_json_input,
)

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


async def _stage_data(sandbox: Sandbox, job: Job, inputs: dict[str, Any]) -> int:
    dataloader = read_json_input("dataloader_json", inputs.get("dataloader_json"))
    if dataloader is not None:
        entries = dataloader.get("datasets", []) if isinstance(dataloader, dict) else dataloader
        if not entries:
            raise TrainerFailed(NO_BACKENDS)
        missing = [
            str(e.get("instance_data_dir"))
            for e in entries
            if isinstance(e, dict)
            and e.get("type", "local") == "local"
            and e.get("instance_data_dir")
            and not e.get("disabled")
            and not e.get("disable")
        ]
        if missing:  # nothing of the user's disk exists inside the container
            raise TrainerFailed(f"The following dataset directories do not exist: {', '.join(missing)}")
        return 10
    if not inputs.get("images"):
        raise TrainerFailed(NO_DATA)
    data = await fetch_images(sandbox, str(inputs["images"]))
    try:
        return count_samples(data)
    except ArchiveRejected as exc:
        raise TrainerFailed(str(exc)) from exc


async def run_trainer(sandbox: Sandbox, job: Job, inputs: dict[str, Any]) -> str:
    pause = sandbox.config.step_seconds
    log = sandbox.log
    if inputs.get("hub_model_id") and not inputs.get("hf_token"):
        raise TrainerFailed(HUB_TOKEN_REQUIRED)
    job_name = f"cog-{uuid.uuid4().hex[:10]}"
    samples = await _stage_data(sandbox, job, inputs)
    plan = plan_training(inputs, job_name, default_steps=sandbox.config.default_total_steps, samples=samples)
    rng = random.Random(job.id)
    log(job, tl.receiver_started(rng.randint(40000, 60000)))
    for label in ("Loading base model", "Configuring data backends", "Preparing model components"):
        log(job, tl.stage(tl.RUNNING, label))
        await asyncio.sleep(pause)
        log(job, tl.stage(tl.DONE, label))
    log(job, tl.stage(tl.DONE, "Text Embedding Caching in Progress", percent=100.0))
    log(job, tl.stage(tl.DONE, "VAE Caching (bucket 1.0)", percent=100.0))
    log(
        job,
        tl.running_training_block(
            batches=samples,
            epochs=plan.epochs,
            total_steps=plan.total_steps,
            batch_size=plan.batch_size,
            accumulation=plan.accumulation,
        ),
    )
    debug = await _train(sandbox, job, plan, rng)
    return await _finish(sandbox, job, inputs, plan, debug)


async def _train(sandbox: Sandbox, job: Job, plan: TrainingPlan, rng: random.Random) -> list[str]:
    total, epochs, log = plan.total_steps, plan.epochs, sandbox.log
    stride = max(1, math.ceil(total / max(sandbox.config.max_simulated_steps, 1)))
    log(job, tl.progress_first(1, epochs, total))
    debug: list[str] = []
    started, previous, step = asyncio.get_running_loop().time(), 0, 0
    while step < total:
        await asyncio.sleep(sandbox.config.step_seconds)
        step = min(previous + stride, total)
        if job.fail_at_step is not None and previous < job.fail_at_step <= step:
            step = job.fail_at_step
        epoch = min(epochs, 1 + (step - 1) * epochs // total)
        loss = _loss(rng, step, total)
        elapsed = asyncio.get_running_loop().time() - started
        summary = tl.step_summary(step, total, loss, plan.learning_rate, epoch, epochs)
        debug.append(tl.debug_line(sandbox.clock.now(), summary))
        log(job, tl.progress(epoch, epochs, step, total, elapsed, loss, plan.learning_rate))
        if job.fail_at_step is not None and step >= job.fail_at_step:
            error = f"RuntimeError: simulated trainer failure at step {step} of {total} (sandbox fault)"
            log(job, f"[ERROR] Training failed: {error}", tl.stage(tl.FAILED, "Training Aborted"))
            raise TrainerFailed(error)
        for interval, kind in (
            (plan.checkpoint_interval, "checkpoint"),
            (plan.validation_interval, "validation"),
        ):
            if interval > 0 and step // interval > previous // interval:
                crossed = step // interval * interval  # the latest multiple reached in this tick
                if kind == "checkpoint":
                    text = tl.step_summary(crossed, total, loss, plan.learning_rate, epoch, epochs)
                    log(job, *tl.checkpoint_lines(text, plan.output_dir, crossed))
                else:
                    log(
                        job,
                        tl.stage(tl.RUNNING, "Running Validation"),
                        tl.stage(tl.DONE, "Running Validation"),
                    )
        previous = step
    return debug


async def _finish(
    sandbox: Sandbox, job: Job, inputs: dict[str, Any], plan: TrainingPlan, debug: list[str]
) -> str:
    log = sandbox.log
    log(job, tl.stage(tl.RUNNING, "Saving Final Model"))
    job_dir = sandbox.outputs_dir / job.id / plan.job_name
    files = await asyncio.to_thread(write_outputs, job_dir, plan.config, plan.job_name, plan.total_steps)
    sandbox.output_files[job.id] = job_dir / files[0][0]
    log(job, tl.stage(tl.DONE, "Saving Final Model"))
    result = f"Training complete. Output: {plan.cog_output_dir}"
    final_line = result
    if plan.hub_model_id:
        repo = normalise_hub_id(plan.hub_model_id)
        log(job, tl.training_status("uploading_model"))
        sandbox.hub_pushes.append(
            {"repo_id": repo, "job_id": job.id, "run": plan.job_name, "files": [k for k, _ in files]}
        )
        log(job, tl.training_status("model_available"))
        result = f"https://huggingface.co/{repo}"
        final_line = f"Model published to: {result}"
        debug.append(tl.debug_line(sandbox.clock.now(), f"Pushed {len(files)} files to {repo}", level="INFO"))
    if plan.publish_s3:
        try:
            keys = await asyncio.to_thread(upload_to_s3, inputs, plan.job_name, files)
        except Exception as exc:  # boto3 raises many types; the real trainer fails with the text
            raise TrainerFailed(f"{type(exc).__name__}: {exc}"[:512]) from exc
        result = s3_output_url(inputs)
        final_line = f"Checkpoints published to: {result}"
        debug.append(
            tl.debug_line(sandbox.clock.now(), f"Uploaded {len(keys)} files to {result}", level="INFO")
        )
    log(job, tl.training_complete(), tl.receiver_stopped())
    if inputs.get("return_logs", True):
        log(job, *tl.debug_tail(debug, final_line))
    return result
