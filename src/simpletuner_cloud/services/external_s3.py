"""The user's own S3 bucket (AWS S3, MinIO, Backblaze B2, R2, ...) through boto3: the settings' test
button (write, read back, delete a small object, naming the step that failed), listing what a job's
trainer published there, and reading one object for a download. Blocking calls: run them in a thread."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from pydantic import BaseModel

from simpletuner_cloud.errors import CloudError

TEST_BODY = b"simpletuner-cloud S3 test object: safe to delete\n"
Step = Literal["write", "read", "delete"]


@dataclass(frozen=True)
class S3Target:
    bucket: str
    region: str
    prefix: str
    access_key: str | None
    secret_key: str | None
    endpoint_url: str | None = None
    public_base_url: str | None = None

    def object_url(self, key: str) -> str:
        if self.public_base_url:
            return f"{self.public_base_url}/{key}"
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.bucket}/{key}"
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str
    last_modified: datetime | None


class StepView(BaseModel):
    step: Step
    ok: bool | None  # None: not reached
    detail: str


class S3TestView(BaseModel):
    ok: bool
    failed_step: Step | None
    message: str
    hint: str
    bucket: str
    endpoint_url: str | None
    key: str
    steps: list[StepView]


def missing_keys() -> CloudError:
    return CloudError(
        "S3 publishing needs an access key and a secret key.",
        code="s3_keys_missing",
        hint="Save them in the Publishing settings (PUT /api/cloud/publishing with "
        '{"s3": {"access_key": "...", "secret_key": "..."}}). The trainer gets them as Secret inputs.',
    )


def s3_client(target: S3Target) -> Any:
    import boto3
    from botocore.config import Config

    if not target.access_key or not target.secret_key:
        raise missing_keys()
    session = boto3.session.Session(
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        region_name=target.region,
    )
    config = Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
    return session.client("s3", endpoint_url=target.endpoint_url or None, config=config)


def explain(exc: Exception, target: S3Target) -> tuple[str, str]:
    """(what happened, what to do) for a boto3 failure, in the user's words."""
    where = target.endpoint_url or "AWS S3"
    if isinstance(exc, SSLError):
        return f"TLS failed talking to {where}: {exc}", "Check the endpoint URL (https?) and its certificate."
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"Could not reach {where}: {exc}", "Check the endpoint URL and that this machine can reach it."
    if isinstance(exc, NoCredentialsError):
        return "No access keys were given.", "Save an access key and a secret key."
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code") or "")
        message = str(exc.response.get("Error", {}).get("Message") or exc)
        hints = {
            "NoSuchBucket": f"Create the bucket `{target.bucket}` or fix its name.",
            "InvalidAccessKeyId": "This endpoint does not know the access key: check it and the endpoint.",
            "SignatureDoesNotMatch": "The secret key does not match the access key.",
            "AccessDenied": f"Give these keys read, write and delete rights on {target.bucket}.",
            "AllAccessDisabled": f"The bucket `{target.bucket}` is disabled.",
            "PermanentRedirect": "The bucket lives in another region: set that region.",
            "AuthorizationHeaderMalformed": "The region is not the bucket's: set the bucket's region.",
        }
        return f"{code or 'Error'}: {message}", hints.get(code, "Check the bucket, region and keys.")
    if isinstance(exc, BotoCoreError):
        return f"{type(exc).__name__}: {exc}", "Check the endpoint URL, region and keys."
    return f"{type(exc).__name__}: {exc}", "Check the S3 settings."


def test_bucket(target: S3Target) -> S3TestView:
    """Write, read back and delete `<prefix>/.simpletuner-test-<random>`; stop at the first failure."""
    key = f"{target.prefix}/.simpletuner-test-{secrets.token_hex(6)}".lstrip("/")
    steps: list[StepView] = []
    client = s3_client(target)

    def run(step: Step, action: Any) -> bool:
        try:
            detail = action()
        except Exception as exc:  # boto3 raises many types; each is explained
            message, hint = explain(exc, target)
            steps.append(StepView(step=step, ok=False, detail=message))
            failed.update(step=step, message=message, hint=hint)
            return False
        steps.append(StepView(step=step, ok=True, detail=detail))
        return True

    def write() -> str:
        client.put_object(Bucket=target.bucket, Key=key, Body=TEST_BODY)
        return f"Wrote {len(TEST_BODY)} bytes to {target.object_url(key)}."

    def read() -> str:
        body = client.get_object(Bucket=target.bucket, Key=key)["Body"].read()
        if body != TEST_BODY:
            raise ValueError(f"read back {len(body)} bytes that differ from the {len(TEST_BODY)} written")
        return "Read the object back; its bytes match."

    def delete() -> str:
        client.delete_object(Bucket=target.bucket, Key=key)
        return "Deleted the test object."

    failed: dict[str, Any] = {}
    for step, action in (("write", write), ("read", read), ("delete", delete)):
        if not run(step, action):  # type: ignore[arg-type]
            break
    for step in ("write", "read", "delete"):
        if step not in {s.step for s in steps}:
            steps.append(StepView(step=step, ok=None, detail="Not run: an earlier step failed."))  # type: ignore[arg-type]
    ok = not failed
    return S3TestView(
        ok=ok,
        failed_step=failed.get("step"),
        message=(
            f"The bucket `{target.bucket}` accepts writes, reads and deletes with these keys."
            if ok
            else f"The {failed['step']} step failed: {failed['message']}"
        ),
        hint="" if ok else str(failed["hint"]),
        bucket=target.bucket,
        endpoint_url=target.endpoint_url,
        key=key,
        steps=steps,
    )


def list_objects(target: S3Target, prefix: str) -> list[ListedObject]:
    client = s3_client(target)
    found: list[ListedObject] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix):
        for item in page.get("Contents") or []:
            found.append(
                ListedObject(
                    key=str(item["Key"]),
                    size=int(item.get("Size") or 0),
                    etag=str(item.get("ETag") or "").strip('"'),
                    last_modified=item.get("LastModified"),
                )
            )
    return found


def read_object(target: S3Target, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    body = s3_client(target).get_object(Bucket=target.bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()
