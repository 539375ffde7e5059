"""`simpletuner examples ...`: install the shipped example environments into the configs folder."""

from __future__ import annotations

import typer

from simpletuner_cloud.cli.output import console
from simpletuner_cloud.services.datasets import EXAMPLE_NAME, install_example
from simpletuner_cloud.settings import load_settings

app = typer.Typer(help="Example training environments.", no_args_is_help=True)


@app.command("install")
def install(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing copy (your edits are lost)."),
) -> None:
    """Install the Flux LoRA example as the environment `flux-lora-example`."""
    target, copied = install_example(load_settings(), force=force)
    if copied:
        console.print(f"Installed the example environment `{EXAMPLE_NAME}` in {target}")
    else:
        console.print(f"`{EXAMPLE_NAME}` is already installed in {target} (use --force to overwrite it).")
