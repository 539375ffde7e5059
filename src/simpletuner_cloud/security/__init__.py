"""Secrets at rest and in logs: the admin token, 0600 files written atomically, and the log redaction filter."""
