"""`/api/cloud/data/uploads`: refusals before anything is sent (whole error bodies: consent, dataset,
size, trainer inputs), then package + upload against `simpletuner server --sandbox` with byte progress
over Server-Sent Events, reuse of the same archive, and the sandbox trainer reading what was uploaded."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.plan import WHAT_WORKS
from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.replicate.errors import token_missing
from simpletuner_cloud.sandbox.dataset_archive import sample_captions
from simpletuner_cloud.services.datasets import install_example, package_dataset
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN, load_settings
from simpletuner_cloud.trainer.inputs import HubDestination, JobSpec, build_trainer_inputs
from simpletuner_cloud.trainer.schema import check_trainer_inputs
from tests.api.test_data import MERGE_REFUSAL, TWO_SETS
from tests.datasets.factory import (
    JPEG_START,
    LIMIT,
    local_entry,
    write_environment,
    write_image,
    write_images,
    write_oversized_environment,
)
from tests.support.provider_sandbox import sandbox_mode_server
from tests.support.waiting import eventually_sync

UPLOADS = "/api/cloud/data/uploads"
SETTINGS = "/api/cloud/providers/replicate"
CONSENT_REQUIRED = {
    "code": "consent_required",
    "message": "This job uploads your training images to Replicate's upload servers; confirm it first.",
    "hint": "Review what would be sent with `simpletuner cloud data preview` (or "
    '`POST /api/cloud/data-consent/preview`), then send the request again with "consent": true '
    "(`--consent` on the command line).",
}
CONSENT_DENIED = {
    "code": "consent_denied",
    "message": "Uploading training data is turned off (data consent: deny), and this job needs its images "
    "uploaded to Replicate.",
    "hint": "Change data consent to ask or allow in Cloud -> Settings, or use a remote dataset "
    "(a Hugging Face dataset with `type: huggingface`) so nothing is uploaded.",
}


@pytest.fixture
def configs_dir(state_root: Path) -> Path:
    return state_root / "configs"


# Refusals: the in-process app (no Replicate at all), so nothing could have been sent.


async def test_ask_needs_consent_in_the_request(client: httpx.AsyncClient, configs_dir: Path) -> None:
    write_environment(configs_dir, "env")
    response = await client.post(UPLOADS, json={"config": "env"})
    assert (response.status_code, response.json()) == (428, {"error": CONSENT_REQUIRED})


async def test_deny_refuses_even_with_consent(client: httpx.AsyncClient, configs_dir: Path) -> None:
    write_environment(configs_dir, "env")
    assert (await client.put(SETTINGS, json={"data_consent": "deny"})).status_code == 200
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    assert (response.status_code, response.json()) == (403, {"error": CONSENT_DENIED})


async def test_consent_given_goes_on_to_the_provider(client: httpx.AsyncClient, configs_dir: Path) -> None:
    write_environment(configs_dir, "env")
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    assert (response.status_code, response.json()) == (400, token_missing().to_body())


async def test_unsupported_setup_is_refused_saying_what_works(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    write_environment(configs_dir, "env", datasets=[local_entry(caption_strategy="instanceprompt")])
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    message = (
        "The published trainer cannot run this dataset setup: `plushie`: `instanceprompt` captions are lost: "
        "the trainer captions uploads by file name."
    )
    assert (response.status_code, response.json()) == (
        422,
        {"error": {"code": "dataset_unsupported", "message": message, "hint": WHAT_WORKS}},
    )


async def test_two_local_sets_are_refused_unless_the_request_agrees_to_merge(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    folder = write_environment(configs_dir, "env", datasets=TWO_SETS)
    write_images(folder / "more", 2)
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    assert (response.status_code, response.json()) == (422, MERGE_REFUSAL)
    # Agreed: the dataset passes, and the request goes on to the provider (no token in this app).
    agreed = await client.post(UPLOADS, json={"config": "env", "consent": True, "merge_local_datasets": True})
    assert (agreed.status_code, agreed.json()) == (400, token_missing().to_body())


async def test_missing_folder_is_dataset_missing(client: httpx.AsyncClient, configs_dir: Path) -> None:
    write_environment(configs_dir, "env", datasets=[local_entry(folder="gone")])
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    looked = [configs_dir / "env" / "gone", configs_dir / "gone", configs_dir.parent / "gone"]
    looked.append(Path.cwd() / "gone")
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "dataset_missing",
                "message": "The folder of dataset `plushie` (gone) does not exist. Looked in: "
                + ", ".join(str(path) for path in looked),
                "hint": "Fix instance_data_dir in multidatabackend.json; relative paths start at the "
                "environment folder.",
            }
        },
    )


async def test_no_images_is_dataset_empty(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", images=0)
    (folder / "data").mkdir()
    (folder / "data" / ".env").write_text("HF_TOKEN=hf_x")
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "dataset_empty",
                "message": f"Dataset `plushie` has no images in {folder / 'data'} (1 skipped file).",
                "hint": "Put .jpg/.png/.webp images in the folder; hidden files, links that leave it and "
                "secrets are never taken. `simpletuner cloud data preview` lists what was skipped and why.",
                "details": {
                    "skipped": [{"path": ".env", "reason": "secret"}],
                    "skipped_count": 1,
                    "skipped_reasons": {"secret": 1},
                },
            }
        },
    )


async def test_over_100_mib_is_upload_too_large(client: httpx.AsyncClient, configs_dir: Path) -> None:
    size = write_oversized_environment(configs_dir)
    assert size > LIMIT
    response = await client.post(UPLOADS, json={"config": "env", "consent": True})
    assert (response.status_code, response.json()) == (
        413,
        {
            "error": {
                "code": "upload_too_large",
                "message": f"The dataset archive would be {size:,} bytes ({size / 2**20:.1f} MiB); "
                "Replicate's upload limit is 104,857,600 bytes (100 MiB).",
                "hint": "Resize the images (about 1024 px on the short side is enough for most LoRAs) or "
                "convert them to JPEG/WebP, remove images you do not need, or use a remote dataset backend "
                "(a private Hugging Face dataset with `type: huggingface`).",
                "details": {"archive_bytes": size, "limit_bytes": LIMIT},
            }
        },
    )


async def test_remote_only_has_nothing_to_upload(client: httpx.AsyncClient) -> None:
    body = {
        "config_json": {"model_family": "flux"},
        "dataloader_json": [{"id": "hub", "type": "huggingface", "dataset_name": "me/set"}],
        "consent": True,
    }
    response = await client.post(UPLOADS, json=body)
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "code": "bad_request",
                "message": "This config uses only remote datasets: nothing is uploaded, so there is no "
                "archive to package.",
                "hint": "`simpletuner cloud data preview` shows what the trainer will read.",
            }
        },
    )


@pytest.mark.parametrize("path", [f"{UPLOADS}/dsu_nope", f"{UPLOADS}/dsu_nope/events"])
async def test_unknown_upload_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert (response.status_code, response.json()) == (
        404,
        {
            "error": {
                "code": "upload_not_found",
                "message": "No dataset upload `dsu_nope`.",
                "hint": "Start the upload again: `simpletuner cloud data upload <env>`.",
            }
        },
    )


# Uploads: `simpletuner server --sandbox` on a socket, so the server's calls reach the sandbox for real.


@pytest.fixture
def sandbox_server() -> Iterator[tuple[httpx.Client, FastAPI]]:
    with sandbox_mode_server() as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.01, 0.0, 3
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield http, app


def follow(http: httpx.Client, events_url: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse the Server-Sent Events of one upload until its end."""
    events, name, data = [], "message", []
    with http.stream("GET", events_url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                events.append((name, json.loads("\n".join(data))))
                name, data = "message", []
    return events


def upload(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    started = http.post(UPLOADS, json=body)
    assert started.status_code == 202, started.text
    events = follow(http, started.json()["events_url"])
    assert [name for name, _ in events][-1] == "succeeded", events
    assert all(name == "progress" for name, _ in events[:-1])
    for phase in ("packaging", "uploading"):
        done = [e["bytes_done"] for _, e in events if e["state"] == phase]
        assert done == sorted(done)
    final: dict[str, Any] = events[-1][1]
    assert http.get(f"{UPLOADS}/{final['id']}").json() == final
    return final


def sandbox_api(http: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
    response = http.request(method, f"/sandbox{path}", headers=headers, **kwargs)
    assert response.is_success, response.text
    return response.json()


def test_upload_with_progress_reuse_and_the_trainer_reads_it(
    sandbox_server: tuple[httpx.Client, FastAPI], tmp_path: Path
) -> None:
    http, app = sandbox_server
    settings = app.state.settings
    install_example(settings)
    _, packaged = package_dataset(load_settings(), "flux-lora-example", tmp_path / "package.zip")
    started = http.post(UPLOADS, json={"config": "flux-lora-example", "consent": True})
    task_id = started.json()["id"]
    assert (started.status_code, started.json()) == (
        202,
        {"id": task_id, "config": "flux-lora-example", "state": "packaging", "bytes_done": 0,
         "bytes_total": packaged.size, "archive_bytes": packaged.size, "files": 24, "warnings": [],
         "result": None,
         "error": None, "events_url": f"{UPLOADS}/{task_id}/events"},
    )  # fmt: skip
    events = follow(http, started.json()["events_url"])
    first = events[-1][1]["result"]
    assert events[-1][0] == "succeeded" and first["reused"] is False
    assert (first["sha256"], first["size"], first["files"]) == (packaged.sha256, packaged.size, 24)
    held = sandbox_api(http, "GET", f"/v1/files/{first['file_id']}")
    assert (held["checksums"]["sha256"], held["size"]) == (packaged.sha256, packaged.size)
    assert not list((settings.cloud_dir / "uploads").iterdir())  # the temporary archive is gone

    second = upload(http, {"config": "flux-lora-example", "consent": True})["result"]
    assert second == {**first, "reused": True}
    assert [f["id"] for f in sandbox_api(http, "GET", "/v1/files")["results"]] == [first["file_id"]]

    # The sandbox trainer stages the uploaded archive like the real one and finds all twelve images.
    config = load_environment("flux-lora-example", settings.effective_configs_dir)
    preflight = run_preflight(config)
    destination = HubDestination("me/plushie-lora", "hf_test_token")
    inputs = build_trainer_inputs(JobSpec(config, preflight.plan, destination, first["url"]))
    version = sandbox_api(http, "GET", "/v1/models/simpletuner/advanced-trainer")["latest_version"]
    check_trainer_inputs(inputs, version["openapi_schema"])
    prediction = sandbox_api(
        http, "POST", "/v1/predictions", json={"version": version["id"], "input": inputs}
    )

    def finished() -> dict[str, Any] | None:
        polled: dict[str, Any] = sandbox_api(http, "GET", f"/v1/predictions/{prediction['id']}")
        return polled if polled["status"] in ("succeeded", "failed", "canceled") else None

    prediction = eventually_sync(finished, what="the sandbox trainer finishing")
    assert prediction["status"] == "succeeded", prediction.get("error")
    assert "Num batches = 12" in prediction["logs"]


def test_allow_needs_no_consent_and_real_byte_progress_is_streamed(
    sandbox_server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = sandbox_server
    assert http.put(SETTINGS, json={"data_consent": "allow"}).status_code == 200
    folder = write_environment(app.state.settings.effective_configs_dir, "env", images=0)
    for index in range(3):  # 3 MiB: the upload reports each MiB it sends
        (folder / "data").mkdir(exist_ok=True)
        (folder / "data" / f"photo_{index}.jpg").write_bytes(JPEG_START + os.urandom(1024 * 1024))
    final = upload(http, {"config": "env"})
    assert final["result"]["size"] == final["bytes_done"] == final["archive_bytes"] > 3 * 1024 * 1024
    assert final["result"]["reused"] is False


def test_inline_json_is_uploaded(sandbox_server: tuple[httpx.Client, FastAPI], tmp_path: Path) -> None:
    http, _ = sandbox_server
    write_images(tmp_path / "inline-data", 2)
    body = {
        "config_json": {"model_family": "flux", "resolution": 1024},
        "dataloader_json": [local_entry(folder=str(tmp_path / "inline-data"))],
        "consent": True,
    }
    final = upload(http, body)
    assert (final["config"], final["files"], final["result"]["files"]) == (None, 2, 2)  # captions stay home


def test_two_local_sets_are_uploaded_merged_when_agreed(
    sandbox_server: tuple[httpx.Client, FastAPI], tmp_path: Path
) -> None:
    http, _ = sandbox_server
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b", 1)
    body = {
        "config_json": {"model_family": "flux", "resolution": 1024},
        "dataloader_json": [local_entry("a", str(tmp_path / "a")), local_entry("b", str(tmp_path / "b"))],
        "consent": True,
        "merge_local_datasets": True,
    }
    started = http.post(UPLOADS, json=body)
    assert started.status_code == 202
    assert started.json()["warnings"][0].startswith("2 local datasets are merged into one set, as agreed")
    final = follow(http, started.json()["events_url"])[-1][1]
    assert (final["files"], final["result"]["files"], final["result"]["reused"]) == (3, 3, False)
    assert final["warnings"] == started.json()["warnings"]


def test_twin_uploads_of_one_archive_send_it_once(sandbox_server: tuple[httpx.Client, FastAPI]) -> None:
    http, app = sandbox_server
    install_example(app.state.settings)
    body = {"config": "flux-lora-example", "consent": True}
    started = [http.post(UPLOADS, json=body).json() for _ in range(2)]
    results = [follow(http, s["events_url"])[-1][1]["result"] for s in started]
    assert sorted(r["reused"] for r in results) == [False, True]
    assert len(sandbox_api(http, "GET", "/v1/files")["results"]) == 1


def test_an_input_the_pinned_version_lacks_is_refused_before_upload(
    sandbox_server: tuple[httpx.Client, FastAPI],
) -> None:
    http, app = sandbox_server
    folder = write_environment(
        app.state.settings.effective_configs_dir, "env", options={"lora_type": "lycoris"}
    )
    (folder / "lycoris_config.json").write_text('{"algo": "lokr"}')
    versions = sandbox_api(http, "GET", "/v1/models/simpletuner/advanced-trainer/versions")["results"]
    older = versions[-1]
    assert http.put(SETTINGS, json={"version": older["id"]}).status_code == 200
    response = http.post(UPLOADS, json={"config": "env", "consent": True})
    declared = ", ".join(sorted(older["openapi_schema"]["components"]["schemas"]["Input"]["properties"]))
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "trainer_input_unknown",
                "message": "The trainer version does not declare the input `lycoris_config`.",
                "hint": "This version of the trainer is older or newer than this tool expects; pick a "
                f"version whose inputs include it (declared: {declared}).",
                "details": {"unknown": ["lycoris_config"]},
            }
        },
    )
    assert sandbox_api(http, "GET", "/v1/files")["results"] == []
    assert http.put(SETTINGS, json={"version": None}).status_code == 200  # the latest declares it
    assert upload(http, {"config": "env", "consent": True})["result"]["reused"] is False


def test_textfile_captions_renamed_into_the_archive_are_what_the_sandbox_trainer_reads(
    sandbox_server: tuple[httpx.Client, FastAPI],
) -> None:
    """Captions that differ from the file names, uploaded through the real API with the user's
    agreement: the stored archive, staged like the trainer does, captions each image with its own
    caption (cut, first line, replaced characters as the preview said), and a training run succeeds."""
    http, app = sandbox_server
    folder = write_environment(
        app.state.settings.effective_configs_dir,
        "env",
        datasets=[local_entry(caption_strategy="textfile")],
        images=0,
    )
    captions = {
        "DSC_0001.jpg": "sks plushie on a wooden desk",
        "DSC_0002.jpg": "sks plushie on a wooden desk",
        "holiday/DSC_0003.png": "sks plushie at the beach, 1/2\nsecond caption",
        "DSC_0004.webp": " ".join(["very"] * 60) + " long",
    }
    for index, (name, caption) in enumerate(captions.items()):
        write_image(folder / "data" / name, 1500 + index, seed=index)
        (folder / "data" / name).with_suffix(".txt").write_text(caption)
    body = {"config": "env", "consent": True, "rename_to_captions": True}
    preview = http.post("/api/cloud/data-consent/preview", json=body).json()
    final = upload(http, body)
    assert final["warnings"] == preview["warnings"] and final["files"] == 8

    sandbox = app.state.sandbox_app.state.sandbox
    stored = sandbox.files.get(final["result"]["file_id"], sandbox.clock.now())  # what the trainer fetches
    derived = sample_captions(stored.path.read_bytes())
    assert derived == {
        "sks_plushie_on_a_wooden_desk.jpg": "sks plushie on a wooden desk",
        "same-caption-2/sks_plushie_on_a_wooden_desk.jpg": "sks plushie on a wooden desk",
        "sks_plushie_at_the_beach,_1_2.png": "sks plushie at the beach, 1 2",
        "_".join(["very"] * 50) + ".webp": " ".join(["very"] * 50),
    }
    listed = [f["archive_name"] for f in preview["datasets"][0]["archive_files"]]
    assert [name for name in listed if not name.endswith(".txt")] == sorted(derived, key=str.encode)
    changed = {c["archive_name"]: c["trainer_caption"] for c in preview["datasets"][0]["caption_changes"]}
    cut = "_".join(["very"] * 50) + ".webp"
    assert changed == {name: derived[name] for name in ("sks_plushie_at_the_beach,_1_2.png", cut)}

    config = load_environment("env", app.state.settings.effective_configs_dir)
    preflight = run_preflight(config, rename_to_captions=True)
    destination = HubDestination("me/plushie-lora", "hf_test_token")
    inputs = build_trainer_inputs(JobSpec(config, preflight.plan, destination, final["result"]["url"]))
    version = sandbox_api(http, "GET", "/v1/models/simpletuner/advanced-trainer")["latest_version"]
    prediction = sandbox_api(
        http, "POST", "/v1/predictions", json={"version": version["id"], "input": inputs}
    )

    def finished() -> dict[str, Any] | None:
        polled: dict[str, Any] = sandbox_api(http, "GET", f"/v1/predictions/{prediction['id']}")
        return polled if polled["status"] in ("succeeded", "failed", "canceled") else None

    prediction = eventually_sync(finished, what="the sandbox trainer finishing")
    assert prediction["status"] == "succeeded", prediction.get("error")
    assert "Num batches = 4" in prediction["logs"]
