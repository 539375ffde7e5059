"""Who is calling the storage ingress, and whether that key may still be used: SigV4 with a job's own
key (recomputed by botocore's signer over the request as sent, with the forwarded host counted only
behind a trusted proxy), the job behind the key, and its grace period after the job ends."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs

from simpletuner_cloud.domain.jobs import is_terminal
from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.services.publishing import load_publishing
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.storage import keys
from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.sigv4 import (
    Authorization,
    check_request_time,
    parse_authorization,
    signature_matches,
)
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store import jobs as repo
from simpletuner_cloud.store.database import Database

KEY_GRACE_MINUTES = 30
KEY_GRACE = timedelta(minutes=KEY_GRACE_MINUTES)  # a job's key keeps working this long after the job ends
PRESIGNED_PARAMETERS = frozenset({"X-Amz-Signature", "X-Amz-Credential", "Signature", "AWSAccessKeyId"})


@dataclass
class IngressRequest:
    method: str
    raw_path: str  # still percent-encoded, as the client signed it
    raw_query: str
    headers: list[tuple[str, str]]
    peer: str | None
    body: AsyncIterator[bytes]


@dataclass(frozen=True)
class Caller:
    job_id: str
    delivery_id: str
    max_object_bytes: int


def header(request: IngressRequest, name: str) -> str | None:
    for key, value in request.headers:
        if key.lower() == name:
            return value
    return None


async def authenticate(
    settings: Settings, database: Database, request: IngressRequest, now: datetime
) -> Caller:
    if PRESIGNED_PARAMETERS & set(parse_qs(request.raw_query, keep_blank_values=True)):
        raise S3Error(
            "AccessDenied", "Presigned URLs are not accepted here; sign with the Authorization header."
        )
    authorization = parse_authorization(
        header(request, "authorization"),
        header(request, "x-amz-date"),
        header(request, "x-amz-content-sha256"),
    )
    check_request_time(authorization, now)
    job_id = keys.job_of(authorization.access_key)
    secret = keys.secret_key_for(SecretStore.of(settings), authorization.access_key) if job_id else None
    unknown = S3Error("InvalidAccessKeyId", "The access key does not exist in our records.")
    if job_id is None or secret is None:
        raise unknown
    async with database.session() as session:
        job = await repo.get_job(session, job_id)
        delivery = await ledger.delivery_of(session, job_id, "local") if job else None
        replicate = await load_replicate_settings(session, settings)
        publishing = await load_publishing(session, settings)
    if job is None or delivery is None:
        raise unknown
    if not signature_ok(request, authorization, secret, replicate.trusted_proxies):
        raise S3Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if is_terminal(job.status) and now > (job.completed_at or job.updated_at) + KEY_GRACE:
        raise S3Error(
            "AccessDenied", f"This job's storage key expired {KEY_GRACE_MINUTES} minutes after the job ended."
        )
    return Caller(job_id, delivery.id, publishing.settings.local.max_object_bytes)


def signature_ok(
    request: IngressRequest, authorization: Authorization, secret: str, trusted: list[str]
) -> bool:
    """Against the Host the client sent; behind a trusted proxy that rewrote it, also against the
    forwarded host (and port) it names."""
    hosts = [header(request, "host") or ""]
    forwarded = header(request, "x-forwarded-host")
    if forwarded and _is_trusted(request.peer, trusted):
        host = forwarded.split(",")[0].strip()
        port = (header(request, "x-forwarded-port") or "").split(",")[0].strip()
        if port and ":" not in host.rsplit("]", 1)[-1] and port not in ("80", "443"):
            host = f"{host}:{port}"
        hosts.append(host)
    for host in dict.fromkeys(hosts):
        headers = [(k, host if k.lower() == "host" else v) for k, v in request.headers]
        if signature_matches(
            authorization,
            secret,
            method=request.method,
            url=f"http://{host}{request.raw_path}",
            raw_query=request.raw_query,
            headers=headers,
        ):
            return True
    return False


def _is_trusted(peer: str | None, trusted: list[str]) -> bool:
    if not peer or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in trusted)
