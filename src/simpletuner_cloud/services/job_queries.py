"""Reading jobs: the list (filters, newest first, cursor pages, a real total), one job with its
timeline, its logs (kept here in full: Replicate drops them an hour after the end) and its metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from simpletuner_cloud.domain.jobs import JobStatus
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.hardware_catalogue import find_profile, load_hardware_catalogue
from simpletuner_cloud.services.job_views import (
    JobListView,
    JobView,
    LogsView,
    MetricsView,
    job_view,
    metric_view,
)
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.tables import is_minted_id

MAX_PAGE = 200
MAX_TIMELINE = 500
TAIL_WINDOW = 200_000  # characters read from the end first for `?tail=`; grown until the lines fit


async def list_jobs(
    session: AsyncSession,
    settings: Settings,
    *,
    status: list[JobStatus] | None = None,
    hardware: str | None = None,
    text: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JobListView:
    limit = max(1, min(limit, MAX_PAGE))
    if cursor is not None and not is_minted_id(cursor, "job"):
        # The cursor is the last job id of a page; anything else would silently page from nowhere.
        raise CloudError(
            "The cursor is not one this API gave out.",
            code="cursor_invalid",
            hint="Pass the `next_cursor` of the previous page as it is, or leave `cursor` out to start "
            "from the newest job.",
            details={"fields": [{"field": "cursor", "message": "not a `next_cursor` of this API"}]},
        )
    now = datetime.now(UTC)
    catalogue = load_hardware_catalogue(settings)
    if hardware is not None:  # as submit reads it (`L40S` is l40s), and a name it refuses is said
        hardware = find_profile(catalogue, hardware).id
    rows = await repo.list_jobs(
        session, status=status, hardware=hardware, text=text, limit=limit + 1, before=cursor
    )
    total = await repo.count_jobs(session, status=status, hardware=hardware, text=text)
    page = rows[:limit]
    return JobListView(
        jobs=[job_view(job, catalogue, now) for job in page],
        total=total,
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


async def get_job(session: AsyncSession, settings: Settings, job_id: str) -> JobView:
    job = await repo.require_job(session, job_id)
    # Log chunks and byte progress are not the timeline; leaving them out in SQL keeps a job with a
    # huge log as quick to show as any other.
    events = await repo.list_events(session, job_id, exclude_kinds=("logs", "upload_progress"))
    return job_view(job, load_hardware_catalogue(settings), datetime.now(UTC), events[-MAX_TIMELINE:])


async def get_logs(
    session: AsyncSession, job_id: str, *, tail: int | None = None, after: int | None = None
) -> LogsView:
    """The log from `after` on, or its last `tail` whole lines. The offsets come from the text read,
    never from the job's `logs_offset` alone: the two reads are not one snapshot (a chunk may land
    between them), and a window's start taken from an older size would make the page hold the new
    chunk and then add it again when its event comes."""
    job = await repo.require_job(session, job_id)
    size = job.logs_offset
    if tail is not None and after is not None:
        raise CloudError(
            "Use either tail or after, not both.", code="validation_error", hint="?tail=100 or ?after=2048"
        )
    if tail is not None:
        # Read back from the end, a window at a time, until it holds `tail` whole lines (or all of it).
        window = TAIL_WINDOW
        while True:
            begin = max(0, size - window)
            text = await repo.read_logs(session, job_id, after=begin)
            lines = text.splitlines(keepends=True)
            if begin == 0 or len(lines) > tail:
                break
            window *= 4
        end = begin + len(text)  # the chunks are contiguous: what was read ends here
        text = "".join(lines[-tail:]) if tail > 0 else ""
        start = end - len(text)
    else:
        start = max(0, min(after or 0, size))
        text = await repo.read_logs(session, job_id, after=start)
    size = max(size, start + len(text))
    return LogsView(job_id=job_id, offset=start, next_offset=start + len(text), size=size, text=text)


async def get_metrics(session: AsyncSession, job_id: str) -> MetricsView:
    await repo.require_job(session, job_id)
    return MetricsView(
        job_id=job_id, points=[metric_view(row) for row in await repo.list_metrics(session, job_id)]
    )
