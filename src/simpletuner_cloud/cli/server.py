"""`simpletuner server`: start the control plane (FastAPI under uvicorn)."""

from __future__ import annotations

import typer

from simpletuner_cloud.settings import SANDBOX_BANNER, load_settings


def run(
    host: str = typer.Option(None, help="Interface to listen on (default 127.0.0.1; SIMPLETUNER_HOST)."),
    port: int = typer.Option(None, help="Port to listen on (default 8080; SIMPLETUNER_PORT)."),
    sandbox: bool = typer.Option(
        False,
        "--sandbox",
        help="Run the offline Replicate sandbox in-process: no account, no GPUs, no charges.",
    ),
) -> None:
    """Start the server: REST API, webhook receiver and the web UI's Cloud tab."""
    import uvicorn

    from simpletuner_cloud.api.app import create_app
    from simpletuner_cloud.security.admin_token import ensure_admin_token

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if sandbox:
        overrides["sandbox"] = True
    settings = load_settings(**overrides)
    token = ensure_admin_token(settings)
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    base = f"http://{shown_host}:{settings.port}"
    typer.echo(f"simpletuner server on {base} (web UI: {base}/cloud, API reference: {base}/docs)")
    if settings.sandbox:
        typer.echo(f"{SANDBOX_BANNER} (Replicate emulator at {base}/sandbox/v1)")
    # The login link is for the person at this console; it is printed, never logged.
    typer.echo(f"login link (sets a session cookie for remote browsers): {base}/login?token={token}")
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )
