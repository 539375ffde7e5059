"""The database handle: one async engine, a session factory, and migrations at start-up.

SQLite (WAL) is the single-user default; PostgreSQL serves teams running several replicas. Both run
the same Alembic revisions, applied programmatically (no alembic.ini at runtime). SQLite's files hold
settings and job rows, so they are 0600 in a 0700 folder, whatever the umask."""

from __future__ import annotations

import functools
import re
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from simpletuner_cloud.security.files import create_private_file, make_private_dir, tighten_sqlite_files
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.store.checkpoints import Checkpointer

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 10_000
# One lock for every process migrating this PostgreSQL database (pg_advisory_xact_lock takes a bigint).
_MIGRATION_LOCK_KEY = zlib.crc32(b"simpletuner_cloud.store.migrate")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def normalize_url(url: str | URL) -> URL:
    """Pick the async driver: any PostgreSQL URL goes to asyncpg, any SQLite URL to aiosqlite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}")


class Database:
    def __init__(self, url: str, *, schema: str | None = None, background_checkpoints: bool = False) -> None:
        self.url: URL = normalize_url(url)
        self.dialect: str = self.url.get_backend_name()
        if schema is not None and (self.dialect != "postgresql" or not _SCHEMA_NAME.match(schema)):
            raise ValueError(f"schema {schema!r}: only for PostgreSQL, lowercase letters, digits and _")
        self.schema = schema
        connect_args: dict[str, Any] = {}
        if schema is not None:
            connect_args["server_settings"] = {"search_path": schema}
        self.engine: AsyncEngine = create_async_engine(self.url, connect_args=connect_args)
        if self.dialect == "sqlite":
            path = self.sqlite_path
            if path is not None:
                event.listen(self.engine.sync_engine, "do_connect", functools.partial(_before_connect, path))
            event.listen(
                self.engine.sync_engine,
                "connect",
                functools.partial(_configure_sqlite, path, background_checkpoints and path is not None),
            )
        # A server's SQLite file is checkpointed by a thread of its own (`store/checkpoints.py`).
        self.checkpointer: Checkpointer | None = None
        if background_checkpoints and self.dialect == "sqlite" and self.sqlite_path is not None:
            self.checkpointer = Checkpointer(self.sqlite_path)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The configured database: `SIMPLETUNER_DATABASE_URL`, else SQLite under the state root."""
        return cls(settings.effective_database_url)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r}, schema={self.schema!r})"

    def session(self) -> AsyncSession:
        """A new session; use as `async with db.session() as session:` and commit explicitly."""
        return self._sessions()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision. Idempotent; concurrent starts are serialised."""
        if self.dialect == "sqlite":
            self._make_sqlite_folder()
            async with self.engine.connect() as conn:
                # Takes the write lock now, so a second process waits (busy timeout) and then
                # finds the schema current; also makes the DDL one transaction.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                await conn.run_sync(_upgrade)
                await conn.commit()
        else:
            async with self.engine.begin() as conn:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                if self.schema is not None:
                    await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.run_sync(_upgrade)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a file-backed SQLite URL (None for memory and `file:` URIs)."""
        database = self.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).expanduser()

    def _make_sqlite_folder(self) -> None:
        if self.sqlite_path is not None:
            make_private_dir(self.sqlite_path.parent)


async def transaction_lock(session: AsyncSession, name: str) -> None:
    """Until this transaction ends, no other transaction takes the lock `name`, on any server:
    PostgreSQL's advisory lock on its hash; SQLite's one write lock (any write takes it, so other
    writers wait for the commit). Take it before reading what the transaction decides on (SQLite
    would refuse to upgrade a read snapshot taken before)."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(name.encode())})
    else:
        await session.execute(text("UPDATE upload_locks SET holder = holder WHERE 1 = 0"))


def dialect_insert(session: AsyncSession, entity: Any) -> Any:
    """An INSERT with the backend's `on_conflict_do_nothing/_do_update` (both dialects spell it alike)."""
    bind = session.bind
    assert bind is not None, "sessions come from Database.session()"
    if bind.dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _before_connect(path: Path, *_args: Any) -> None:
    """Before SQLite opens the file: create it 0600 ourselves (SQLite would use 0644 minus the umask),
    so the WAL and shared-memory files SQLite makes later copy that mode. Only in a folder that exists:
    an unreachable path must still fail to connect, not be created here."""
    if path.parent.is_dir():
        create_private_file(path)


def _configure_sqlite(
    path: Path | None, checkpoint_elsewhere: bool, dbapi_connection: Any, _record: Any
) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # The busy timeout first: switching to WAL needs a lock another starting process may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if checkpoint_elsewhere:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()
    if path is not None:  # the WAL switch created -wal and -shm: check what they got
        tighten_sqlite_files(path)


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, waiting out a concurrent switch. While another connection switches a
    new database to WAL, SQLite answers SQLITE_BUSY at once, without the busy timeout (the statement
    holds a read lock, so waiting could deadlock). Retry with short pauses, up to the busy timeout;
    once the other switch is done the pragma finds WAL set. Only concurrent first starts get here."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # any extended BUSY code
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # a connect hook is synchronous; this is a rare first-start race
        pause = min(pause * 2, 0.1)
