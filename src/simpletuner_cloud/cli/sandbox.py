"""`simpletuner sandbox`: serve the offline Replicate emulator on its own port, optionally with
faults switched on from the start (the same knobs as `POST /faults`, see docs/sandbox.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from simpletuner_cloud.security.sandbox_token import new_sandbox_token
from simpletuner_cloud.settings import (
    DEFAULT_SANDBOX_TOKEN,
    Settings,
    is_loopback_bind_address,
    load_settings,
)


def fault_update(
    *,
    fail_at_step: int | None = None,
    starting_delay: float | None = None,
    rate_limit_next: int = 0,
    retry_after: int = 5,
    errors_next: int = 0,
    error_status: int = 503,
    error_html: bool = False,
    errors_after_create: bool = False,
    latency: float = 0.0,
    late_validation: bool = False,
    webhook_drop: list[str] | None = None,
    webhook_duplicate: bool = False,
    webhook_delay: float = 0.0,
    webhook_reorder: bool = False,
    status_indicator: str = "none",
    drops_next: int = 0,
    drops_before_create: bool = False,
    slow_body: float = 0.0,
    slow_upload: float = 0.0,
    run_timeout: float | None = None,
    scripts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `POST /faults` body the flags describe (only what differs from the defaults)."""
    update: dict[str, Any] = {}
    if fail_at_step is not None:
        update["fail_at_step"] = fail_at_step
    if starting_delay:
        update["starting_delay"] = starting_delay
    if rate_limit_next:
        update["rate_limit"] = {"count": rate_limit_next, "retry_after": retry_after}
    if errors_next:
        update["server_errors"] = {
            "count": errors_next,
            "status": error_status,
            "html": error_html,
            "after_create": errors_after_create,
        }
    if latency:
        update["latency"] = {"seconds": latency}
    if late_validation:
        update["late_validation"] = True
    webhooks: dict[str, Any] = {}
    if webhook_drop:
        webhooks["drop"] = True if "all" in webhook_drop else webhook_drop
    if webhook_duplicate:
        webhooks["duplicate"] = True
    if webhook_delay:
        webhooks["delay"] = webhook_delay
    if webhook_reorder:
        webhooks["reorder"] = True
    if webhooks:
        update["webhooks"] = webhooks
    if status_indicator != "none":
        update["status_page"] = {"indicator": status_indicator}
    if drops_next:
        update["connection_drops"] = {"count": drops_next, "after_create": not drops_before_create}
    if slow_body or slow_upload:
        update["slow_bodies"] = {"response_delay": slow_body, "request_delay": slow_upload}
    if run_timeout is not None:
        update["run_timeout_seconds"] = run_timeout
    if scripts:
        update["scripts"] = scripts
    return update


def parse_scripts(values: list[str] | None) -> list[dict[str, Any]]:
    """`--script` values: each one JSON object, as in the `scripts` list of `POST /faults`."""
    scripts = []
    for value in values or []:
        try:
            script = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--script must be a JSON object ({exc.msg}): {value}") from exc
        if not isinstance(script, dict):
            raise ValueError(f"--script must be a JSON object: {value}")
        scripts.append(script)
    return scripts


def sandbox_token(settings: Settings, host: str) -> tuple[str, str | None]:
    """The token this sandbox accepts, and a warning to print. `SIMPLETUNER_SANDBOX_TOKEN` or the
    installation's random token; on a non-loopback address never the public test token."""
    token = settings.effective_sandbox_token()
    if is_loopback_bind_address(host):
        return token, None
    warning = (
        f"warning: the sandbox listens on {host}, so other machines can reach it: whoever has the token "
        "can read uploaded datasets and the webhook signing secret. Prefer --host 127.0.0.1."
    )
    if token == DEFAULT_SANDBOX_TOKEN:
        token = new_sandbox_token()
        warning += " SIMPLETUNER_SANDBOX_TOKEN is the public test token, so this run uses a new random one."
    return token, warning


def run(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(5005, help="Port to listen on."),
    step_seconds: float = typer.Option(
        None, help="Seconds per simulated training step (default 0.5; SIMPLETUNER_SANDBOX_STEP_SECONDS)."
    ),
    public_url: str = typer.Option(
        None, help="Base URL clients reach the sandbox at (default http://HOST:PORT)."
    ),
    data_dir: Path = typer.Option(
        None, help="Keep uploaded files and outputs here (default: a temp folder)."
    ),
    retention_seconds: float = typer.Option(
        3600.0, help="Remove finished jobs' data after this many seconds."
    ),
    boot_seconds: float = typer.Option(1.0, help="Seconds a new job spends in `starting`."),
    max_simulated_steps: int = typer.Option(20, help="At most this many progress lines per run."),
    any_r8_token: bool = typer.Option(False, help="Also accept any well-formed 40-character r8_ token."),
    fail_at_step: int = typer.Option(None, help="Fault: runs fail when they reach this step."),
    starting_delay: float = typer.Option(0.0, help="Fault: extra seconds in `starting` (negative: forever)."),
    rate_limit_next: int = typer.Option(0, help="Fault: the next N API calls get 429."),
    retry_after: int = typer.Option(5, help="Retry-After seconds for --rate-limit-next."),
    errors_next: int = typer.Option(0, help="Fault: the next N API calls get a 5xx."),
    error_status: int = typer.Option(503, help="Status for --errors-next (500-599)."),
    error_html: bool = typer.Option(False, help="Send --errors-next as an HTML page, like an edge proxy."),
    errors_after_create: bool = typer.Option(False, help="Create the job first, then answer the 5xx."),
    latency: float = typer.Option(0.0, help="Fault: add this many seconds to every API call."),
    late_validation: bool = typer.Option(False, help="Fault: bad inputs fail the run instead of a 422."),
    webhook_drop: list[str] = typer.Option(
        None, help="Fault: drop these webhook events (start, output, logs, completed, all)."
    ),
    webhook_duplicate: bool = typer.Option(False, help="Fault: deliver every webhook twice."),
    webhook_delay: float = typer.Option(0.0, help="Fault: wait this many seconds before each webhook."),
    webhook_reorder: bool = typer.Option(False, help="Fault: deliver webhooks out of order."),
    status_indicator: str = typer.Option(
        "none", help="Status page indicator: none, minor, major or critical."
    ),
    drops_next: int = typer.Option(
        0, help="Fault: drop the connection of the next N creates, after the job is created."
    ),
    drops_before_create: bool = typer.Option(
        False, help="With --drops-next: drop any next N API calls before anything is created."
    ),
    slow_body: float = typer.Option(0.0, help="Fault: seconds before each 1 KiB chunk of every answer."),
    slow_upload: float = typer.Option(0.0, help="Fault: seconds before each request-body chunk is read."),
    run_timeout: float = typer.Option(
        None, help="Fault: fail runs after this many seconds of running (default 1800, as Replicate)."
    ),
    script: list[str] = typer.Option(
        None,
        help='Fault: a scripted outcome as JSON, e.g. \'{"times": 1, "outcome": "fail", "at_step": 3}\'.',
    ),
) -> None:
    """Serve a Replicate-compatible API with a simulated simpletuner/advanced-trainer."""
    import uvicorn

    from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app

    settings = load_settings()
    token, warning = sandbox_token(settings, host)
    if warning and any_r8_token:
        typer.echo(
            f"--any-r8-token accepts every well-formed token, which would open the sandbox on {host} "
            "to anyone: use it only with a loopback --host.",
            err=True,
        )
        raise typer.Exit(code=2)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = (public_url or f"http://{shown_host}:{port}").rstrip("/")
    config = SandboxConfig(
        public_base_url=base,
        token=token,
        accept_any_r8_token=any_r8_token,
        step_seconds=step_seconds if step_seconds is not None else settings.sandbox_step_seconds,
        boot_seconds=boot_seconds,
        max_simulated_steps=max_simulated_steps,
        retention_seconds=retention_seconds,
        data_dir=data_dir,
    )
    app = create_sandbox_app(config)
    try:
        scripts = parse_scripts(script)
    except ValueError as exc:
        typer.echo(f"Invalid fault flags: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    faults = fault_update(
        fail_at_step=fail_at_step,
        starting_delay=starting_delay,
        rate_limit_next=rate_limit_next,
        retry_after=retry_after,
        errors_next=errors_next,
        error_status=error_status,
        error_html=error_html,
        errors_after_create=errors_after_create,
        latency=latency,
        late_validation=late_validation,
        webhook_drop=webhook_drop,
        webhook_duplicate=webhook_duplicate,
        webhook_delay=webhook_delay,
        webhook_reorder=webhook_reorder,
        status_indicator=status_indicator,
        drops_next=drops_next,
        drops_before_create=drops_before_create,
        slow_body=slow_body,
        slow_upload=slow_upload,
        run_timeout=run_timeout,
        scripts=scripts,
    )
    try:
        app.state.sandbox.faults = app.state.sandbox.faults.merged(faults)
    except ValueError as exc:
        typer.echo(f"Invalid fault flags: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo("sandbox: no GPUs, no charges (offline Replicate emulator)")
    if warning:
        typer.echo(warning, err=True)
    typer.echo(f"base URL: {base}    (API at {base}/v1)")
    typer.echo(f"token:    {config.token}")
    typer.echo(f"try:      REPLICATE_BASE_URL={base} REPLICATE_API_TOKEN={config.token} python -c ...")
    if faults:
        typer.echo(f"faults:   {faults}")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, access_log=False)
