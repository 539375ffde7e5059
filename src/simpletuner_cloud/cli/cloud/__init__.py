"""`simpletuner cloud ...`: commands that talk to a running server."""

from __future__ import annotations

import typer

from simpletuner_cloud.cli.cloud import cost, data, jobs, provider, webhooks
from simpletuner_cloud.cli.output import forget_json

app = typer.Typer(help="Talk to a running simpletuner server (see --url).", no_args_is_help=True)
app.add_typer(cost.app, name="cost")
app.add_typer(data.app, name="data")
app.add_typer(jobs.app, name="jobs")
app.add_typer(provider.app, name="provider")
app.add_typer(webhooks.app, name="webhooks")


@app.callback()
def cloud(
    ctx: typer.Context,
    url: str = typer.Option(
        None, "--url", envvar="SIMPLETUNER_URL", help="Server base URL (default http://127.0.0.1:8080)."
    ),
) -> None:
    ctx.obj = {"url": url}
    forget_json()  # a command without --json prints its errors as text, whatever ran before it
