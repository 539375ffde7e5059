"""Dataset services: packaging off the event loop, exactly the archive a job would upload, refusals."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.datasets import (
    build_dataset_archive,
    install_example,
    load_config,
    package_dataset,
    preview_data_consent,
)
from simpletuner_cloud.settings import Settings, load_settings
from tests.datasets.factory import local_entry, write_environment, write_images


@pytest.fixture
def settings() -> Settings:
    return load_settings()


async def test_the_server_packages_in_a_worker_thread(settings: Settings, tmp_path: Path) -> None:
    install_example(settings)
    preflight = run_preflight(load_config(settings, "flux-lora-example"))
    loop_thread = threading.current_thread()
    seen: list[tuple[threading.Thread, bool]] = []

    def progress(done: int, total: int) -> None:
        seen.append((threading.current_thread(), _in_loop()))

    archive = await build_dataset_archive(preflight, tmp_path / "dataset.zip", progress)
    assert archive.size == preflight.archive_size == (tmp_path / "dataset.zip").stat().st_size
    assert seen and all(thread is not loop_thread and not in_loop for thread, in_loop in seen)
    # the CLI's `data package` writes the very same bytes
    _, packaged = package_dataset(settings, "flux-lora-example", tmp_path / "package.zip")
    assert packaged.sha256 == archive.sha256


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_remote_only_configs_have_nothing_to_package(settings: Settings, tmp_path: Path) -> None:
    write_environment(
        settings.effective_configs_dir,
        "remote",
        datasets=[{"id": "h", "type": "huggingface", "dataset_name": "a/b"}],
    )
    with pytest.raises(CloudError) as caught:
        package_dataset(settings, "remote", tmp_path / "x.zip")
    assert caught.value.code == "bad_request"
    assert "only remote datasets" in caught.value.message


def test_package_refuses_an_oversized_archive(settings: Settings, tmp_path: Path) -> None:
    write_environment(settings.effective_configs_dir, "env")
    with pytest.raises(CloudError) as caught:
        package_dataset(settings, "env", tmp_path / "x.zip", limit=100)
    assert caught.value.code == "upload_too_large"
    assert not (tmp_path / "x.zip").exists()


def test_two_local_sets_are_packaged_merged_only_when_agreed(settings: Settings, tmp_path: Path) -> None:
    folder = write_environment(
        settings.effective_configs_dir, "env", datasets=[local_entry("a"), local_entry("b", "more")]
    )
    write_images(folder / "more", 1)
    for refused in (
        lambda: package_dataset(settings, "env", tmp_path / "x.zip"),
        lambda: preview_data_consent(settings, "env"),
    ):
        with pytest.raises(CloudError) as caught:
            refused()
        assert caught.value.code == "dataset_unsupported" and "--merge" in caught.value.message
    assert not (tmp_path / "x.zip").exists()
    preflight, archive = package_dataset(settings, "env", tmp_path / "x.zip", merge_local=True)
    assert len(archive.manifest) == 4 and preflight.plan.warnings[0].startswith("2 local datasets are merged")
    assert preview_data_consent(settings, "env", merge_local=True).warnings == preflight.plan.warnings
