"""`simpletuner examples ...`: install the shipped example environments into the configs folder."""

from __future__ import annotations

import typer

app = typer.Typer(help="Example training environments.", no_args_is_help=True)


@app.command("install")
def install() -> None:
    """Install the Flux LoRA example as the environment `flux-lora-example`."""
    raise typer.Exit(code=0)  # replaced by the datasets work (issue 5)
