"""Upload task state and its event stream: progress, one final event, late listeners, coalescing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services import upload_tasks
from simpletuner_cloud.services.upload_tasks import UploadTasks

RESULT = {"upload_id": "upl_x", "size": 300, "reused": False}


async def collect(tasks: UploadTasks, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e["event"], json.loads(e["data"])) async for e in tasks.get(task_id).events()]


async def test_a_listener_sees_progress_then_one_final_event() -> None:
    tasks = UploadTasks()
    task = tasks.create("env", 300, 4)
    listener = asyncio.create_task(collect(tasks, task.id))
    await asyncio.sleep(0)  # the listener has sent the first state and waits
    task.progress("packaging", 300, 300)
    await asyncio.sleep(0)
    task.progress("uploading", 100, 300)
    await asyncio.sleep(0)
    task.succeed(RESULT)
    events = await listener
    assert [(name, e["state"], e["bytes_done"]) for name, e in events] == [
        ("progress", "packaging", 0),
        ("progress", "packaging", 300),
        ("progress", "uploading", 100),
        ("succeeded", "succeeded", 300),
    ]
    assert events[-1][1]["result"] == RESULT and events[-1][1]["error"] is None


async def test_a_late_listener_gets_the_final_state_only() -> None:
    tasks = UploadTasks()
    task = tasks.create(None, 300, 4)
    task.progress("uploading", 100, 300)
    task.fail({"code": "provider_unavailable", "message": "down", "hint": "retry"})
    task.progress("packaging", 300, 300)  # a late callback from the packaging thread changes nothing
    assert await collect(tasks, task.id) == [("failed", task.snapshot())]
    assert task.snapshot()["error"] == {"code": "provider_unavailable", "message": "down", "hint": "retry"}


async def test_a_slow_listener_gets_the_latest_state_not_a_backlog() -> None:
    tasks = UploadTasks()
    task = tasks.create("env", 10_000, 1)
    stream = task.events()
    assert json.loads((await anext(stream))["data"])["bytes_done"] == 0
    for done in range(0, 10_001, 100):
        task.progress("uploading", done, 10_000)
    latest = json.loads((await anext(stream))["data"])
    assert (latest["state"], latest["bytes_done"]) == ("uploading", 10_000)
    await stream.aclose()


async def test_background_work_is_kept_until_it_finishes() -> None:
    tasks = UploadTasks()
    task = tasks.create("env", 1, 1)

    async def work() -> None:
        await asyncio.sleep(0)
        task.succeed({"size": 1})

    tasks.run(task, work())
    await tasks.wait()
    assert task.state == "succeeded"


def test_an_unknown_upload_is_upload_not_found() -> None:
    with pytest.raises(CloudError) as caught:
        UploadTasks().get("dsu_nope")
    assert (caught.value.code, caught.value.status) == ("upload_not_found", 404)


def test_old_finished_tasks_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload_tasks, "KEEP_FINISHED", 2)
    tasks = UploadTasks()
    finished = []
    for _ in range(3):
        task = tasks.create("env", 1, 1)
        task.succeed({"size": 1})
        finished.append(task.id)
    running = tasks.create("env", 1, 1)
    with pytest.raises(CloudError):
        tasks.get(finished[0])
    assert [tasks.get(task_id).finished for task_id in finished[1:]] == [True, True]
    assert tasks.get(running.id) is running


STOPPING = {"code": "server_stopping", "message": "stopped", "hint": "run the upload again"}


async def test_stop_waits_for_an_upload_that_finishes_in_time() -> None:
    tasks = UploadTasks()
    task = tasks.create("env", 1, 1)
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        task.succeed({"size": 1})

    tasks.run(task, work())
    stopping = asyncio.create_task(tasks.stop(3600, STOPPING))
    await asyncio.sleep(0)
    assert not stopping.done()  # still waiting for the upload
    release.set()
    assert await stopping == []
    assert (task.state, task.error) == ("succeeded", None)


async def test_stop_cancels_a_hanging_upload_and_fails_it() -> None:
    tasks = UploadTasks()
    task, done = tasks.create("env", 1, 1), tasks.create("env", 1, 1)
    done.succeed({"size": 1})
    cleaned: list[str] = []

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(task.id)

    tasks.run(task, hang())
    listener = asyncio.create_task(collect(tasks, task.id))
    await asyncio.sleep(0)
    assert await tasks.stop(0, STOPPING) == [task.id]
    assert cleaned == [task.id]  # cancelled, and its clean-up ran within the grace period
    assert (task.state, task.error, done.state) == ("failed", STOPPING, "succeeded")
    assert [name for name, _ in await listener] == ["progress", "failed"]
    await tasks.wait()  # nothing is left running


async def test_stop_with_nothing_running_returns_at_once() -> None:
    assert await UploadTasks().stop(3600, STOPPING) == []


def test_the_first_final_state_stays() -> None:
    task = UploadTasks().create("env", 1, 1)
    task.fail(STOPPING)
    task.succeed({"size": 1})  # a success that lands after the server gave up on the upload
    task.fail({"code": "internal_error", "message": "x", "hint": "y"})
    assert (task.state, task.error, task.result) == ("failed", STOPPING, None)


# Mirrored to the database: another server answers for an upload and streams its progress.


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def two_servers(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    from simpletuner_cloud.store import Database
    from tests.store.conftest import drop_schema, postgres_url, unique_schema

    if request.param == "sqlite":
        url, schema = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", None
    else:
        url, schema = postgres_url(), unique_schema()
    first, second = Database(url, schema=schema), Database(url, schema=schema)
    await first.migrate()
    yield UploadTasks(first, holder="server-a"), UploadTasks(second, holder="server-b")
    if schema is not None:
        await drop_schema(first)
    await first.dispose()
    await second.dispose()


async def test_another_server_answers_for_an_upload_and_streams_it(two_servers: Any) -> None:
    here, there = two_servers
    task = here.create("env", 300, 4, warnings=["merged"])
    task.progress("uploading", 100, 300)
    await here.flush()
    remote = await there.find(task.id)
    assert remote.snapshot() == task.snapshot()
    stream = remote.events()
    first = await anext(stream)
    assert (first["event"], json.loads(first["data"])["bytes_done"]) == ("progress", 100)
    task.succeed(RESULT)
    await here.flush()
    last = await anext(stream)
    assert (last["event"], json.loads(last["data"])) == ("succeeded", task.snapshot())
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    with pytest.raises(CloudError):
        await there.find("dsu_nope")


async def test_an_upload_whose_server_went_silent_reads_as_stopped(
    two_servers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = two_servers
    task = here.create("env", 300, 4)
    await here.flush()
    monkeypatch.setattr(upload_tasks, "STALE_AFTER", -1.0)  # its heartbeat is already too old
    remote = await there.find(task.id)
    snapshot = remote.snapshot()
    assert snapshot["state"] == "failed" and snapshot["error"]["code"] == "server_stopping"


@pytest.mark.parametrize("same_server", [False, True])
async def test_one_upload_per_archive_across_servers(two_servers: Any, same_server: bool) -> None:
    here, there = two_servers
    if same_server:  # two uploads of one server hold the lock one after the other too
        there = here
    order: list[str] = []

    async def upload(tasks: UploadTasks, name: str) -> None:
        async with tasks.lock("a" * 64):
            order.append(f"{name} start")
            await asyncio.sleep(0.3)
            order.append(f"{name} end")

    await asyncio.gather(upload(here, "a"), upload(there, "b"))
    assert order in (["a start", "a end", "b start", "b end"], ["b start", "b end", "a start", "a end"])
