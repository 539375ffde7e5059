"""`simpletuner cloud jobs ...`: submit a training job (and follow it live with `--wait`), list, show,
wait, logs (`--follow`), cancel and rm, over the server's jobs API. Following is in `job_watch`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import typer
from rich.markup import escape

from simpletuner_cloud.cli.api_client import ServerClient, api_path
from simpletuner_cloud.cli.cloud import artifacts as artifact_commands
from simpletuner_cloud.cli.cloud.data import MERGE_HELP, config_argument, consent_hint
from simpletuner_cloud.cli.cloud.data import _reference as config_reference
from simpletuner_cloud.cli.cloud.job_watch import (
    JOB_NOT_FOUND_HINT,
    TERMINAL,
    follow_logs,
    usd,
    wait_for_job,
)
from simpletuner_cloud.cli.output import (
    console,
    err_console,
    fail,
    json_option,
    print_columns,
    print_json,
    print_mapping,
    print_table,
)
from simpletuner_cloud.domain.jobs import JobStatus

app = typer.Typer(help="Submit training jobs and follow, list, cancel and delete them.", no_args_is_help=True)

JOBS = "/api/cloud/jobs"
JSON_OPTION = json_option()
# `not_found`: an id holding `/` reaches no route once the server decoded it (it is sent encoded).
NOT_FOUND = {"job_not_found": JOB_NOT_FOUND_HINT, "not_found": JOB_NOT_FOUND_HINT}
# What `show`, `wait` and the end of a job read from a job's answer: anything else is not a job.
JOB_FIELDS = (
    "id", "status", "provider_status", "config", "hardware", "delivery", "progress", "cost",
    "prediction_id", "replicate_url", "created_at", "started_at", "completed_at", "output",
    "cancel_requested", "error", "notice", "warnings",
)  # fmt: skip


class Delivery(StrEnum):
    hub = "hub"
    s3 = "s3"
    local = "local"
    none = "none"


def _client(ctx: typer.Context) -> ServerClient:
    return ServerClient((ctx.obj or {}).get("url"))


def _get(client: ServerClient, path: str, **params: Any) -> Any:
    query = {k: v for k, v in params.items() if v is not None} or None
    return client.request("GET", path, params=query, hints=NOT_FOUND)


def _job(client: ServerClient, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.request("GET", api_path(JOBS, job_id), hints=NOT_FOUND, expect=JOB_FIELDS)
    return answer


@app.command("submit")
def submit(
    ctx: typer.Context,
    config: str = config_argument(),
    hardware: str | None = typer.Option(None, "--hardware", help="l40s (default) or a100."),
    delivery: Delivery | None = typer.Option(
        None, "--delivery", help="Where the trained weights go (none: they are not kept)."
    ),
    hub_model_id: str | None = typer.Option(
        None, "--hub-model-id", help="username/repo on the Hugging Face Hub (implies --delivery hub)."
    ),
    consent: bool = typer.Option(
        False, "--consent", help="Agree to send the images to Replicate (needed when data consent is `ask`)."
    ),
    merge: bool = typer.Option(False, "--merge", help=MERGE_HELP),
    rename_to_captions: bool = typer.Option(
        False, "--rename-to-captions", help="Name the uploaded images after their captions."
    ),
    max_train_steps: int | None = typer.Option(
        None, "--max-train-steps", min=1, help="Override the config's step count."
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Sending the same key again returns the same job, never a second one."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Follow the job live until it ends; exit 1 unless it succeeds."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Submit a training job. The server refuses it before anything is uploaded when consent, the
    dataset, the trainer's arguments, the destination or the cost limit say no."""
    client = _client(ctx)
    body: dict[str, Any] = {
        "config": config_reference(config),
        "consent": consent,
        "merge_local_datasets": merge,
        "rename_to_captions": rename_to_captions,
    }
    optional = {
        "hardware": hardware,
        "delivery": delivery.value if delivery else None,
        "hub_model_id": hub_model_id,
        "max_train_steps": max_train_steps,
        "idempotency_key": idempotency_key,
    }
    body |= {key: value for key, value in optional.items() if value is not None}
    result = client.post(f"{JOBS}/submit", body, hints=_submit_hints(config))
    job = result["job"]
    if as_json and not wait:
        print_json(result)
        return
    if not as_json:
        _show_submitted(result)
    if not wait:
        return
    final = _wait(client, job, as_json)
    if as_json:
        print_json(final)
    _end(final, quiet=as_json)


def _submit_hints(config: str) -> dict[str, str]:
    """Hints in the words of this command instead of the API's field names."""
    return {
        "consent_required": consent_hint(config),
        "delivery_required": "Choose where the weights go: `--delivery hub --hub-model-id username/repo` "
        "(with HF_TOKEN set for the server), or `--delivery none` to train without keeping them.",
    }


def _show_submitted(result: dict[str, Any]) -> None:
    job = result["job"]
    how = "Already submitted with this idempotency key" if result["idempotent_hit"] else "Submitted"
    console.print(
        f"{how}: job {job['id']} ({job['status']}), {job['hardware']}, {job['config']}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    warnings = list(result.get("warnings") or [])
    if result.get("cost_limit_warning") and result["cost_limit_warning"] not in warnings:
        warnings.append(result["cost_limit_warning"])
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)


def _wait(client: ServerClient, job: dict[str, Any], quiet: bool) -> dict[str, Any]:
    try:
        return wait_for_job(client, job, quiet)
    except KeyboardInterrupt:
        job_id = job["id"]
        err_console.print(
            f"Stopped waiting; job {job_id} was not canceled and goes on. Follow it again with "
            f"`simpletuner cloud jobs wait {job_id}`; cancel it with "
            f"`simpletuner cloud jobs cancel {job_id}`.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=130) from None


def _end(job: dict[str, Any], quiet: bool = False) -> None:
    """Exit 0 only for a job that succeeded; otherwise its error code, message and hint, exit 1
    (`quiet`: the job was printed as JSON, error included, so nothing more is printed)."""
    if job["status"] == "succeeded":
        if not quiet:
            cost = usd(job["cost"].get("final_usd"))
            console.print(
                f"Job {job['id']} succeeded" + (f"; cost {cost}" if cost else "") + ".",
                highlight=False,
                markup=False,
            )
            if job.get("output"):
                console.print(f"Output: {job['output']}", soft_wrap=True, highlight=False, markup=False)
        return
    if quiet:
        raise typer.Exit(code=1)
    error = job.get("error") or {}
    default = f"Job {job['id']} {job['status']}."
    code = error.get("code") or ("canceled" if job["status"] == "canceled" else "failed")
    hint = str(error.get("hint") or "").replace("<id>", job["id"])  # a command to run as it is
    fail(error.get("message") or default, hint, code)


@app.command("wait")
def wait_command(ctx: typer.Context, job_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Follow a job live until it ends (as `submit --wait` does); exit 1 unless it succeeded."""
    client = _client(ctx)
    final = _wait(client, _job(client, job_id), as_json)
    if as_json:
        print_json(final)
    _end(final, quiet=as_json)


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: list[JobStatus] | None = typer.Option(None, "--status", help="Only these (repeat for several)."),
    hardware: str | None = typer.Option(None, "--hardware", help="Only jobs on this hardware."),
    search: str | None = typer.Option(None, "--search", help="Text in the id, config or prediction id."),
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="Jobs per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="The next-page cursor a previous list printed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Jobs, newest first: status, hardware, progress, cost so far (or final) and when created."""
    params = {
        "status": [s.value for s in status] if status else None,
        "hardware": hardware,
        "q": search,
        "limit": limit,
        "cursor": cursor,
    }
    result = _get(_client(ctx), JOBS, **params)
    if as_json:
        print_json(result)
        return
    if not result["jobs"]:
        console.print("No jobs." if result["total"] == 0 else "No more jobs.")
        return
    # Plain columns, not a table: ids are there to be copied whole, on any terminal width.
    print_columns(
        f"Jobs ({len(result['jobs'])} of {result['total']})",
        ["id", "status", "hardware", "progress", "cost", "created"],
        ([j["id"], j["status"], j["hardware"], _progress(j), _cost(j), _when(j["created_at"])]
         for j in result["jobs"]),
    )  # fmt: skip
    if result["next_cursor"]:
        console.print(f"Next page: --cursor {result['next_cursor']}", highlight=False, soft_wrap=True)


def _progress(job: dict[str, Any]) -> str:
    progress = job["progress"]
    if progress.get("percent") is not None:
        return f"{progress['percent']:g}%"
    if progress.get("bytes_total") and job["status"] in ("packaging", "uploading"):
        return f"upload {100 * (progress.get('bytes_done') or 0) // progress['bytes_total']}%"
    return ""


def _cost(job: dict[str, Any]) -> str:
    cost = job["cost"]
    if cost.get("final_usd") is not None:
        return usd(cost["final_usd"])
    if cost.get("so_far_usd") is not None:
        return f"{usd(cost['so_far_usd'])} so far"
    return ""


def _when(value: str | None) -> str:
    """An API timestamp in the local time zone, to the second."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@app.command("show")
def show(ctx: typer.Context, job_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """One job: status, progress, cost, error with its hint, notice, warnings and timeline."""
    job = _job(_client(ctx), job_id)
    if as_json:
        print_json(job)
        return
    progress, cost = job["progress"], job["cost"]
    fields: dict[str, Any] = {
        "id": job["id"],
        "status": job["status"]
        + (f" (Replicate: {job['provider_status']})" if job["provider_status"] else ""),
        "config": job["config"],
        "hardware": f"{job['hardware']} (${Decimal(cost['usd_per_hour']):.2f}/hour)",
        "delivery": job["delivery"],
        "progress": _progress_text(progress),
        "cost": _cost(job) or "nothing yet",
        "estimated": usd(cost.get("estimated_usd")) or None,
        "prediction": job["prediction_id"],
        "replicate": job["replicate_url"],
        "created": _when(job["created_at"]),
        "started": _when(job["started_at"]),
        "completed": _when(job["completed_at"]),
        "output": job["output"],
    }
    if job["cancel_requested"] and job["status"] not in TERMINAL:
        fields["cancel"] = "requested"
    if job["error"]:
        fields["error"] = f"[{job['error']['code']}] {job['error']['message']}"
        fields["hint"] = job["error"]["hint"]
    if job["notice"]:
        fields["notice"] = f"{job['notice'].get('message', '')} {job['notice'].get('hint', '')}".strip()
    for number, warning in enumerate(job["warnings"], 1):
        fields[f"warning {number}"] = warning
    print_mapping(f"Job {job['id']}", {k: v for k, v in fields.items() if v not in (None, "")})
    timeline = [e for e in job.get("timeline") or [] if e["kind"] != "progress"]
    print_table(
        "Timeline (progress readings left out; --json has them)",
        ["at", "event", "message"],
        ([_when(e["at"]), _event_name(e), e["message"]] for e in timeline),
    )


def _progress_text(progress: dict[str, Any]) -> str:
    parts = [progress["phase"]]
    if progress.get("step") is not None:
        parts.append(f"step {progress['step']}/{progress.get('total_steps') or '?'}")
    if progress.get("percent") is not None:
        parts.append(f"{progress['percent']:g}%")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4g}")
    if progress.get("eta_seconds") is not None:
        parts.append(f"about {progress['eta_seconds']} s left")
    if progress.get("stage"):
        parts.append(str(progress["stage"]))
    return ", ".join(parts)


def _event_name(event: dict[str, Any]) -> str:
    if event["kind"] == "status":
        return (
            f"{event['from_status']} -> {event['to_status']}" if event["from_status"] else event["to_status"]
        )
    return str(event["kind"])


@app.command("logs")
def logs(
    ctx: typer.Context,
    job_id: str = typer.Argument(...),
    tail: int | None = typer.Option(None, "--tail", min=0, help="Only the last N lines."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the job ends."),
) -> None:
    """The trainer's log, as Replicate reports it."""
    client = _client(ctx)
    path = api_path(JOBS, job_id, "logs")
    first = _get(client, path, tail=tail)
    typer.echo(first["text"], nl=False)
    if not follow:
        return
    status = _job(client, job_id)["status"]
    if status not in TERMINAL:
        try:
            status = follow_logs(client, job_id, first["next_offset"])
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
    err_console.print(f"Job {job_id} {status}.", highlight=False, markup=False)


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Cancel a job (at Replicate too once it was created there). Canceling twice is harmless."""
    result = _client(ctx).post(api_path(JOBS, job_id, "cancel"), hints=NOT_FOUND)
    if as_json:
        print_json(result)
        return
    console.print(
        f"{result['message']} Job {job_id} is {result['job']['status']}.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("rm")
def remove(ctx: typer.Context, job_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Delete a finished job from this server, and say what stays elsewhere."""
    result = _client(ctx).request("DELETE", api_path(JOBS, job_id), hints=NOT_FOUND)
    if as_json:
        print_json(result)
        return
    console.print(f"Deleted job {result['deleted']} from this server.", highlight=False, markup=False)
    if result["not_deleted"]:
        console.print("Not deleted:", highlight=False)
        for item in result["not_deleted"]:
            console.print(f"- {item}", highlight=False, markup=False, soft_wrap=True)


artifact_commands.register(app)  # `jobs artifacts ID`, `jobs download ID [--to DIR]`
