"""The simulated trainer publishes like the real one: boto3 PUTs to the given S3 endpoint with the
given keys, under <base_path>/<cog job>/..., and returns the output string of trainer-contract 1.2."""

from __future__ import annotations

import json
import math
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
    assert weights == placeholder_lora("flux", 4)  # lora_rank 4 from config_json
    read_safetensors(weights)
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


def read_safetensors(data: bytes) -> tuple[dict[str, str], dict[str, dict[str, object]]]:
    """Check the format strictly (as the reference loader does) and return (metadata, tensors):
    8-byte little-endian header size, a JSON header, then the tensors' bytes back to back from
    offset 0 to the end of the file, each the size its dtype and shape say."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size].decode("utf-8"))
    metadata = header.pop("__metadata__")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    position = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        begin, end = entry["data_offsets"]
        assert begin == position, name
        assert entry["dtype"] == "BF16" and end - begin == 2 * math.prod(entry["shape"]), name
        position = end
    assert 8 + size + position == len(data)
    return metadata, header


def test_placeholder_is_a_valid_and_labelled_peft_flux_lora() -> None:
    metadata, tensors = read_safetensors(placeholder_lora("flux", 16))
    assert metadata["format"] == "pt" and metadata["sandbox_placeholder"] == "true"
    assert "placeholder" in metadata["note"] and "not trained" in metadata["note"]
    peft = re.compile(
        r"transformer\.transformer_blocks\.0\.attn\.(to_q|to_k|to_v|to_out\.0)\.lora_([AB])\.weight"
    )
    modules: dict[str, dict[str, object]] = {}
    for name, entry in tensors.items():
        match = peft.fullmatch(name)
        assert match is not None, name
        modules.setdefault(match.group(1), {})[match.group(2)] = entry["shape"]
    assert set(modules) == {"to_q", "to_k", "to_v", "to_out.0"}
    assert all(shapes == {"A": [16, 3072], "B": [3072, 16]} for shapes in modules.values())


def test_placeholder_follows_the_model_family_and_caps_the_rank() -> None:
    _, sdxl = read_safetensors(placeholder_lora("sdxl", 64))
    name = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.lora_B.weight"
    assert sdxl[name]["shape"] == [640, 16]
    _, unknown = read_safetensors(placeholder_lora("no-such-family", 4))
    assert all(key.startswith("transformer.transformer_blocks.0.attn.") for key in unknown)
