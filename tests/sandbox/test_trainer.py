"""The simulated trainer: log lines in the real trainer's exact shapes, dataset staging, the Hub
path, the output strings and the trainer's own failure messages."""

from __future__ import annotations

import ast
import base64
import io
import json
import re
import struct
import tarfile
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

import simpletuner_cloud
from simpletuner_cloud.sandbox import trainer_logs as tl
from simpletuner_cloud.sandbox.dataset_archive import ArchiveRejected, count_samples
from simpletuner_cloud.sandbox.outputs import normalise_hub_id
from simpletuner_cloud.sandbox.trainer_options import unknown_options
from tests.sandbox.conftest import (
    TRAINER,
    create,
    fast_config,
    images_zip,
    latest_version,
    running,
    trainer_config,
    trainer_input,
    upload,
    wait_until,
)

# tqdm: `{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate:5.2f}it/s{postfix}]`
TQDM = re.compile(
    r"^Epoch \d+/\d+, Steps: [ \d]{2}\d%\|[ ▏▎▍▌▋▊▉█]{10}\| (\d+)/(\d+) "
    r"\[\d\d:\d\d<(?:\d\d:\d\d|\?), +(?:\d+\.\d\d(?:it/s|s/it)|\?it/s), step_loss=[\d.]+, lr=[\d.e-]+\]$"
)


async def run(api: httpx.AsyncClient, **inputs: object) -> dict[str, Any]:
    created = await create(api, {**(await trainer_input(api)), **inputs})
    return await wait_until(api, f"/v1/predictions/{created['id']}")


async def test_log_lines_follow_the_trainer_contract(api: httpx.AsyncClient) -> None:
    done = await run(api)
    lines = str(done["logs"]).splitlines()
    assert re.fullmatch(r"\[COG\] Webhook receiver started on http://127\.0\.0\.1:\d+/webhook", lines[0])
    assert "[STAGE] ⏳ Loading base model" in lines
    start = lines.index("***** Running training *****")
    assert lines[start - 1 : start + 9] == [
        "[TRAINING] ",
        "***** Running training *****",
        "-  Num batches = 3",
        "-  Num Epochs = 1",
        "  - Current Epoch = 1",
        "-  Total train batch size (w. parallel, distributed & accumulation) = 1",
        "  - Instantaneous batch size per device = 1",
        "  - Gradient Accumulation steps = 1",
        "-  Total optimization steps = 10",
        "-  Total optimization steps remaining = 10",
    ]
    assert lines[start + 9] == "Epoch 1/1 Steps:   0%|          | 0/10 [00:00<?, ?it/s]"
    bars = [TQDM.match(line) for line in lines if line.startswith("Epoch 1/1, Steps")]
    assert bars and all(bars) and [m.group(1) for m in bars if m][-1] == "10"
    checkpoint = next(
        i for i, line in enumerate(lines) if line.startswith("[INFO] Checkpoint: `Step 5 of 10:")
    )
    title = lines[checkpoint].removeprefix("[INFO] ").partition("`: ")[0] + "`"
    assert lines[checkpoint] == f"[INFO] {title}: {title}"
    assert re.fullmatch(
        r"\[STAGE\] ⏳ Saving Checkpoint: Saving checkpoint to output/cog/cog-[0-9a-f]{10}/checkpoint-5",
        lines[checkpoint + 1],
    )
    assert lines[checkpoint + 2].startswith(
        "[STAGE] ✓ Saving Checkpoint: Saved checkpoint to output/cog/cog-"
    )
    assert lines[checkpoint + 3] == "[CHECKPOINT] Checkpoint saved"
    assert "[STAGE] ✓ Training Complete (100.0%): Training run complete." in lines
    assert lines.index("[STAGE] ✓ Training Complete (100.0%): Training run complete.") + 1 == lines.index(
        "[COG] Webhook receiver stopped"
    )
    assert not any(line.startswith("[TRAINING] Step ") for line in lines)  # never printed (1.3)
    tail = lines.index("=== debug.log tail ===")
    assert re.fullmatch(
        r"\[RANK 0\] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[DEBUG\] \(\w+\) Step 2 of 10: .*", lines[tail + 1]
    )
    assert lines[-1] == done["output"]
    assert re.fullmatch(r"Training complete\. Output: output/cog/cog-[0-9a-f]{10}", str(done["output"]))


async def test_return_logs_false_has_no_tail(api: httpx.AsyncClient) -> None:
    done = await run(api, return_logs=False)
    assert "=== debug.log tail ===" not in str(done["logs"])
    assert str(done["logs"]).splitlines()[-1] == "[COG] Webhook receiver stopped"


async def test_long_runs_are_capped_in_simulated_steps(api: httpx.AsyncClient) -> None:
    done = await run(api, max_train_steps=1000)
    logs = str(done["logs"])
    assert "-  Total optimization steps = 1000" in logs
    bars = [line for line in logs.splitlines() if line.startswith("Epoch 1/1, Steps")]
    assert len(bars) == 5 and bars[-1].split("| ")[1].startswith("1000/1000")


async def test_steps_come_from_config_when_the_input_is_absent(api: httpx.AsyncClient) -> None:
    done = await run(api, config_json=trainer_config(max_train_steps=7, checkpoint_step_interval=0))
    assert "-  Total optimization steps = 7" in str(done["logs"])
    assert "[CHECKPOINT]" not in str(done["logs"])


async def test_validation_stage_when_configured(api: httpx.AsyncClient) -> None:
    config = trainer_config(validation_prompt="a photo of sks", validation_step_interval=5)
    done = await run(api, config_json=config)
    assert str(done["logs"]).count("[STAGE] ✓ Running Validation") == 2


async def test_hub_push_is_recorded_and_returned(api: httpx.AsyncClient) -> None:
    """`hub_model_id` forces push_checkpoints_to_hub: each checkpoint is pushed when it is saved,
    then the final model; nothing leaves the machine, the pushes are recorded."""
    done = await run(api, hub_model_id="https://huggingface.co/acme/sks-lora/", hf_token="hf_" + "x" * 30)
    assert done["output"] == "https://huggingface.co/acme/sks-lora"
    logs = str(done["logs"])
    assert "[TRAINING] Status: uploading_model" in logs and "[TRAINING] Status: model_available" in logs
    assert logs.splitlines()[-1] == "Model published to: https://huggingface.co/acme/sks-lora"
    pushes = (await api.get("/_sandbox/hub")).json()
    run_name = pushes[0]["run"]
    assert re.fullmatch(r"cog-[0-9a-f]{10}", run_name)
    checkpoint = ["pytorch_lora_weights.safetensors", "training_state.json"]
    assert pushes == [
        {
            "repo_id": "acme/sks-lora",
            "job_id": done["id"],
            "run": run_name,
            "kind": "checkpoint",
            "step": step,
            "files": [f"checkpoint-{step}/{name}" for name in checkpoint],
        }
        for step in (5, 10)
    ] + [
        {
            "repo_id": "acme/sks-lora",
            "job_id": done["id"],
            "run": run_name,
            "kind": "final",
            "step": None,
            "files": ["pytorch_lora_weights.safetensors", "README.md"],
        }
    ]


async def test_checkpoints_beyond_the_total_limit_are_removed(app: FastAPI, api: httpx.AsyncClient) -> None:
    done = await run(
        api,
        config_json=trainer_config(max_train_steps=20, checkpoint_step_interval=4, checkpoints_total_limit=2),
    )
    assert done["status"] == "succeeded", done["error"]
    assert str(done["logs"]).count("[CHECKPOINT] Checkpoint saved") == 5
    job = re.search(r"output/cog/(cog-[0-9a-f]{10})", str(done["logs"]))
    assert job is not None
    folder = app.state.sandbox.outputs_dir / done["id"] / job.group(1)
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-16", "checkpoint-20"]
    assert (folder / "pytorch_lora_weights.safetensors").is_file() and (folder / "README.md").is_file()


async def test_epoch_intervals_schedule_validations(api: httpx.AsyncClient) -> None:
    """With steps from epochs (2 epochs of 3 images), `validation_epoch_interval` 1 validates at the
    end of each epoch."""
    config = trainer_config(
        max_train_steps=0, num_train_epochs=2, validation_prompt="sks", validation_epoch_interval=1
    )
    done = await run(api, config_json=config)
    assert done["status"] == "succeeded", done["error"]
    assert "-  Total optimization steps = 6" in str(done["logs"])
    assert str(done["logs"]).count("[STAGE] ✓ Running Validation") == 2


UNKNOWN_KEY_CONFIG = {
    "model_family": "flux",
    "learning_rat": 0.0001,
    "max_train_steps": 10,
    "num_train_epochs": 0,
}


async def test_an_unknown_config_key_fails_the_run_like_the_trainers_parser(api: httpx.AsyncClient) -> None:
    """argparse refuses the run and the trainer logs its raw arguments, the S3 keys from the Secret
    inputs included (trainer-contract 2.1): the reason our client must check keys first."""
    done = await run(
        api,
        config_json=json.dumps(UNKNOWN_KEY_CONFIG),
        s3_bucket="loras",
        s3_region="us-east-1",
        s3_access_key="AKIALEAKEDBYPARSER01",
        s3_secret_key="leaked-secret-key",
    )
    assert (done["status"], done["error"]) == ("failed", "unrecognized arguments: --learning_rat=0.0001")
    lines = str(done["logs"]).splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("[COG] Webhook receiver started on http://127.0.0.1:")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[ERROR\] "
    assert re.fullmatch(stamp + r"Could not parse input: \[.*\]", lines[1])
    assert re.fullmatch(
        stamp + r"argparse\.ArgumentError: unrecognized arguments: --learning_rat=0\.0001", lines[2]
    )
    assert lines[3] == (
        "[ERROR] Command Line Argument Error: Failed to parse command line arguments. "
        "Please check the server logs for details."
    )
    assert re.fullmatch(stamp + r"Argument parsing failed for input: \[.*\]", lines[4])
    assert lines[5] == "[COG] Webhook receiver stopped"
    arguments = ast.literal_eval(lines[1].split("Could not parse input: ", 1)[1])
    assert arguments[:4] == [
        "--model_family=flux",
        "--learning_rat=0.0001",
        "--max_train_steps=10",
        "--num_train_epochs=0",
    ]
    assert arguments[4].startswith("--publishing_config=")
    publishing = json.loads(arguments[4].removeprefix("--publishing_config="))
    assert publishing[0]["access_key"] == "AKIALEAKEDBYPARSER01"  # the leak, as the real trainer prints it
    assert publishing[0]["secret_key"] == "leaked-secret-key"
    assert arguments[5].startswith("--output_dir=output/cog/cog-") and "--enable_nsfw_check=true" in arguments
    assert done["output"] is None and (await api.get("/_sandbox/hub")).json() == []


async def test_every_unknown_key_is_named_dashed_or_not(api: httpx.AsyncClient) -> None:
    config = {"--model_family": "sdxl", "--use_dora_x": True, "validation_stepz": 5, "max_train_steps": 4}
    done = await run(api, config_json=json.dumps(config))
    assert done["error"] == "unrecognized arguments: --use_dora_x=true --validation_stepz=5"


@pytest.mark.parametrize(
    "overrides", [{"reject_unknown_config_keys": False}, {"extra_trainer_options": ("learning_rat",)}]
)
async def test_unknown_keys_lenient_knob_and_extra_options(tmp_path: Path, overrides: dict[str, Any]) -> None:
    async with running(fast_config(tmp_path, **overrides)) as (_, api):
        done = await run(api, config_json=json.dumps(UNKNOWN_KEY_CONFIG))
    assert done["status"] == "succeeded", done["error"]


def test_the_documented_example_config_is_all_known_options() -> None:
    """Every key of the shipped example (trainer-contract section 4) is one the parser knows."""
    example = Path(simpletuner_cloud.__file__).parent / "examples" / "flux-lora" / "config.json"
    assert unknown_options(json.loads(example.read_text())) == []


async def test_hub_without_token_fails_at_once(api: httpx.AsyncClient) -> None:
    done = await run(api, hub_model_id="acme/sks-lora")
    assert done["status"] == "failed"
    assert done["error"] == "hf_token is required when using hub_model_id for HuggingFace Hub publishing."
    assert done["logs"] == ""


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        ({"config_json": None}, "No training config found at config/config.json."),
        ({"config_json": "{}"}, "No training config found at config/config.json."),
        ({"config_json": "/srv/config.json"}, "config_json file not found: /srv/config.json"),
        ({"images": None}, "Either dataset_archive or dataloader config must be provided."),
        ({"dataloader_json": "[]"}, "Must provide at least one data backend in the dataloader config."),
        (
            {
                "dataloader_json": json.dumps(
                    [{"id": "a", "type": "local", "instance_data_dir": "/home/me/pics"}]
                )
            },
            "The following dataset directories do not exist: /home/me/pics",
        ),
    ],
)
async def test_trainer_failures(api: httpx.AsyncClient, inputs: dict[str, object], error: str) -> None:
    done = await run(api, **inputs)
    assert (done["status"], done["error"]) == ("failed", error)


async def test_config_json_that_is_not_json(api: httpx.AsyncClient) -> None:
    done = await run(api, config_json="{oops")
    assert str(done["error"]).startswith("config_json looks like JSON but failed to parse: ")


async def test_archive_problems_fail_the_run(api: httpx.AsyncClient) -> None:
    not_archive = await upload(api, b"just text", name="notes.txt")
    created = await create(api, {"images": not_archive["urls"]["get"], "config_json": trainer_config()})
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["error"] == "Unsupported dataset archive format. Use .zip or .tar."


async def test_deleted_input_file(api: httpx.AsyncClient) -> None:
    uploaded = await upload(api)
    await api.delete(f"/v1/files/{uploaded['id']}")
    created = await create(api, {"images": uploaded["urls"]["get"], "config_json": trainer_config()})
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["status"] == "failed" and "404" in str(done["error"])


async def test_data_uri_images(api: httpx.AsyncClient) -> None:
    uri = "data:application/zip;base64," + base64.b64encode(images_zip(2)).decode()
    created = await create(api, {"images": uri, "config_json": trainer_config()})
    done = await wait_until(api, f"/v1/predictions/{created['id']}")
    assert done["status"] == "succeeded" and "-  Num batches = 2" in str(done["logs"])


async def test_unknown_inputs_are_dropped_with_a_warning(api: httpx.AsyncClient) -> None:
    done = await run(api, lycoris_json="{}", webhook_config="x")
    assert done["status"] == "succeeded"
    assert done["input"]["lycoris_json"] == "{}"  # echoed as submitted
    assert 'Warning: unexpected input "lycoris_json" was ignored' in str(done["logs"])
    assert 'Warning: unexpected input "webhook_config" was ignored' in str(done["logs"])


def _tar(names: list[str], mode: Literal["w:gz", "w:xz"] = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b"data"))
    return buffer.getvalue()


async def test_a_tar_dataset_and_dashed_config_keys(api: httpx.AsyncClient) -> None:
    """`images` may be a tar (detected by content, whatever its name); `--key` config spellings count."""
    uploaded = await upload(api, _tar(["set/a.png", "set/a.txt", "set/b.jpg"]), name="dataset.bin")
    config = {"--model_family": "sdxl", "--lora_rank": 8, "--max_train_steps": 4, "num_train_epochs": 0}
    version = await latest_version(api)
    created = await api.post(
        f"/v1/models/{TRAINER}/versions/{version}/trainings",
        json={
            "destination": "sandbox/my-lora",
            "input": {"images": uploaded["urls"]["get"], "config_json": json.dumps(config)},
        },
    )
    done = await wait_until(api, f"/v1/trainings/{created.json()['id']}")
    assert done["status"] == "succeeded", done["error"]
    assert "-  Num batches = 2" in done["logs"] and "-  Total optimization steps = 4" in done["logs"]
    weights = (await api.get(done["output"]["weights"])).content
    (size,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + size])
    down = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"
    assert header[down]["shape"] == [8, 640]


def test_archive_detection_by_content() -> None:
    assert count_samples(images_zip(4)) == 4
    assert count_samples(_tar(["a/one.jpg", "a/one.txt", "two.webp"])) == 2
    assert count_samples(_tar(["x.png"], mode="w:xz")) == 1
    with pytest.raises(ArchiveRejected, match=r"^Unsupported dataset archive format\. Use \.zip or \.tar\.$"):
        count_samples(b"PK but not really")
    with pytest.raises(ArchiveRejected, match="No images"):
        count_samples(_tar(["captions.txt"]))


@pytest.mark.parametrize("name", ["../evil.png", "/etc/passwd.png", "a/../../evil.png"])
def test_archive_traversal_guard(name: str) -> None:
    with pytest.raises(ArchiveRejected) as caught:
        count_samples(_tar([name]))
    assert str(caught.value) == f"Unsafe tar path detected: {name}"


def test_stage_and_progress_shapes() -> None:
    assert (
        tl.stage(tl.RUNNING, "VAE Caching (bucket 1.0)", percent=12.345)
        == "[STAGE] ⏳ VAE Caching (bucket 1.0) (12.3%)"
    )
    assert tl.stage(tl.OTHER, "Resume Checkpoint") == "[STAGE] • Resume Checkpoint"
    assert tl.stage(tl.FAILED, "Training Aborted") == "[STAGE] ✗ Training Aborted"
    assert tl.training_complete() == "[STAGE] ✓ Training Complete (100.0%): Training run complete."
    assert tl.progress(1, 1, 4, 10, 2.0, 0.1234, 1e-4) == (
        "Epoch 1/1, Steps:  40%|████      | 4/10 [00:02<00:03,  2.00it/s, step_loss=0.123, lr=0.0001]"
    )
    assert tl.progress(1, 1, 1, 20, 1.0, 0.38, 4e-5) == (  # partial cells are eighths
        "Epoch 1/1, Steps:   5%|▌         | 1/20 [00:01<00:19,  1.00it/s, step_loss=0.38, lr=4e-5]"
    )
    assert tl.progress(1, 2, 1, 10, 4.0, 0.1, 1e-4) == (
        "Epoch 1/2, Steps:  10%|█         | 1/10 [00:04<00:36,  4.00s/it, step_loss=0.1, lr=0.0001]"
    )
    assert tl.progress(1, 1, 10, 10, 3.0, 0.1, 1e-4).startswith("Epoch 1/1, Steps: 100%|██████████| 10/10 [")


def test_hub_id_normalisation() -> None:
    assert normalise_hub_id("https://huggingface.co/acme/lora/tree/main") == "acme/lora"
    assert normalise_hub_id(" acme/lora ") == "acme/lora"
