"""The storage ingress with real S3 clients on a real socket: boto3 (a single put, multipart above
8 MiB, over HTTP and over HTTPS through Caddy as a TLS proxy, where boto3 sends aws-chunked bodies
with a trailing CRC32) and the AWS CLI (`aws s3 cp`, `aws s3 ls --endpoint-url`). Then each refusal:
a forged signature, an expired key, another job's prefix, path traversal, an oversized body, a bad
checksum, and the rest of the gate (unknown keys, other buckets, presigned URLs)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from fastapi import FastAPI

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.security.secrets import SecretStore
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.storage.keys import credentials_for
from simpletuner_cloud.store.deliveries import create_deliveries, list_artifacts, list_deliveries
from simpletuner_cloud.store.jobs import apply_status, create_job
from tests.support.live_server import live_server
from tests.support.s3_servers import aws_cli, caddy_tls, subprocess_env

BUCKET = "cloud-outputs"


@dataclass
class Ingress:
    base: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def job(self, *, ended_minutes_ago: float | None = None) -> tuple[str, str, str]:
        """A local-delivery job (ended that long ago, or still running) and its storage keys."""

        async def make() -> str:
            async with self.app.state.database.session() as session:
                job, _ = await create_job(
                    session, config_name="t", hardware="l40s", model="m", delivery="local"
                )
                await create_deliveries(session, job.id, [("local", {"bucket": BUCKET, "prefix": job.id})])
                # Running, with its next poll far away: the job runner leaves it alone.
                later = datetime.now(UTC) + timedelta(days=1)
                await apply_status(session, job.id, "running", next_poll_at=later)
                if ended_minutes_ago is not None:
                    ended = datetime.now(UTC) - timedelta(minutes=ended_minutes_ago)
                    await apply_status(session, job.id, "succeeded", at=ended, completed_at=ended)
                await session.commit()
                return job.id

        job_id = self.run(make())
        access_key, secret = credentials_for(SecretStore.of(self.app.state.settings), job_id)
        return job_id, access_key, secret

    def client(self, access_key: str, secret: str, url: str | None = None, **config: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=f"{url or self.base}/api/cloud/storage",
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            verify=False,
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def artifacts(self, job_id: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            async with self.app.state.database.session() as session:
                return {a.name: a for a in await list_artifacts(session, job_id=job_id)}

        return self.run(read())  # type: ignore[no-any-return]

    def delivery_state(self, job_id: str) -> str:
        async def read() -> str:
            async with self.app.state.database.session() as session:
                return (await list_deliveries(session, job_id))[0].state

        return self.run(read())  # type: ignore[no-any-return]


@pytest.fixture
def ingress() -> Iterator[Ingress]:
    with running_ingress() as running:
        yield running


@contextmanager
def running_ingress() -> Iterator[Ingress]:
    """The app on a real socket, and its event loop for reading the database from the test."""
    app = create_app(load_settings())
    loops: list[asyncio.AbstractEventLoop] = []

    @app.get("/_test/loop")
    async def remember_loop() -> dict[str, bool]:
        loops.append(asyncio.get_running_loop())
        return {"ok": True}

    with live_server(app) as base:
        httpx.get(f"{base}/_test/loop", trust_env=False)
        yield Ingress(base, app, loops[0])


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = exc.value.response["Error"]
    return str(error.get("Code")), str(error.get("Message"))


def test_boto3_single_put_get_head_list_delete_over_http(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    key = f"{job_id}/cog-run/validation_images/step 10 (a).png"
    body = b"\x89PNG sample"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 (S3's ETag)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"\x89PNG sample"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == 11 and head["ETag"] == put["ETag"]
    ranged = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=1-3")
    assert ranged["Body"].read() == b"PNG" and ranged["ContentRange"] == "bytes 1-3/11"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{job_id}/")
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed["Contents"]] == [(key, 11, put["ETag"])]
    folders = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{job_id}/", Delimiter="/")
    assert folders["CommonPrefixes"] == [{"Prefix": f"{job_id}/cog-run/"}] and "Contents" not in folders
    artifact = ingress.artifacts(job_id)["cog-run/validation_images/step 10 (a).png"]
    assert (artifact.kind, artifact.step, artifact.size) == ("validation_image", 10, 11)
    assert artifact.sha256 == hashlib.sha256(b"\x89PNG sample").hexdigest()
    assert ingress.delivery_state(job_id) == "receiving"
    s3.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=BUCKET, Key=key)
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert ingress.artifacts(job_id) == {}


def test_boto3_multipart_over_8_mib_and_a_repeated_upload_replaces_the_file(
    ingress: Ingress, tmp_path: Path
) -> None:
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    source = tmp_path / "weights.safetensors"
    source.write_bytes(os.urandom(17 * 1024 * 1024))
    key = f"{job_id}/cog-run/checkpoint-100/pytorch_lora_weights.safetensors"
    s3.upload_file(str(source), BUCKET, key)
    target = ingress.app.state.settings.outputs_dir / key
    assert target.read_bytes() == source.read_bytes()
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3")  # three 8 MiB parts
    source.write_bytes(b"replaced")
    s3.upload_file(str(source), BUCKET, key)
    assert target.read_bytes() == b"replaced"
    outputs = ingress.app.state.settings.outputs_dir
    assert list((outputs / ".incoming").iterdir()) == [] and list((outputs / ".multipart").iterdir()) == []
    assert ingress.artifacts(job_id)["cog-run/checkpoint-100/pytorch_lora_weights.safetensors"].size == 8


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # Caddy's own test CA
def test_boto3_over_https_through_a_tls_proxy_sends_aws_chunked_bodies(
    ingress: Ingress, tmp_path: Path
) -> None:
    job_id, access_key, secret = ingress.job()
    seen: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        seen.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()}
        )

    with caddy_tls(tmp_path / "caddy", int(ingress.base.rsplit(":", 1)[1])) as tls_url:
        s3 = ingress.client(access_key, secret, tls_url)
        s3.meta.events.register("before-send.s3.PutObject", record)
        s3.meta.events.register("before-send.s3.UploadPart", record)
        s3.put_object(Bucket=BUCKET, Key=f"{job_id}/small.txt", Body=b"hello world")
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(9 * 1024 * 1024))
        s3.upload_file(str(source), BUCKET, f"{job_id}/big.bin")
        assert s3.get_object(Bucket=BUCKET, Key=f"{job_id}/small.txt")["Body"].read() == b"hello world"
    outputs = ingress.app.state.settings.outputs_dir / job_id
    assert (outputs / "small.txt").read_bytes() == b"hello world"
    assert (outputs / "big.bin").read_bytes() == source.read_bytes()
    assert len(seen) == 3 and all(
        h["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" for h in seen
    )
    assert all(
        h["content-encoding"] == "aws-chunked" and h["x-amz-trailer"] == "x-amz-checksum-crc32" for h in seen
    )


def test_the_aws_cli_copies_and_lists(ingress: Ingress, tmp_path: Path) -> None:
    job_id, access_key, secret = ingress.job()
    env = subprocess_env(tmp_path)
    env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1")
    endpoint = ["--endpoint-url", f"{ingress.base}/api/cloud/storage"]
    (tmp_path / "card.md").write_text("# card\n")
    copied = aws_cli(
        ["s3", "cp", str(tmp_path / "card.md"), f"s3://{BUCKET}/{job_id}/run/README.md", *endpoint], env
    )
    assert copied.returncode == 0, copied.stderr
    listed = aws_cli(["s3", "ls", f"s3://{BUCKET}/{job_id}/run/", *endpoint], env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[-2:] == ["7", "README.md"]
    back = aws_cli(
        ["s3", "cp", f"s3://{BUCKET}/{job_id}/run/README.md", str(tmp_path / "back.md"), *endpoint], env
    )
    assert back.returncode == 0 and (tmp_path / "back.md").read_text() == "# card\n"


def test_a_forged_signature_is_refused(ingress: Ingress) -> None:
    job_id, access_key, _ = ingress.job()
    s3 = ingress.client(access_key, "not-the-secret-key-of-this-job-000000000")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=f"{job_id}/x", Body=b"x")
    assert error_of(refused) == (
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    )
    assert not (ingress.app.state.settings.outputs_dir / job_id).exists()


def test_a_changed_request_no_longer_matches_its_signature(ingress: Ingress) -> None:
    """A header the client signed, changed on the way (here: the date), fails the check."""
    job_id, access_key, secret = ingress.job()
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x"
    request = AWSRequest(
        "PUT", url, data=b"body", headers={"X-Amz-Content-SHA256": hashlib.sha256(b"body").hexdigest()}
    )
    S3SigV4Auth(Credentials(access_key, secret), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    stamp = headers["X-Amz-Date"]
    headers["X-Amz-Date"] = stamp[:13] + ("00" if stamp[13:15] != "00" else "01") + "Z"  # other seconds
    answer = httpx.put(url, content=b"body", headers=headers, trust_env=False)
    assert answer.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer.content
    good = httpx.put(url, content=b"body", headers=dict(request.headers.items()), trust_env=False)
    assert good.status_code == 200, good.text


def test_an_expired_key_is_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job(ended_minutes_ago=31)
    with pytest.raises(ClientError) as refused:
        ingress.client(access_key, secret).put_object(Bucket=BUCKET, Key=f"{job_id}/x", Body=b"x")
    assert error_of(refused) == (
        "AccessDenied",
        "This job's storage key expired 30 minutes after the job ended.",
    )
    fresh_id, fresh_key, fresh_secret = ingress.job(ended_minutes_ago=5)  # within the grace period
    ingress.client(fresh_key, fresh_secret).put_object(Bucket=BUCKET, Key=f"{fresh_id}/x", Body=b"x")


def test_another_jobs_prefix_and_another_bucket_are_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    other_id, _, _ = ingress.job()
    s3 = ingress.client(access_key, secret)
    with pytest.raises(ClientError) as other_job:
        s3.put_object(Bucket=BUCKET, Key=f"{other_id}/x", Body=b"x")
    assert error_of(other_job) == ("AccessDenied", f"This key may only write under {job_id}/.")
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{other_id}/")
    assert error_of(listing) == ("AccessDenied", f"This key may only list under {job_id}/.")
    with pytest.raises(ClientError) as bucket:
        s3.put_object(Bucket="someone-elses", Key=f"{job_id}/x", Body=b"x")
    assert error_of(bucket) == ("AccessDenied", f"This key may only use the bucket {BUCKET!r}.")
    assert not (ingress.app.state.settings.outputs_dir / other_id).exists()


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("../escape.txt", "The object key must be a relative path without '.', '..' or '//'."),
        ("a//b", "The object key must be a relative path without '.', '..' or '//'."),
        ("a/./b", "The object key must be a relative path without '.', '..' or '//'."),
        ("a\\..\\b", "The object key has a backslash or a control character."),
    ],
)
def test_path_traversal_is_refused(ingress: Ingress, suffix: str, message: str) -> None:
    job_id, access_key, secret = ingress.job()
    with pytest.raises(ClientError) as refused:
        ingress.client(access_key, secret).put_object(Bucket=BUCKET, Key=f"{job_id}/{suffix}", Body=b"x")
    assert error_of(refused) == ("InvalidArgument", message)
    outputs = ingress.app.state.settings.outputs_dir
    assert [p.name for p in outputs.rglob("*") if p.is_file()] == []


def test_a_link_inside_the_job_folder_is_never_followed(ingress: Ingress, tmp_path: Path) -> None:
    job_id, access_key, secret = ingress.job()
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = ingress.app.state.settings.outputs_dir / job_id
    folder.mkdir(parents=True)
    (folder / "run").symlink_to(outside)
    with pytest.raises(ClientError) as refused:
        ingress.client(access_key, secret).put_object(Bucket=BUCKET, Key=f"{job_id}/run/x", Body=b"x")
    assert error_of(refused) == ("InvalidRequest", "'run' in the key is not a folder here.")
    assert list(outside.iterdir()) == []


def test_an_oversized_body_is_refused_before_it_is_read(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    local = httpx.put(
        f"{ingress.base}/api/cloud/publishing", json={"local": {"max_object_bytes": 1024}}, trust_env=False
    )
    assert local.status_code == 200, local.text
    s3 = ingress.client(access_key, secret)
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=f"{job_id}/big", Body=b"x" * 2048)
    assert error_of(refused) == (
        "EntityTooLarge",
        "The object is larger than this server accepts (1,024 bytes).",
    )
    s3.put_object(Bucket=BUCKET, Key=f"{job_id}/small", Body=b"x" * 1024)
    outputs = ingress.app.state.settings.outputs_dir / job_id
    assert sorted(p.name for p in outputs.iterdir()) == ["small"]


def test_a_bad_checksum_is_refused_and_nothing_is_kept(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    wrong = base64.b64encode((12345).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=f"{job_id}/x", Body=b"hello", ChecksumCRC32=wrong)
    assert error_of(refused) == (
        "BadDigest",
        "The CRC32 you specified did not match the calculated checksum.",
    )
    with pytest.raises(ClientError) as md5:
        s3.put_object(
            Bucket=BUCKET, Key=f"{job_id}/y", Body=b"hello", ContentMD5=base64.b64encode(b"0" * 16).decode()
        )
    assert error_of(md5) == ("BadDigest", "The Content-MD5 you specified did not match what we received.")
    outputs = ingress.app.state.settings.outputs_dir
    assert not (outputs / job_id).exists() and list((outputs / ".incoming").iterdir()) == []


def test_unknown_keys_anonymous_and_presigned_requests_are_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x"
    anonymous = httpx.put(url, content=b"x", trust_env=False)
    assert anonymous.status_code == 403 and b"<Code>AccessDenied</Code>" in anonymous.content
    with pytest.raises(ClientError) as unknown:
        ingress.client("AKIAUNKNOWN000000000", secret).put_object(Bucket=BUCKET, Key=f"{job_id}/x", Body=b"x")
    assert error_of(unknown) == ("InvalidAccessKeyId", "The access key does not exist in our records.")
    presigned = ingress.client(access_key, secret).generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": f"{job_id}/x"}
    )
    answer = httpx.get(presigned, trust_env=False)
    assert answer.status_code == 403
    assert b"Presigned URLs are not accepted here; sign with the Authorization header." in answer.content


def test_multipart_parts_of_another_upload_or_job_are_refused(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    other_id, other_key, other_secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=f"{job_id}/big")["UploadId"]
    other = ingress.client(other_key, other_secret)
    with pytest.raises(ClientError) as stolen:
        other.upload_part(Bucket=BUCKET, Key=f"{other_id}/big", UploadId=upload, PartNumber=1, Body=b"x")
    assert error_of(stolen)[0] == "NoSuchUpload"
    part = s3.upload_part(Bucket=BUCKET, Key=f"{job_id}/big", UploadId=upload, PartNumber=1, Body=b"tiny")
    with pytest.raises(ClientError) as wrong_etag:
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key=f"{job_id}/big",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )
    assert error_of(wrong_etag) == ("InvalidPart", "Part 1 was not uploaded or its ETag does not match.")
    done = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=f"{job_id}/big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["ETag"].strip('"').endswith("-1")
    assert (ingress.app.state.settings.outputs_dir / job_id / "big").read_bytes() == b"tiny"
    s3.abort_multipart_upload(
        Bucket=BUCKET,
        Key=f"{job_id}/next",
        UploadId=s3.create_multipart_upload(Bucket=BUCKET, Key=f"{job_id}/next")["UploadId"],
    )


def test_behind_a_trusted_proxy_the_forwarded_host_is_what_the_client_signed(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    public = "https://training.example.com"
    request = AWSRequest(
        "PUT",
        f"{public}/api/cloud/storage/{BUCKET}/{job_id}/x",
        data=b"body",
        headers={"X-Amz-Content-SHA256": hashlib.sha256(b"body").hexdigest()},
    )
    S3SigV4Auth(Credentials(access_key, secret), "s3", "us-east-1").add_auth(request)
    # nginx's `proxy_set_header Host $host` style: the upstream sees another Host, the original forwarded.
    headers = {**dict(request.headers.items()), "X-Forwarded-Host": "training.example.com"}
    url = f"{ingress.base}/api/cloud/storage/{BUCKET}/{job_id}/x"
    untrusted = httpx.put(url, content=b"body", headers=headers, trust_env=False)
    assert untrusted.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in untrusted.content
    saved = httpx.put(
        f"{ingress.base}/api/cloud/providers/replicate",
        json={"trusted_proxies": ["127.0.0.1/32"]},
        trust_env=False,
    )
    assert saved.status_code == 200, saved.text
    trusted = httpx.put(url, content=b"body", headers=headers, trust_env=False)
    assert trusted.status_code == 200, trusted.text


def test_operations_the_endpoint_does_not_offer_say_so(ingress: Ingress) -> None:
    job_id, access_key, secret = ingress.job()
    s3 = ingress.client(access_key, secret)
    with pytest.raises(ClientError) as v1:
        s3.list_objects(Bucket=BUCKET, Prefix=f"{job_id}/")
    assert error_of(v1) == ("NotImplemented", "Only ListObjectsV2 (list-type=2) is supported on the bucket.")
    s3.put_object(Bucket=BUCKET, Key=f"{job_id}/a", Body=b"a")
    with pytest.raises(ClientError) as copy:
        s3.copy_object(Bucket=BUCKET, Key=f"{job_id}/b", CopySource={"Bucket": BUCKET, "Key": f"{job_id}/a"})
    assert error_of(copy) == ("NotImplemented", "CopyObject is not supported.")
    s3.head_bucket(Bucket=BUCKET)


def deploy_md_block(heading: str, language: str) -> str:
    """The first `language` code block under `heading` in docs/deploy.md, as a user copies it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    section = text.split(heading, 1)[1]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # a self-signed test cert
def test_the_trainer_uploads_through_nginx_with_the_storage_block_of_docs_deploy(
    ingress: Ingress, tmp_path: Path
) -> None:
    """docs/deploy.md's nginx block for local delivery, added to the shipped recipe as it says, on a
    port other than 443 (the host the client signs then carries the port): a single put and a
    multipart upload land in cloud_outputs, from an address outside every allowlist."""
    from tests.deploy.proxies import OUTSIDER, nginx
    from tests.support.tls import self_signed

    block = deploy_md_block("## Local download through a proxy", "nginx")
    saved = httpx.put(
        f"{ingress.base}/api/cloud/providers/replicate",
        json={"trusted_proxies": ["127.0.0.1/32"]},  # as the docs say: the proxy's address
        trust_env=False,
    )
    assert saved.status_code == 200, saved.text
    job_id, access_key, secret = ingress.job()
    cert, key = self_signed(tmp_path / "tls")
    port = int(ingress.base.rsplit(":", 1)[1])
    with nginx(tmp_path / "nginx", port, cert, key, locations=block) as proxy:
        s3 = ingress.client(access_key, secret, proxy.url)
        s3.put_object(Bucket=BUCKET, Key=f"{job_id}/small.txt", Body=b"hello through nginx")
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(9 * 1024 * 1024))
        s3.upload_file(str(source), BUCKET, f"{job_id}/big.bin")  # multipart: two parts
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{job_id}/")
        with proxy.client(OUTSIDER) as outsider:
            closed = outsider.get("/api/cloud/providers")
    outputs = ingress.app.state.settings.outputs_dir / job_id
    assert (outputs / "small.txt").read_bytes() == b"hello through nginx"
    assert (outputs / "big.bin").read_bytes() == source.read_bytes()
    assert sorted(o["Key"] for o in listed["Contents"]) == [f"{job_id}/big.bin", f"{job_id}/small.txt"]
    assert closed.status_code == 403  # the rest of the server stays closed to the outside


def test_the_trainer_uploads_through_caddy_with_the_storage_block_of_docs_deploy(
    ingress: Ingress, tmp_path: Path
) -> None:
    from tests.deploy.proxies import OUTSIDER, caddy

    block = deploy_md_block("## Local download through a proxy", "caddy")
    saved = httpx.put(
        f"{ingress.base}/api/cloud/providers/replicate",
        json={"trusted_proxies": ["127.0.0.1/32"]},
        trust_env=False,
    )
    assert saved.status_code == 200, saved.text
    job_id, access_key, secret = ingress.job()
    with caddy(tmp_path / "caddy", int(ingress.base.rsplit(":", 1)[1]), matchers=block) as proxy:
        s3 = ingress.client(access_key, secret, proxy.url)
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(9 * 1024 * 1024))
        s3.upload_file(str(source), BUCKET, f"{job_id}/big.bin")
        with proxy.client(OUTSIDER) as outsider:
            closed = outsider.get("/api/cloud/providers")
    assert (ingress.app.state.settings.outputs_dir / job_id / "big.bin").read_bytes() == source.read_bytes()
    assert closed.status_code == 403
