"""`GET /api/cloud/events`: Server-Sent Events for job status, progress, log lines and upload
progress, resumable with `Last-Event-ID` (or `?after=<event id>`); `?job=` follows one job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from simpletuner_cloud.api.deps import DatabaseDep
from simpletuner_cloud.services.job_events import MAX_EVENT_ID, job_events, start_position

router = APIRouter(tags=["jobs"])


@router.get("/events", response_class=EventSourceResponse)
async def events(
    request: Request,
    database: DatabaseDep,
    job: Annotated[str | None, Query(max_length=64)] = None,
    once: Annotated[bool, Query(description="Send what is there and close (for scripts).")] = False,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_EVENT_ID,
            description="Resume after this event id (a new EventSource cannot send the header).",
        ),
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> EventSourceResponse:
    resume = last_event_id if last_event_id is not None else (str(after) if after is not None else None)
    after = await start_position(database, job, resume)
    stream = job_events(database, request.app.state.event_bus, job_id=job, after=after, once=once)
    return EventSourceResponse(stream, ping=15)
