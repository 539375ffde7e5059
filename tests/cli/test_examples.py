"""`simpletuner examples install`: copies the Flux LoRA example into the configs folder, once."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app
from simpletuner_cloud.datasets.environments import load_training_config
from simpletuner_cloud.datasets.preflight import run_preflight

runner = CliRunner()


@pytest.fixture
def configs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "configs"
    monkeypatch.setenv("SIMPLETUNER_CONFIGS_DIR", str(folder))
    return folder


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first SOF marker: a JPEG that parses this far is a real image."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    index = 2
    while index < len(data):
        marker, length = data[index + 1], struct.unpack(">H", data[index + 2 : index + 4])[0]
        if 0xC0 <= marker <= 0xC2:
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    raise AssertionError("no frame header")


def test_install_copies_the_example_and_says_where(configs_dir: Path) -> None:
    result = runner.invoke(app, ["examples", "install"])
    assert result.exit_code == 0, result.output
    target = configs_dir / "flux-lora-example"
    assert "flux-lora-example" in result.output and str(configs_dir) in result.output.replace("\n", "")
    config = json.loads((target / "config.json").read_text())
    assert config["data_backend_config"] == "flux-lora-example/multidatabackend.json"
    images = sorted((target / "datasets" / "sks-plushie").glob("*.jpg"))
    assert len(images) == 12
    for image in images:
        width, height = jpeg_size(image.read_bytes())
        assert 64 <= width <= 256 and 64 <= height <= 256
        assert image.with_suffix(".txt").read_text().strip() == image.stem.replace("_", " ")


def test_the_installed_example_passes_preflight(configs_dir: Path) -> None:
    runner.invoke(app, ["examples", "install"])
    preflight = run_preflight(load_training_config("flux-lora-example", configs_dir))
    assert preflight.plan.mode == "upload" and preflight.plan.warnings == []
    assert preflight.selections[0].media_count == 12 and preflight.selections[0].skipped == []
    assert 0 < preflight.archive_size < 200_000


def test_install_is_idempotent_and_force_overwrites(configs_dir: Path) -> None:
    runner.invoke(app, ["examples", "install"])
    edited = configs_dir / "flux-lora-example" / "config.json"
    edited.write_text("{}")
    again = runner.invoke(app, ["examples", "install"])
    assert again.exit_code == 0 and "already installed" in again.output
    assert edited.read_text() == "{}"
    forced = runner.invoke(app, ["examples", "install", "--force"])
    assert forced.exit_code == 0 and "Installed" in forced.output
    assert json.loads(edited.read_text())["model_family"] == "flux"


def test_make_run_installs_the_example_before_starting_the_server() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    commands = [line.strip() for line in recipe.splitlines()[1:]]
    install = commands.index("$(BIN)/simpletuner examples install")
    assert any("simpletuner server" in command for command in commands[install + 1 :])
