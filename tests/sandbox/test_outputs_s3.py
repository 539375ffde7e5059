"""The simulated trainer publishes like the real one: boto3 PUTs to the given S3 endpoint with the
given keys, under <base_path>/<cog job>/..., and returns the output string of trainer-contract 1.2."""

from __future__ import annotations

import json
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simpletuner_cloud.sandbox.outputs import placeholder_lora
from tests.sandbox.conftest import create, trainer_input, wait_until
from tests.support.live_server import live_server

ACCESS, SECRET_KEY = "AKIASANDBOXTEST00001", "sandbox-test-secret-key-0000000000000000"


@dataclass
class S3Receiver:
    url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)
    auth: list[str] = field(default_factory=list)
    deny: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def s3() -> Iterator[S3Receiver]:
    """A minimal loopback S3: PutObject only (our files are far below boto3's 8 MiB multipart cut)."""
    receiver = S3Receiver()

    async def put(request: Request) -> Response:
        body = await request.body()
        if receiver.deny:
            error = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return Response(error, status_code=403, media_type="application/xml")
        with receiver.lock:
            receiver.objects[request.path_params["key"]] = body
            receiver.auth.append(request.headers.get("authorization", ""))
        return Response(status_code=200, headers={"ETag": '"0123456789abcdef"'})

    app = Starlette(routes=[Route("/{key:path}", put, methods=["PUT"])])
    with live_server(app) as base:
        receiver.url = base
        yield receiver


def s3_inputs(s3: S3Receiver, **extra: object) -> dict[str, object]:
    return {
        "s3_bucket": "loras",
        "s3_region": "us-east-1",
        "s3_endpoint_url": s3.url,
        "s3_access_key": ACCESS,
        "s3_secret_key": SECRET_KEY,
        **extra,
    }


async def test_uploads_to_the_given_endpoint(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    created = await create(api, await trainer_input(api, **s3_inputs(s3)))
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == f"{s3.url}/loras/simpletuner"
    assert done["logs"].rstrip("\n").endswith(f"Checkpoints published to: {s3.url}/loras/simpletuner")
    job = re.search(r"output/cog/(cog-[0-9a-f]{10})", done["logs"])
    assert job is not None
    prefix = f"loras/simpletuner/{job.group(1)}"
    assert set(s3.objects) == {
        f"{prefix}/checkpoint-10/pytorch_lora_weights.safetensors",
        f"{prefix}/README.md",
        f"{prefix}/config.json",
    }
    assert all(f"Credential={ACCESS}/" in header for header in s3.auth)
    weights = s3.objects[f"{prefix}/checkpoint-10/pytorch_lora_weights.safetensors"]
    assert weights == placeholder_lora("flux", 4)
    config = json.loads(s3.objects[f"{prefix}/config.json"])
    assert config["max_train_steps"] == 10 and config["output_dir"] == f"output/cog/{job.group(1)}"
    assert SECRET_KEY not in json.dumps(config) and ACCESS not in json.dumps(config)
    assert "Sandbox placeholder" in s3.objects[f"{prefix}/README.md"].decode()


async def test_public_base_url_and_base_path_shape_the_output(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    inputs = s3_inputs(s3, s3_public_base_url="https://cdn.example.com/", s3_base_path="team/runs")
    created = await create(api, await trainer_input(api, **inputs))
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["output"] == "https://cdn.example.com/team/runs"
    assert all(key.startswith("loras/team/runs/cog-") for key in s3.objects)


async def test_upload_failure_fails_the_prediction(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    s3.deny = True
    created = await create(api, await trainer_input(api, **s3_inputs(s3)))
    failed = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert failed["status"] == "failed"
    assert "AccessDenied" in failed["error"] and failed["output"] is None


def test_placeholder_is_a_valid_safetensors_file() -> None:
    data = placeholder_lora("flux", 16)
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    assert header["__metadata__"]["sandbox_placeholder"] == "true"
    names = sorted(name for name in header if name != "__metadata__")
    assert "transformer.transformer_blocks.0.attn.to_q.lora_A.weight" in names
    assert "transformer.transformer_blocks.0.attn.to_out.0.lora_B.weight" in names
    end = max(entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__")
    assert len(data) == 8 + size + end
    assert header["transformer.transformer_blocks.0.attn.to_q.lora_A.weight"]["shape"] == [16, 3072]
    sdxl = placeholder_lora("sdxl", 4)
    (size,) = struct.unpack("<Q", sdxl[:8])
    assert any(name.startswith("unet.") for name in json.loads(sdxl[8 : 8 + size]))
