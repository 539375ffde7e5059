"""Retention like Replicate's: once a finished job is older than the retention period its input,
output, logs and output files are removed (`data_removed: true`); uploaded files expire too."""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.runtime import Sandbox


def sweep(sandbox: Sandbox) -> int:
    """One pass; returns how many jobs lost their data."""
    now = sandbox.clock.now()
    cutoff = now - sandbox.config.retention_seconds
    removed = 0
    for job in sandbox.jobs.values():
        if job.terminal and not job.data_removed and job.created_at <= cutoff:
            job.data_removed = True
            job.output = None
            job.logs = ""
            job.input = {}
            sandbox.output_files.pop(job.id, None)
            shutil.rmtree(sandbox.outputs_dir / job.id, ignore_errors=True)
            removed += 1
    sandbox.files.expire(now)
    return removed


async def sweep_forever(sandbox: Sandbox) -> None:
    while True:
        await asyncio.sleep(sandbox.config.retention_sweep_seconds)
        sweep(sandbox)
