"""`simpletuner sandbox`: serve the offline Replicate emulator on its own port."""

from __future__ import annotations

import typer


def run(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(5005, help="Port to listen on."),
    step_seconds: float = typer.Option(None, help="Seconds per simulated training step (default 0.5)."),
) -> None:
    """Serve a Replicate-compatible API with a simulated simpletuner/advanced-trainer."""
    raise typer.Exit(code=2)  # replaced by the sandbox work (issue 3)
