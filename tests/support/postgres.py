"""A throwaway PostgreSQL database for tests that run whole servers on one database (each server is
its own process, so a schema on the shared test database is not enough: they connect by URL)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import in_ci

PG_ENV = "SIMPLETUNER_TEST_DATABASE_URL"


def postgres_url_or_skip() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if in_ci():
            pytest.fail(f"{PG_ENV} must be set in CI: the several-servers tests need PostgreSQL")
        pytest.skip(f"{PG_ENV} not set")
    return url


@contextmanager
def fresh_database() -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new, empty database; drops it afterwards."""
    base = make_url(postgres_url_or_skip())
    name = f"st_{uuid.uuid4().hex[:12]}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
