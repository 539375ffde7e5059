"""`simpletuner server`: start the control plane (FastAPI under uvicorn) on sockets it binds itself,
print where to reach it and what it trusts."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from simpletuner_cloud.settings import SANDBOX_BANNER, Settings, load_settings

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI


LOGIN_LINK_ENV = "SIMPLETUNER_PRINT_LOGIN_LINK"


def print_login_links(bases: list[str], token: str, token_path: str) -> None:
    """The login link is for the person at this console. It carries the admin token, so it is printed
    only to a terminal: under systemd, docker or a `> server.log` the output is kept, and a secret must
    never be (SIMPLETUNER_PRINT_LOGIN_LINK=1 prints it anyway). Otherwise it says where the token is."""
    if not (sys.stdout.isatty() or os.environ.get(LOGIN_LINK_ENV) == "1"):
        typer.echo(
            f"login link (sets a session cookie for remote browsers): {bases[0]}/login?token=<the token in "
            f"{token_path}> (not printed: this output is not a terminal, and may be kept in a log)"
        )
        return
    if len(bases) == 1:
        typer.echo(f"login link (sets a session cookie for remote browsers): {bases[0]}/login?token={token}")
    else:
        typer.echo("login links (set a session cookie for remote browsers), one per address of this machine:")
        for each in bases:
            typer.echo(f"    {each}/login?token={token}")


def trust_message(settings: Settings) -> str:
    if settings.require_auth:
        return "local trust: off (SIMPLETUNER_REQUIRE_AUTH=1): every API request needs the admin token"
    if settings.trust_local is None:
        if settings.host_is_loopback:
            return "local trust: on: requests from this machine need no token"
        return (
            f"local trust: off, because the server listens on {settings.host}, not only on loopback: "
            "a forwarder on this machine (socat, ssh -R) would make remote requests look local, so every "
            "API request needs the admin token (open a login link below). SIMPLETUNER_TRUST_LOCAL=1 "
            "turns it back on."
        )
    if settings.trust_local:
        return "local trust: on (SIMPLETUNER_TRUST_LOCAL=1): requests from this machine need no token"
    return "local trust: off (SIMPLETUNER_TRUST_LOCAL=0): every API request needs the admin token"


def load_settings_or_exit(**overrides: object) -> Settings:
    """Settings for a command that starts a server; a bad `SIMPLETUNER_*` value is a message naming the
    variable, not a pydantic traceback."""
    from pydantic import ValidationError

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = "SIMPLETUNER_" + ".".join(str(part) for part in error["loc"]).upper()
            typer.echo(f"Invalid setting {name}: {error['msg']}.", err=True)
        raise typer.Exit(code=2) from exc


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
        server_header=False,
        access_log=False,
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_concurrency,
    )


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
    from simpletuner_cloud.api.security import shown_path
    from simpletuner_cloud.cli.addresses import listening_sockets, reachable_hosts
    from simpletuner_cloud.security.admin_token import ensure_admin_token
    from simpletuner_cloud.security.files import read_secret_file

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if sandbox:
        overrides["sandbox"] = True
    settings = load_settings_or_exit(**overrides)
    try:
        # The in-process sandbox is called at 127.0.0.1, so a host that does not cover it gets a
        # loopback listener beside it.
        sockets, ipv4_too = listening_sockets(
            settings.host, settings.port, with_ipv4_loopback=settings.sandbox
        )
    except OSError as exc:
        typer.echo(f"Cannot listen on {settings.host} port {settings.port}: {exc.strerror or exc}", err=True)
        typer.echo("Hint: pick another --port, or stop the program that uses this one.", err=True)
        raise typer.Exit(code=1) from exc
    token = ensure_admin_token(settings)
    bases = [f"http://{name}:{settings.port}" for name in reachable_hosts(settings.host, ipv4_too=ipv4_too)]
    base = bases[0]
    typer.echo(f"simpletuner server on {base} (web UI: {base}/cloud, API reference: {base}/docs)")
    typer.echo(trust_message(settings))
    if settings.sandbox:
        saved = read_secret_file(settings.sandbox_token_path) == settings.sandbox_token
        where = shown_path(settings.sandbox_token_path) if saved else "SIMPLETUNER_SANDBOX_TOKEN"
        typer.echo(f"{SANDBOX_BANNER} (Replicate emulator at {base}/sandbox/v1, token in {where})")
    print_login_links(bases, token, shown_path(settings.admin_token_path))
    app = create_app(settings)
    uvicorn.Server(uvicorn_config(app, settings)).run(sockets=sockets)
