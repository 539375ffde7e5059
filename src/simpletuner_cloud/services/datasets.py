"""Dataset use cases for the API and CLI: list and read configs, preview what would be uploaded (with
consent), package the archive, and install the shipped example environment."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from simpletuner_cloud.settings import Settings

EXAMPLE_NAME = "flux-lora-example"


def install_example(settings: Settings, force: bool = False) -> tuple[Path, bool]:
    """Copy the shipped Flux LoRA example to `<configs_dir>/flux-lora-example/`. Returns (where, copied):
    an existing copy is left alone (the user may have edited it) unless `force`."""
    target = settings.effective_configs_dir / EXAMPLE_NAME
    if target.exists() and not force:
        return target, False
    source = resources.files("simpletuner_cloud") / "examples" / "flux-lora"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{EXAMPLE_NAME}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    with resources.as_file(source) as folder:
        shutil.copytree(folder, staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target, True
