"""Alembic revisions, written by hand; each must match `store/tables.py` at its point in history."""
