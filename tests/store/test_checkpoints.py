"""SQLite's WAL checkpoints off the request path (`store/checkpoints.py`): a server's connections
leave the log to the checkpointer, which copies it back without blocking a writer, starts it over
past its limit, and leaves it empty at stop; other processes keep SQLite's automatic checkpoint."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from pathlib import Path

from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.checkpoints import Checkpointer
from simpletuner_cloud.store.database import Database


def wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


async def write_rows(database: Database, count: int) -> None:
    async with database.engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, text TEXT)")
        for _ in range(count):
            await conn.exec_driver_sql("INSERT INTO filler (text) VALUES (?)", ("x" * 4000,))


async def autocheckpoint(database: Database) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar_one())


async def test_a_server_database_leaves_checkpoints_to_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    database = Database(f"sqlite:///{path}", background_checkpoints=True)
    try:
        await database.migrate()
        assert await autocheckpoint(database) == 0  # no commit stops to copy the log back
        await write_rows(database, 1_200)  # a page each: past the 1,000 pages SQLite would stop at
        assert wal(path).stat().st_size > 1_000 * 4096
        checkpointer = database.checkpointer
        assert checkpointer is not None
        busy, frames, done = checkpointer.checkpoint()
        assert (busy, done) == (0, frames) and frames > 1_000
        await write_rows(database, 10)
        size_before_stop = wal(path).stat().st_size
    finally:
        await database.dispose()
    assert database.checkpointer is not None
    await database.checkpointer.stop()
    assert size_before_stop > 0
    assert not wal(path).exists() or wal(path).stat().st_size == 0  # all of it in the database file
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM filler").fetchone()[0] == 1_210


async def test_other_processes_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        await database.migrate()
        assert database.checkpointer is None
        assert await autocheckpoint(database) == 1000
    finally:
        await database.dispose()


async def test_a_checkpoint_does_not_wait_for_a_writer_in_its_transaction(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    database = Database(f"sqlite:///{path}", background_checkpoints=True)
    checkpointer = Checkpointer(path)
    try:
        await database.migrate()
        await write_rows(database, 50)
        async with database.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")  # holds the write lock
            await conn.exec_driver_sql("INSERT INTO filler (text) VALUES ('held')")
            busy, frames, done = checkpointer.checkpoint()  # PASSIVE: at once, the committed part
            assert busy == 0 and 0 < done <= frames
            await conn.rollback()
    finally:
        await checkpointer.stop()
        await database.dispose()


async def test_a_log_past_its_limit_is_started_over(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    database = Database(f"sqlite:///{path}", background_checkpoints=True)
    checkpointer = Checkpointer(path, limit=64 * 1024)
    try:
        await database.migrate()
        await write_rows(database, 100)
        checkpointer.checkpoint()  # PASSIVE, then RESTART: the next write goes to the log's start
        await write_rows(database, 1)
        assert wal(path).stat().st_size > 64 * 1024  # the file keeps its size...
        connection = sqlite3.connect(path)
        try:
            frames = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        finally:
            connection.close()
        assert frames < 10  # ...but holds only the last write
    finally:
        await checkpointer.stop()
        await database.dispose()


async def test_the_server_runs_the_checkpointer_and_freezes_what_start_up_built(
    state_root: Path,
) -> None:
    app: FastAPI = create_app(load_settings())
    database: Database = app.state.database
    assert database.checkpointer is not None
    async with app.router.lifespan_context(app):
        assert database.checkpointer._task is not None and not database.checkpointer._task.done()
        assert gc.get_freeze_count() > 10_000  # out of the collector's full passes
    assert database.checkpointer._task is None
    assert gc.get_freeze_count() == 0  # given back at stop


class SlowCheckpointer(Checkpointer):
    """Each checkpoint takes 0.3 s in its thread; counts how many ran at once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, interval=0.01)
        self.running = 0
        self.most = 0
        self.started = threading.Event()
        self._count = threading.Lock()

    def _checkpoint(self, mode: str) -> tuple[int, int, int]:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.set()
        try:
            time.sleep(0.3)
            return super()._checkpoint(mode)
        finally:
            with self._count:
                self.running -= 1


async def test_a_stop_during_a_checkpoint_waits_for_it_and_never_runs_beside_it(tmp_path: Path) -> None:
    """Canceling the task leaves a checkpoint already in its thread running: the last checkpoint and
    the close wait for it (the close under a running checkpoint crashed a test worker)."""
    path = tmp_path / "jobs.db"
    database = Database(f"sqlite+aiosqlite:///{path}", background_checkpoints=True)
    await write_rows(database, 10)
    checkpointer = SlowCheckpointer(path)
    checkpointer.start()
    await asyncio.to_thread(checkpointer.started.wait, 10)
    await checkpointer.stop()
    assert checkpointer.most == 1 and checkpointer.running == 0
    assert checkpointer._connection is None and checkpointer.checkpoints >= 2
    assert not wal(path).exists() or wal(path).stat().st_size == 0
    await database.dispose()
