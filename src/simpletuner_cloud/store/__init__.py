"""Persistence: SQLAlchemy 2 rows, Alembic migrations and async repository functions.

The store enforces integrity and the job state machine (through `domain.jobs`), never business
policy. Repository functions take an `AsyncSession`, flush, and leave the commit to the caller."""

from simpletuner_cloud.store.database import Database

__all__ = ["Database"]
