"""`POST /api/cloud/data-consent/preview`: per-dataset files, bytes and skipped files, archive size and
limit, for named environments and inline JSON; refusals keep their codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from simpletuner_cloud.datasets.configs import load_inline
from simpletuner_cloud.datasets.environments import load_environment
from simpletuner_cloud.datasets.plan import WHAT_WORKS
from simpletuner_cloud.datasets.preflight import run_preflight
from tests.datasets.factory import (
    LIMIT,
    local_entry,
    write_environment,
    write_image,
    write_images,
    write_oversized_environment,
)

PREVIEW = "/api/cloud/data-consent/preview"


@pytest.fixture
def configs_dir(state_root: Path) -> Path:
    return state_root / "configs"


async def preview(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post(PREVIEW, json=body)


NOT_READ = "caption file the trainer does not read (the dataset is captioned by file name)"


def uploaded(
    dataset_id: str, folder: Path, taken: list[str], skipped: list[tuple[str, str, str]], prefix: str = ""
) -> dict[str, Any]:
    """The preview of one uploaded set: `taken` file names (relative), `skipped` (path, reason, why)."""
    reasons: dict[str, int] = {}
    for _, reason, _ in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "id": dataset_id, "action": "upload", "reason": "local images, sent as the `images` archive",
        "folder": str(folder), "files": len(taken),
        "images": sum(1 for name in taken if not name.endswith(".txt")),
        "bytes": sum((folder / name).stat().st_size for name in taken),
        "skipped": [{"path": p, "reason": r, "explanation": e} for p, r, e in skipped],
        "skipped_count": len(skipped), "skipped_reasons": dict(sorted(reasons.items())),
        "archive_files": [{"path": name, "archive_name": f"{prefix}{name}"} for name in taken],
        "caption_changes": [],
    }  # fmt: skip


def filename_set(dataset_id: str, folder: Path, count: int, prefix: str = "") -> dict[str, Any]:
    """A set made by `write_images`, captioned by file name: the .txt files stay home."""
    names = [f"sks_plushie_photo_{index}" for index in range(count)]
    return uploaded(
        dataset_id,
        folder,
        [f"{name}.jpg" for name in names],
        [(f"{name}.txt", "caption_not_used", NOT_READ) for name in names],
        prefix,
    )


async def test_preview_of_a_named_environment(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", images=2)
    (folder / "data" / ".env").write_text("HF_TOKEN=hf_x")
    response = await preview(client, {"config": "env"})
    assert response.status_code == 200, response.text
    size = run_preflight(load_environment("env", configs_dir)).archive_size
    expected = filename_set("plushie", folder / "data", 2)
    expected["skipped"].insert(
        0,
        {"path": ".env", "reason": "secret", "explanation": "looks like a secret (.env, key or certificate)"},
    )
    expected |= {"skipped_count": 3, "skipped_reasons": {"caption_not_used": 2, "secret": 1}}
    assert response.json() == {
        "config": "env",
        "mode": "upload",
        "needs_upload": True,
        "rename_to_captions": False,
        "datasets": [expected],
        "archive_bytes": size,
        "limit_bytes": 104_857_600,
        "within_limit": True,
        "error": None,
        "warnings": [],
        "problems": [],
    }


async def test_inline_remote_preview_needs_no_upload(client: httpx.AsyncClient) -> None:
    body = {
        "config_json": {"model_family": "flux"},
        "dataloader_json": [{"id": "hub", "type": "huggingface", "dataset_name": "me/set"}],
    }
    response = await preview(client, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["mode"], result["needs_upload"], result["archive_bytes"]) == ("remote", False, 0)
    assert result["datasets"] == [
        {"id": "hub", "action": "remote", "reason": "Hugging Face dataset, read by the trainer",
         "folder": None, "files": None, "images": None, "bytes": None, "skipped": [], "skipped_count": None,
         "skipped_reasons": {}, "archive_files": [], "caption_changes": []}
    ]  # fmt: skip


async def test_an_oversized_archive_is_shown_with_the_error(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    size = write_oversized_environment(configs_dir)
    response = await preview(client, {"config": "env"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["archive_bytes"], result["limit_bytes"], result["within_limit"]) == (size, LIMIT, False)
    assert result["error"] == {
        "code": "upload_too_large",
        "message": f"The dataset archive would be {size:,} bytes ({size / 2**20:.1f} MiB); "
        "Replicate's upload limit is 104,857,600 bytes (100 MiB).",
        "hint": "Resize the images (about 1024 px on the short side is enough for most LoRAs) or "
        "convert them to JPEG/WebP, remove images you do not need, or use a remote dataset backend "
        "(a private Hugging Face dataset with `type: huggingface`).",
        "details": {"archive_bytes": size, "limit_bytes": LIMIT},
    }
    assert result["datasets"][0]["bytes"] == LIMIT


async def test_inline_json_with_a_local_folder(client: httpx.AsyncClient, tmp_path: Path) -> None:
    data = tmp_path / "inline"
    write_images(data, 2)
    body = {
        "config_json": {"--model_family": "flux", "resolution": 512},
        "dataloader_json": [local_entry(folder=str(data))],
    }
    response = await preview(client, body)
    assert response.status_code == 200, response.text
    config = load_inline(body["config_json"], body["dataloader_json"])
    assert response.json() == {
        "config": None, "mode": "upload", "needs_upload": True, "rename_to_captions": False,
        "datasets": [filename_set("plushie", data, 2)],
        "archive_bytes": run_preflight(config).archive_size, "limit_bytes": LIMIT, "within_limit": True,
        "error": None, "warnings": [], "problems": [],
    }  # fmt: skip


async def test_refusals_are_json_errors_with_code_message_and_hint(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    write_environment(configs_dir, "env", datasets=[local_entry(), {"id": "hub", "type": "huggingface"}])
    response = await preview(client, {"config": "env"})
    message = (
        "The published trainer cannot run this dataset setup: local (plushie) and remote (hub) datasets "
        "are mixed: the trainer ignores the upload when it is given a dataset list."
    )
    assert (response.status_code, response.json()) == (
        422,
        {"error": {"code": "dataset_unsupported", "message": message, "hint": WHAT_WORKS}},
    )


async def test_empty_dataset_is_dataset_empty(client: httpx.AsyncClient, configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", images=0)
    (folder / "data").mkdir()
    response = await preview(client, {"config": "env"})
    assert (response.status_code, response.json()) == (
        422,
        {
            "error": {
                "code": "dataset_empty",
                "message": f"Dataset `plushie` has no images in {folder / 'data'}.",
                "hint": "Put .jpg/.png/.webp images in the folder; hidden files, links that leave it and "
                "secrets are never taken. `simpletuner cloud data preview` lists what was skipped and why.",
                "details": {"skipped": [], "skipped_count": 0, "skipped_reasons": {}},
            }
        },
    )


async def test_missing_config_is_config_missing(client: httpx.AsyncClient, configs_dir: Path) -> None:
    response = await preview(client, {"config": "nope"})
    assert (response.status_code, response.json()) == (
        404,
        {
            "error": {
                "code": "config_missing",
                "message": f"No environment or config named `nope` (looked in {configs_dir} and as a path).",
                "hint": "Run `simpletuner examples install` for the example, set SIMPLETUNER_CONFIGS_DIR, or "
                "give a path to a folder holding config.json. Only JSON configs are read (config.json + "
                "multidatabackend.json); TOML and .env are not.",
            }
        },
    )


@pytest.mark.parametrize(
    "body", [{}, {"config": "env", "config_json": {}}, {"config_json": {"model_family": "flux"}}]
)
async def test_the_request_names_one_source(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await preview(client, body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")


async def test_remote_peers_need_the_admin_token(app: Any, configs_dir: Path) -> None:
    from tests.api.conftest import remote_client

    write_environment(configs_dir, "env")
    async with remote_client(app) as remote:
        assert (await remote.post(PREVIEW, json={"config": "env"})).status_code == 401
        assert (await remote.get("/api/cloud/configs")).status_code == 401
        upload = await remote.post("/api/cloud/data/uploads", json={"config": "env", "consent": True})
        assert (upload.status_code, upload.json()["error"]["code"]) == (401, "unauthorized")


# Several local datasets: refused unless the request agrees to merge them (and they are compatible).

TWO_SETS = [local_entry("a"), local_entry("b", "more", repeats=2)]
MERGE_REFUSAL = {
    "error": {
        "code": "dataset_unsupported",
        "message": "The published trainer cannot run this dataset setup: 2 local datasets (`a`, `b`), and it "
        "trains on one uploaded image set. What would work: use one local dataset (set `disabled: true` on "
        "the others); or agree to merge them into one set with `merge_local_datasets: true` in the API "
        "request (`--merge` on the command line), which loses per-set repeats, size filters, crops and "
        "caption strategy differences (every image is captioned by its file name and centre-cropped "
        "square); or push the data to a (private) Hugging Face dataset and use `type: huggingface` with "
        "your HF token.",
        "hint": "`simpletuner cloud data preview <config> --merge` shows what the merged set would hold.",
    }
}


async def test_two_local_sets_are_refused_naming_the_opt_in(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    folder = write_environment(configs_dir, "env", datasets=TWO_SETS)
    write_images(folder / "more", 2)
    for body in ({"config": "env"}, {"config": "env", "merge_local_datasets": False}):
        response = await preview(client, body)
        assert (response.status_code, response.json()) == (422, MERGE_REFUSAL)


async def test_two_local_sets_are_merged_when_the_request_agrees(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    folder = write_environment(configs_dir, "env", datasets=TWO_SETS)
    write_images(folder / "more", 2)
    response = await preview(client, {"config": "env", "merge_local_datasets": True})
    assert response.status_code == 200, response.text
    size = run_preflight(load_environment("env", configs_dir), merge_local=True).archive_size
    assert response.json() == {
        "config": "env", "mode": "upload", "needs_upload": True, "rename_to_captions": False,
        "datasets": [
            filename_set("a", folder / "data", 3, "a/"), filename_set("b", folder / "more", 2, "b/")
        ],
        "archive_bytes": size, "limit_bytes": LIMIT, "within_limit": True, "error": None,
        "warnings": [
            "2 local datasets are merged into one set, as agreed (one folder each in the archive); lost: "
            "per-set repeats, size filters, crops and caption strategy differences (every image is "
            "captioned by its file name and centre-cropped square).",
            "`b`: repeats=2 is lost.",
        ],
        "problems": [],
    }  # fmt: skip


async def test_local_sets_of_different_resolutions_are_refused_even_when_the_request_agrees(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    write_images(tmp_path / "a", 1)
    write_images(tmp_path / "b", 1)
    body = {
        "config_json": {"model_family": "flux", "resolution": 1024},
        "dataloader_json": [
            local_entry("a", str(tmp_path / "a")),
            local_entry("b", str(tmp_path / "b"), resolution=512),
        ],
        "merge_local_datasets": True,
    }
    response = await preview(client, body)
    message = (
        "The published trainer cannot run this dataset setup: the local datasets use different resolutions "
        "(a: 1024, b: 512); the trainer builds one set with one resolution from the upload, so they cannot "
        "be merged."
    )
    assert (response.status_code, response.json()) == (
        422,
        {"error": {"code": "dataset_unsupported", "message": message, "hint": WHAT_WORKS}},
    )


async def test_a_10000_character_config_name_is_a_field_error(client: httpx.AsyncClient) -> None:
    """Before: `File name too long` from the file system, answered as a 500."""
    response = await preview(client, {"config": "a" * 10_000})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "validation_error",
        "Invalid value for `config`: String should have at most 4096 characters",
    )
    long_component = await preview(client, {"config": "a" * 4000})
    assert (long_component.status_code, long_component.json()["error"]["code"]) == (404, "config_missing")


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ([local_entry(resolution={"a": 1})],
         "Dataset `plushie` has a `resolution` that is not a positive number (a JSON object)."),
        ([local_entry(resolution=[1]), local_entry("two", resolution=[1])],
         "Dataset `plushie` has a `resolution` that is not a positive number (a list)."),
        ([local_entry(resolution=-1)], "Dataset `plushie` has a `resolution` that is not a positive number "
         "(a number)."),
        ([local_entry(resolution_type=["pixel"])],
         "Dataset `plushie` has a `resolution_type` that is not text (a list)."),
        ([local_entry(dataset_id={"x": 1})], "Dataset #1 has an id that is not text (a JSON object)."),  # type: ignore[arg-type]
    ],
)  # fmt: skip
async def test_dataset_shapes_that_were_500s_are_config_errors(
    client: httpx.AsyncClient, configs_dir: Path, datasets: list[dict[str, Any]], message: str
) -> None:
    write_environment(configs_dir, "env", datasets=datasets)
    (configs_dir / "env" / "two").mkdir()
    response = await preview(client, {"config": "env", "merge_local_datasets": True})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "config_invalid"
    assert response.json()["error"]["message"] == message


async def test_a_numeric_string_resolution_is_still_a_resolution(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    write_environment(configs_dir, "env", datasets=[local_entry(resolution="1024")])
    response = await preview(client, {"config": "env"})
    assert response.status_code == 200, response.text


async def test_inline_configs_nested_too_deeply_are_refused(client: httpx.AsyncClient) -> None:
    body = '{"config_json": {"deep": ' + "[" * 500 + "]" * 500 + '}, "dataloader_json": []}'
    response = await client.post(PREVIEW, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert (
        response.json()["error"]["message"] == "config_json nests lists or objects more than 32 levels deep."
    )


# Textfile captions that differ from the file names: refused, or with the user's agreement each image is
# named after its caption in the archive, and the preview shows exactly what the archive holds.


async def test_textfile_captions_are_renamed_into_the_archive_when_the_request_agrees(
    client: httpx.AsyncClient, configs_dir: Path
) -> None:
    folder = write_environment(
        configs_dir, "env", datasets=[local_entry(caption_strategy="textfile")], images=0
    )
    data = folder / "data"
    write_image(data / "IMG_0001.jpg", caption="sks plushie on a desk")
    write_image(data / "IMG_0002.jpg", caption="sks plushie on a desk")
    write_image(data / "IMG_0003.png", caption="AC/DC poster\nsecond line")
    refused = await preview(client, {"config": "env"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "dataset_unsupported")
    response = await preview(client, {"config": "env", "rename_to_captions": True})
    assert response.status_code == 200, response.text
    expected = uploaded(
        "plushie",
        data,
        ["IMG_0001.jpg", "IMG_0001.txt", "IMG_0002.jpg", "IMG_0002.txt", "IMG_0003.png", "IMG_0003.txt"],
        [],
    )
    expected["archive_files"] = [
        {"path": "IMG_0003.png", "archive_name": "AC_DC_poster.png"},
        {"path": "IMG_0003.txt", "archive_name": "AC_DC_poster.txt"},
        {"path": "IMG_0002.jpg", "archive_name": "same-caption-2/sks_plushie_on_a_desk.jpg"},
        {"path": "IMG_0002.txt", "archive_name": "same-caption-2/sks_plushie_on_a_desk.txt"},
        {"path": "IMG_0001.jpg", "archive_name": "sks_plushie_on_a_desk.jpg"},
        {"path": "IMG_0001.txt", "archive_name": "sks_plushie_on_a_desk.txt"},
    ]
    expected["caption_changes"] = [
        {
            "path": "IMG_0003.png", "archive_name": "AC_DC_poster.png", "caption": "AC/DC poster",
            "trainer_caption": "AC DC poster",
            "changes": [
                {"code": "first_line",
                 "explanation": "the caption file has several lines; only the first is used"},
                {"code": "replaced",
                 "explanation": "characters that cannot be in a file name (/, \\, control characters) became "
                 "spaces"},
            ],
        }
    ]  # fmt: skip
    config = load_environment("env", configs_dir)
    assert response.json() == {
        "config": "env", "mode": "upload", "needs_upload": True, "rename_to_captions": True,
        "datasets": [expected],
        "archive_bytes": run_preflight(config, rename_to_captions=True).archive_size, "limit_bytes": LIMIT,
        "within_limit": True, "error": None,
        "warnings": [
            "`plushie`: each image is named after its caption in the archive, as agreed (the files on disk "
            "keep their names); the preview lists every caption that had to change."
        ],
        "problems": [],
    }  # fmt: skip


async def test_a_preview_names_at_most_fifty_skipped_files_and_counts_the_rest(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_images(data, 1, textfiles=False)
    for index in range(300):
        (data / f"private_{index:03d}.conf").write_text("x")
    (data / ".ssh").mkdir()
    body = {"config_json": {"model_family": "flux"}, "dataloader_json": [local_entry(folder=str(data))]}
    response = await preview(client, body)
    assert response.status_code == 200, response.text
    item = response.json()["datasets"][0]
    explanation = "not an image, video, audio or caption file (the trainer would ignore it)"
    assert (item["skipped"], item["skipped_count"], item["skipped_reasons"]) == (
        [{"path": ".ssh/", "reason": "hidden", "explanation": "hidden file or folder"}]
        + [
            {"path": f"private_{i:03d}.conf", "reason": "not_training_data", "explanation": explanation}
            for i in range(49)
        ],
        301,
        {"hidden": 1, "not_training_data": 300},
    )


async def test_a_preview_of_etc_does_not_list_every_file_name_under_it(client: httpx.AsyncClient) -> None:
    body = {"config_json": {"model_family": "flux"}, "dataloader_json": [local_entry(folder="/etc")]}
    response = await preview(client, body)
    assert response.status_code in (200, 422), response.text
    answer = response.json()
    found = answer["datasets"][0] if response.status_code == 200 else answer["error"]["details"]
    assert len(found["skipped"]) <= 50 < found["skipped_count"] == sum(found["skipped_reasons"].values())
