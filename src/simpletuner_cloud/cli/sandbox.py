"""`simpletuner sandbox`: serve the offline Replicate emulator on its own port, optionally with
faults switched on from the start (the same knobs as `POST /faults`, see docs/sandbox.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simpletuner_cloud.settings import load_settings


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
    return update


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
) -> None:
    """Serve a Replicate-compatible API with a simulated simpletuner/advanced-trainer."""
    import uvicorn

    from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app

    settings = load_settings()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = (public_url or f"http://{shown_host}:{port}").rstrip("/")
    config = SandboxConfig(
        public_base_url=base,
        token=settings.sandbox_token,
        accept_any_r8_token=any_r8_token,
        step_seconds=step_seconds if step_seconds is not None else settings.sandbox_step_seconds,
        boot_seconds=boot_seconds,
        max_simulated_steps=max_simulated_steps,
        retention_seconds=retention_seconds,
        data_dir=data_dir,
    )
    app = create_sandbox_app(config)
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
    )
    try:
        app.state.sandbox.faults = app.state.sandbox.faults.merged(faults)
    except ValueError as exc:
        typer.echo(f"Invalid fault flags: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo("sandbox: no GPUs, no charges (offline Replicate emulator)")
    typer.echo(f"base URL: {base}    (API at {base}/v1)")
    typer.echo(f"token:    {config.token}")
    typer.echo(f"try:      REPLICATE_BASE_URL={base} REPLICATE_API_TOKEN={config.token} python -c ...")
    if faults:
        typer.echo(f"faults:   {faults}")
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, access_log=False)
