"""`simpletuner cloud webhooks ...`: the flight recorder (list, show, replay) and the self-test, which
sends a signed test event through the public URL. Tables by default, the server's JSON with `--json`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape

from simpletuner_cloud.cli.api_client import ServerClient, api_path
from simpletuner_cloud.cli.output import console, fail, json_option, print_json, print_mapping, print_table

app = typer.Typer(help="Webhook deliveries: list, show, replay, and the self-test.", no_args_is_help=True)
BASE = "/api/cloud/webhooks/deliveries"
JSON_OPTION = json_option()
SHOWN_LOG_CHARACTERS = 2000  # of a shown body's logs, the end; --json prints all of it


def _client(ctx: typer.Context) -> ServerClient:
    return ServerClient((ctx.obj or {}).get("url"))


def _verdict(entry: dict[str, Any]) -> str:
    """The code and reason of a refusal, else the event and status (and why nothing changed)."""
    if entry.get("code"):
        return f"{entry['code']}: {entry.get('reason') or ''}".strip()
    parts = [f"{entry.get('event') or '?'} {entry.get('status') or ''}".strip(), entry.get("reason")]
    return "; ".join(p for p in parts if p)


@app.command("list")
def list_deliveries(
    ctx: typer.Context,
    job: str = typer.Option(None, "--job", help="Only deliveries of this job."),
    outcome: str = typer.Option(
        None, "--outcome", help="accepted, duplicate, ignored, rejected, hint or test."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="How many, newest first."),
    before: int = typer.Option(None, "--before", help="Older than this delivery id (the next page)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Recent deliveries (kept 7 days), newest first."""
    result = _client(ctx).get(BASE, job=job, outcome=outcome, limit=limit, before=before)
    if as_json:
        print_json(result)
        return
    rows = [
        (
            entry["id"],
            entry["received_at"][5:19].replace("T", " "),
            entry["outcome"],
            entry["job_id"],
            _verdict(entry),
        )
        for entry in result["deliveries"]
    ]
    columns = ["id", "received (UTC)", "outcome", "job", "what"]
    print_table("Webhook deliveries", columns, rows)
    if result.get("next_before"):
        console.print(f"More: --before {result['next_before']}", highlight=False, soft_wrap=True)


def _shown_body(body: Any) -> str:
    if (
        isinstance(body, dict)
        and isinstance(body.get("logs"), str)
        and len(body["logs"]) > SHOWN_LOG_CHARACTERS
    ):
        cut = len(body["logs"]) - SHOWN_LOG_CHARACTERS
        body = {**body, "logs": f"[... {cut} characters, see --json] " + body["logs"][-SHOWN_LOG_CHARACTERS:]}
    return json.dumps(body, indent=2, sort_keys=True)


@app.command("show")
def show(
    ctx: typer.Context,
    delivery_id: int = typer.Argument(..., help="The delivery's id (see list)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """One delivery: what arrived (headers without secrets), who sent it, what became of it, and the
    body of an accepted one."""
    result = _client(ctx).get(api_path(BASE, delivery_id))
    if as_json:
        print_json(result)
        return
    body, headers = result.pop("body", None), result.pop("headers", {})
    print_mapping(f"Webhook delivery {delivery_id}", result)
    print_table("Headers", ["header", "value"], sorted(headers.items()))
    if body is not None:
        console.print(escape(_shown_body(body)), highlight=False, soft_wrap=True)


@app.command("replay")
def replay(
    ctx: typer.Context,
    delivery_id: int = typer.Argument(..., help="An accepted delivery's id."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Apply a recorded accepted delivery again (recovery after a bug); forward-only, so replaying
    what was already applied changes nothing."""
    result = _client(ctx).post(api_path(BASE, delivery_id, "replay"))
    if as_json:
        print_json(result)
        return
    changed = "status changed" if result["status_changed"] else "status unchanged"
    console.print(
        escape(
            f"Replayed delivery {delivery_id} on job {result['job_id']}: {result['status']} ({changed}, "
            f"{result['new_log_characters']} new log characters)."
        ),
        highlight=False,
        soft_wrap=True,
    )


@app.command("test")
def self_test(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Send a signed test event through the public URL and say what happened on the way."""
    result = _client(ctx).post("/api/cloud/providers/replicate/test-webhook")
    if as_json:
        print_json(result)
        return
    shown = {
        "url": result["url"],
        "reached receiver": "yes" if result["ok"] else "no",
        "HTTP status": result["status"],
        "latency (ms)": result["latency_ms"],
        "body sent (bytes)": result["body_bytes"],
        "client address seen": result["client_ip"],
    }
    print_mapping("Webhook self-test", shown)
    if not result["ok"]:
        fail(result["message"], result["hint"], result["problem"] or "")
    console.print(escape(result["message"]), highlight=False, soft_wrap=True)
