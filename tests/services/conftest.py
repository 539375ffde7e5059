"""The store tests' `db` fixture (SQLite, and PostgreSQL when `SIMPLETUNER_TEST_DATABASE_URL` is
set, each test in its own schema) for the service tests that need a bare, migrated database. A test
module defining its own `db` keeps it."""

from tests.store.conftest import db, unmigrated_db  # noqa: F401 (fixtures, found by name)
