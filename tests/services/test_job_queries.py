"""Reading a job: `?tail=N` returns N whole lines however long they are, its offsets are those of the
text it returns even when a chunk lands while it reads, and the timeline leaves log chunks and byte
progress out."""

from __future__ import annotations

from typing import Any

import pytest

from simpletuner_cloud.services import job_queries
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import jobs as repo


async def test_tail_returns_whole_lines_past_the_first_window(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_queries, "TAIL_WINDOW", 1_000)  # so the test's log needs several windows
    lines = [f"line {n:05d} " + "x" * 90 + "\n" for n in range(300)]  # ~100 characters each
    async with db.session() as session:
        job, _ = await repo.create_job(session, config_name="c", hardware="l40s", model="m/m")
        await repo.append_logs(session, job.id, "".join(lines[:150]))
        await repo.append_logs(session, job.id, "".join(lines))
        await repo.add_event(session, job.id, "upload_progress", data={"bytes_done": 1})
        await session.commit()
    async with db.session() as session:
        tail = await job_queries.get_logs(session, job.id, tail=120)
        everything = await job_queries.get_logs(session, job.id, tail=10_000)
        shown = await job_queries.get_job(session, load_settings(), job.id)
    assert tail.text == "".join(lines[-120:]) and tail.next_offset == tail.size
    assert everything.text == "".join(lines) and everything.offset == 0
    assert [e.kind for e in shown.timeline or []] == ["status"]  # no log chunks, no byte progress


@pytest.mark.parametrize("read", [{"tail": 5000}, {"after": 0}, {"after": 6}])
async def test_a_chunk_landing_between_the_two_reads_is_counted_where_it_is(
    db: Database, monkeypatch: pytest.MonkeyPatch, read: dict[str, int]
) -> None:
    """The job row and the chunks are separate reads (not one snapshot on either database): a chunk
    committed between them is in the text, and the offsets say where, so the page that holds it
    never adds it again when its `log` event comes (it did: a line shown twice)."""
    async with db.session() as session:
        job, _ = await repo.create_job(session, config_name="c", hardware="l40s", model="m/m")
        await repo.append_logs(session, job.id, "first\n")
        await session.commit()
    original = repo.read_logs

    async def read_after_a_writer(session: Any, job_id: str, after: int = 0) -> str:
        async with db.session() as writer:  # another writer's chunk commits in between
            await repo.append_logs(writer, job_id, "first\nsecond\n")
            await writer.commit()
        return await original(session, job_id, after=after)

    monkeypatch.setattr(repo, "read_logs", read_after_a_writer)
    async with db.session() as session:
        view = await job_queries.get_logs(session, job.id, **read)
    whole = "first\nsecond\n"
    assert view.next_offset == len(whole) == view.size
    assert whole[view.offset : view.next_offset] == view.text
