"""The simulated trainer publishes like the real one (trainer-contract 2.4): boto3 PUTs to the given
S3 endpoint with the given keys, under <base_path>/<output folder>/..., only after an in-training
validation run, the whole output folder each time and never the final save; and it returns the
output string of trainer-contract 1.2."""

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
from tests.sandbox.conftest import create, trainer_config, trainer_input, wait_until
from tests.support.live_server import live_server

ACCESS, SECRET_KEY = "AKIASANDBOXTEST00001", "sandbox-test-secret-key-0000000000000000"


@dataclass
class S3Receiver:
    url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)
    puts: list[str] = field(default_factory=list)  # every PutObject key, in arrival order
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
            receiver.puts.append(request.path_params["key"])
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


VALIDATED = {
    "validation_prompt": "a photo of sks plushie",
    "validation_step_interval": 5,
    "validation_resolution": "512x512",
    "checkpoints_total_limit": 1,
}


async def run_with_s3(
    api: httpx.AsyncClient, s3: S3Receiver, config: str, **extra: object
) -> dict[str, object]:
    created = await create(api, await trainer_input(api, config_json=config, **s3_inputs(s3, **extra)))
    return await wait_until(api, f"/v1/predictions/{created['id']}")


def run_prefix(done: dict[str, object], base_path: str = "loras/simpletuner") -> str:
    job = re.search(r"output/cog/(cog-[0-9a-f]{10})", str(done["logs"]))
    assert job is not None
    return f"{base_path}/{job.group(1)}"


def folder_at(prefix: str, *paths: str) -> list[str]:
    """What one upload sends: the whole output folder at that moment, in sorted order."""
    caches = [f"cache/text/flux/caption-000{i}.pt" for i in (1, 2, 3)]
    vae = [f"vae-cache/1.0/sample-000{i}.pt" for i in (1, 2, 3)]
    return [f"{prefix}/{path}" for path in sorted([*caches, *vae, *paths])]


async def test_without_a_validation_run_nothing_is_published(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    """The real trainer uploads only after an in-training validation and never the final save: a
    config without a validation prompt gets checkpoints, but S3 receives nothing at all."""
    done = await run_with_s3(api, s3, trainer_config())
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == f"{s3.url}/loras/simpletuner"  # the output names the prefix all the same
    assert str(done["logs"]).rstrip("\n").endswith(f"Checkpoints published to: {s3.url}/loras/simpletuner")
    assert "[CHECKPOINT] Checkpoint saved" in str(done["logs"])
    assert s3.puts == [] and s3.objects == {}


async def test_each_validation_uploads_the_whole_output_folder(
    api: httpx.AsyncClient, s3: S3Receiver
) -> None:
    done = await run_with_s3(api, s3, trainer_config(**VALIDATED))
    assert done["status"] == "succeeded", done["error"]
    prefix = run_prefix(done)
    checkpoint = ("pytorch_lora_weights.safetensors", "training_state.json")
    after_step_5 = folder_at(
        prefix,
        *(f"checkpoint-5/{name}" for name in checkpoint),
        "validation_images/step_5_validation_512x512.png",
    )
    # At step 10 checkpoint-5 is gone (checkpoints_total_limit 1); everything else is sent again.
    after_step_10 = folder_at(
        prefix,
        *(f"checkpoint-10/{name}" for name in checkpoint),
        "validation_images/step_5_validation_512x512.png",
        "validation_images/step_10_validation_512x512.png",
    )
    assert s3.puts == after_step_5 + after_step_10
    assert f"{prefix}/pytorch_lora_weights.safetensors" not in s3.objects  # the final save stays local
    assert f"{prefix}/README.md" not in s3.objects
    assert all(f"Credential={ACCESS}/" in header for header in s3.auth)
    weights = s3.objects[f"{prefix}/checkpoint-10/pytorch_lora_weights.safetensors"]
    assert weights == placeholder_lora("flux", 4)  # lora_rank 4 from config_json
    read_safetensors(weights)
    state = json.loads(s3.objects[f"{prefix}/checkpoint-10/training_state.json"])
    assert state == {"global_step": 10, "max_train_steps": 10, "sandbox_placeholder": True}
    image = s3.objects[f"{prefix}/validation_images/step_10_validation_512x512.png"]
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and b"sandbox placeholder" in image
    assert s3.objects[f"{prefix}/cache/text/flux/caption-0001.pt"].startswith(
        b"simpletuner-cloud sandbox placeholder"
    )
    assert SECRET_KEY.encode() not in b"".join(s3.objects.values())
    assert str(done["logs"]).rstrip("\n").endswith(f"Checkpoints published to: {s3.url}/loras/simpletuner")


async def test_an_interval_that_does_not_divide_leaves_the_last_checkpoint_unpublished(
    api: httpx.AsyncClient, s3: S3Receiver
) -> None:
    """Validations at 4 and 8 of 10 steps: checkpoint-10 is saved after the last upload, so S3 never
    gets it (why the client makes both intervals divide max_train_steps)."""
    done = await run_with_s3(api, s3, trainer_config(**{**VALIDATED, "validation_step_interval": 4}))
    assert done["status"] == "succeeded", done["error"]
    prefix = run_prefix(done)
    assert f"{prefix}/checkpoint-5/pytorch_lora_weights.safetensors" in s3.objects
    assert not any("checkpoint-10" in key for key in s3.objects)
    assert s3.puts[:7] == folder_at(prefix, "validation_images/step_4_validation_512x512.png")


async def test_a_dashed_output_dir_names_the_uploaded_folder(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    config = trainer_config(**VALIDATED, **{"--output_dir": "output/my-run"})
    done = await run_with_s3(api, s3, config)
    assert done["status"] == "succeeded", done["error"]
    assert "Saving checkpoint to output/my-run/checkpoint-5" in str(done["logs"])
    assert s3.objects and all(key.startswith("loras/simpletuner/my-run/") for key in s3.objects)


async def test_public_base_url_and_base_path_shape_the_output(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    done = await run_with_s3(
        api,
        s3,
        trainer_config(**VALIDATED),
        s3_public_base_url="https://cdn.example.com/",
        s3_base_path="team/runs",
    )
    assert done["output"] == "https://cdn.example.com/team/runs"
    assert s3.objects and all(key.startswith("loras/team/runs/cog-") for key in s3.objects)


async def test_upload_failure_fails_the_prediction(api: httpx.AsyncClient, s3: S3Receiver) -> None:
    s3.deny = True
    failed = await run_with_s3(api, s3, trainer_config(**VALIDATED))
    assert failed["status"] == "failed"
    assert "AccessDenied" in str(failed["error"]) and failed["output"] is None


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
