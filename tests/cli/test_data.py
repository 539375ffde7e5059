"""`simpletuner cloud data package` (local, no server) and `preview` (through a live server's REST API)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.cli import app
from simpletuner_cloud.settings import load_settings
from tests.datasets.factory import local_entry, write_environment, write_image, write_images
from tests.support.live_server import live_server
from tests.support.provider_sandbox import sandbox_mode_server

runner = CliRunner()


@pytest.fixture
def configs_dir(state_root: Path) -> Path:
    return state_root / "configs"


@pytest.fixture
def server_url() -> Iterator[str]:
    with live_server(create_app(load_settings())) as url:
        yield url


def test_package_writes_the_archive_and_manifest(configs_dir: Path, tmp_path: Path) -> None:
    write_environment(configs_dir, "env")
    out, manifest = tmp_path / "data.zip", tmp_path / "manifest.json"
    result = runner.invoke(
        app, ["cloud", "data", "package", "env", "--out", str(out), "--manifest", str(manifest)]
    )
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest in result.output.replace("\n", "")
    document = json.loads(manifest.read_text())
    assert (document["sha256"], document["size"]) == (digest, out.stat().st_size)
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [entry["path"] for entry in document["files"]]
    again = tmp_path / "again.zip"
    runner.invoke(app, ["cloud", "data", "package", str(configs_dir / "env"), "--out", str(again), "-q"])
    assert again.read_bytes() == out.read_bytes()


def test_package_refusal_prints_message_and_hint(configs_dir: Path, tmp_path: Path) -> None:
    write_environment(configs_dir, "env", datasets=[local_entry(caption_strategy="parquet")])
    result = runner.invoke(app, ["cloud", "data", "package", "env", "--out", str(tmp_path / "x.zip")])
    assert result.exit_code == 1
    assert "cannot run this dataset setup" in result.output and "hint" in result.output
    assert not (tmp_path / "x.zip").exists()


MERGED_WARNING = (
    "warning: 2 local datasets are merged into one set, as agreed (one folder each in the archive)"
)


def two_local_sets(configs_dir: Path) -> None:
    folder = write_environment(configs_dir, "env", datasets=[local_entry("a"), local_entry("b", "more")])
    write_images(folder / "more", 2)


def flat(output: str) -> str:
    return " ".join(output.split())


def test_package_of_two_local_sets_needs_merge(configs_dir: Path, tmp_path: Path) -> None:
    two_local_sets(configs_dir)
    out = tmp_path / "data.zip"
    refused = runner.invoke(app, ["cloud", "data", "package", "env", "--out", str(out)])
    assert refused.exit_code == 1
    output = flat(refused.output)
    assert (
        "error[dataset_unsupported]: The published trainer cannot run this dataset setup: 2 local" in output
    )
    assert "`merge_local_datasets: true` in the API request (`--merge` on the command line)" in output
    assert "Traceback" not in output and not out.exists()
    merged = runner.invoke(app, ["cloud", "data", "package", "env", "--out", str(out), "--merge", "-q"])
    assert merged.exit_code == 0, merged.output
    assert MERGED_WARNING in flat(merged.output)
    with zipfile.ZipFile(out) as archive:
        assert {name.split("/")[0] for name in archive.namelist()} == {"a", "b"}
        assert len(archive.namelist()) == 5  # captioned by file name: the .txt files stay home


def test_preview_of_two_local_sets_with_and_without_merge(configs_dir: Path, server_url: str) -> None:
    two_local_sets(configs_dir)
    command = ["cloud", "--url", server_url, "data", "preview", "env"]
    refused = runner.invoke(app, command)
    assert refused.exit_code == 1
    assert "(`--merge` on the command line)" in flat(refused.output)
    merged = runner.invoke(app, [*command, "--merge"], terminal_width=200)
    assert merged.exit_code == 0, merged.output
    assert MERGED_WARNING in flat(merged.output)
    body = json.loads(runner.invoke(app, [*command, "--merge", "--json"]).output)
    assert [(d["id"], d["images"]) for d in body["datasets"]] == [("a", 3), ("b", 2)]
    assert body["warnings"][0].startswith("2 local datasets are merged into one set, as agreed")


def test_preview_through_the_server(configs_dir: Path, server_url: str) -> None:
    folder = write_environment(configs_dir, "env")
    (folder / "data" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    result = runner.invoke(app, ["cloud", "--url", server_url, "data", "preview", "env"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "plushie" in result.output and "id_rsa" in result.output and "looks like a secret" in result.output
    assert "upload limit 104,857,600 bytes" in result.output
    as_json = runner.invoke(app, ["cloud", "--url", server_url, "data", "preview", str(folder), "--json"])
    body = json.loads(as_json.output)
    assert body["datasets"][0]["skipped"][0]["path"] == "id_rsa" and body["within_limit"] is True


def test_preview_of_a_missing_config_fails_cleanly(server_url: str) -> None:
    result = runner.invoke(app, ["cloud", "--url", server_url, "data", "preview", "nope"])
    assert result.exit_code == 1
    assert "No environment or config named `nope`" in result.output and "Traceback" not in result.output
    assert "simpletuner examples install" in result.output.replace("\n", " ")


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    with sandbox_mode_server() as (base, _):
        yield base


def test_upload_shows_the_bytes_sent_and_then_reuse(sandbox_url: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["examples", "install"]).exit_code == 0
    out = tmp_path / "inspect.zip"
    packaged = runner.invoke(app, ["cloud", "data", "package", "flux-lora-example", "--out", str(out), "-q"])
    assert packaged.exit_code == 0, packaged.output
    size, digest = out.stat().st_size, hashlib.sha256(out.read_bytes()).hexdigest()
    command = ["cloud", "--url", sandbox_url, "data", "upload", "flux-lora-example", "--consent"]
    first = runner.invoke(app, command, terminal_width=200)
    assert first.exit_code == 0, first.output
    assert f"Uploaded: {size:,} bytes, 24 files, sha256 {digest}" in first.output  # what `package` wrote
    assert "reused: false" in first.output
    second = runner.invoke(app, command, terminal_width=200)
    assert second.exit_code == 0, second.output
    assert f"Reused the live upload of this archive (nothing sent): {size:,} bytes" in second.output
    assert "reused: true" in second.output
    as_json = runner.invoke(app, [*command, "--json"])
    final = json.loads(as_json.stdout)
    assert (final["state"], final["bytes_done"], final["result"]["reused"]) == ("succeeded", size, True)


def test_upload_without_consent_says_how_to_give_it(sandbox_url: str) -> None:
    runner.invoke(app, ["examples", "install"])
    result = runner.invoke(app, ["cloud", "--url", sandbox_url, "data", "upload", "flux-lora-example"])
    assert result.exit_code == 1
    output = result.output.replace("\n", " ")
    assert "error[consent_required]" in output and "run the command again with `--consent`" in output


def test_upload_of_two_local_sets_with_merge(configs_dir: Path, sandbox_url: str) -> None:
    two_local_sets(configs_dir)
    command = ["cloud", "--url", sandbox_url, "data", "upload", "env", "--consent"]
    refused = runner.invoke(app, command)
    assert refused.exit_code == 1
    assert "error[dataset_unsupported]" in flat(refused.output)
    merged = runner.invoke(app, [*command, "--merge"], terminal_width=200)
    assert merged.exit_code == 0, merged.output
    assert ", 5 files, sha256 " in merged.output and "reused: false" in merged.output
    assert MERGED_WARNING in flat(merged.output)  # the upload says what the merge loses, too


def textfile_env(configs_dir: Path) -> None:
    folder = write_environment(
        configs_dir, "env", datasets=[local_entry(caption_strategy="textfile")], images=0
    )
    write_image(folder / "data" / "IMG_1.jpg", caption="sks dog on the beach")
    write_image(folder / "data" / "IMG_2.jpg", caption="AC/DC poster [live]")


def test_package_names_images_after_their_captions_when_agreed(configs_dir: Path, tmp_path: Path) -> None:
    textfile_env(configs_dir)
    out = tmp_path / "data.zip"
    refused = runner.invoke(app, ["cloud", "data", "package", "env", "--out", str(out)])
    assert refused.exit_code == 1 and "--rename-to-captions" in flat(refused.output)
    renamed = runner.invoke(
        app, ["cloud", "data", "package", "env", "--out", str(out), "--rename-to-captions", "-q"]
    )
    assert renamed.exit_code == 0, renamed.output
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [
            "AC_DC_poster_[live].jpg", "AC_DC_poster_[live].txt",
            "sks_dog_on_the_beach.jpg", "sks_dog_on_the_beach.txt",
        ]  # fmt: skip


def test_preview_lists_the_captions_that_change_and_the_archive_names(
    configs_dir: Path, server_url: str
) -> None:
    textfile_env(configs_dir)
    command = ["cloud", "--url", server_url, "data", "preview", "env", "--rename-to-captions", "--files"]
    result = runner.invoke(app, command, terminal_width=250)
    assert result.exit_code == 0, result.output
    output = flat(result.output)
    assert "Captions that change" in output and "AC DC poster [live]" in output  # `[live]` is not markup
    assert "IMG_1.jpg │ sks_dog_on_the_beach.jpg" in output and "Archive contents" in output


def test_upload_with_rename_to_captions(configs_dir: Path, sandbox_url: str) -> None:
    textfile_env(configs_dir)
    command = ["cloud", "--url", sandbox_url, "data", "upload", "env", "--consent", "--rename-to-captions"]
    result = runner.invoke(app, command, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert ", 4 files, sha256 " in result.output
    assert "each image is named after its caption in the archive, as agreed" in flat(result.output)


def test_package_into_a_missing_folder_or_onto_a_folder_fails_cleanly(
    configs_dir: Path, tmp_path: Path
) -> None:
    write_environment(configs_dir, "env")
    missing = runner.invoke(app, ["cloud", "data", "package", "env", "-o", str(tmp_path / "no" / "x.zip")])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert flat(missing.output).startswith(
        f"error[output_folder_missing]: There is no folder {tmp_path / 'no'}"
    )
    assert "hint: Create it first" in flat(missing.output)
    onto = runner.invoke(app, ["cloud", "data", "package", "env", "-o", str(tmp_path), "-q"])
    assert onto.exit_code == 1 and "Traceback" not in onto.output
    assert flat(onto.output).startswith(f"error[output_is_folder]: {tmp_path} is a folder")
    assert f"-o {tmp_path / 'env.zip'}" in flat(onto.output)
    manifest = runner.invoke(
        app,
        [
            "cloud",
            "data",
            "package",
            "env",
            "-o",
            str(tmp_path / "x.zip"),
            "--manifest",
            str(tmp_path / "no" / "m.json"),
        ],
    )
    assert manifest.exit_code == 1 and "error[output_folder_missing]" in manifest.output
    assert not (tmp_path / "x.zip").exists()  # refused before anything was written


def test_upload_by_path_without_consent_names_the_preview_to_run(sandbox_url: str, state_root: Path) -> None:
    runner.invoke(app, ["examples", "install"])
    config = state_root / "configs" / "flux-lora-example" / "config.json"
    result = runner.invoke(app, ["cloud", "--url", sandbox_url, "data", "upload", str(config)])
    assert result.exit_code == 1
    assert flat(result.stderr).endswith(
        f"hint: Review what would be sent with `simpletuner cloud data preview {config}`, then run the "
        "command again with `--consent`."
    )
