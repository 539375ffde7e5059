"""Secrets a job needs until it ends (the HF token, later S3 keys), kept in the 0600 secret store
under the job's id, never in `jobs.spec`: the worker reads them to build (or, after an ambiguous
failure, rebuild) the create request, and the clean-up deletes them once the job is finished."""

from __future__ import annotations

import json

from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.settings import Settings


def _reference(job_id: str) -> str:
    return f"job.{job_id.lower()}"


def save_job_secrets(settings: Settings, job_id: str, values: dict[str, str]) -> None:
    present = {name: value for name, value in values.items() if value}
    if present:
        SecretStore.of(settings).put(_reference(job_id), json.dumps(present))


def load_job_secrets(settings: Settings, job_id: str) -> dict[str, str]:
    raw = SecretStore.of(settings).get(_reference(job_id))
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def delete_job_secrets(settings: Settings, job_id: str) -> bool:
    return SecretStore.of(settings).delete(_reference(job_id))
