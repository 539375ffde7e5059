"""The `simpletuner` command. One module per command group; `server` and `sandbox` start
processes, everything under `cloud` talks to a running server's REST API."""

from __future__ import annotations

import typer

from simpletuner_cloud.cli import cloud, examples, sandbox, server

app = typer.Typer(
    name="simpletuner",
    help="Train SimpleTuner LoRAs on Replicate's GPUs from your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("server", help=server.run.__doc__)(server.run)
app.command("sandbox", help=sandbox.run.__doc__)(sandbox.run)
app.add_typer(examples.app, name="examples")
app.add_typer(cloud.app, name="cloud")


def main() -> None:
    app()
