"""Alembic environment and revisions of the job store (a package so they ship in the wheel)."""
