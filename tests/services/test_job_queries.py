"""Reading a job: `?tail=N` returns N whole lines however long they are, and the timeline leaves log
chunks and byte progress out."""

from __future__ import annotations

from typing import Any

import pytest

from simpletuner_cloud.services import job_queries
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import jobs as repo


@pytest.fixture
async def db(tmp_path: Any) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await database.migrate()
    yield database
    await database.dispose()


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
