"""Secrets at rest and in logs: the admin token, 0600 secret files written atomically, log redaction."""
