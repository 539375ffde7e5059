"""`simpletuner cloud provider ...`: validate the Replicate token, save or delete it, list the
trainer's versions, billing, provider settings, Replicate's status and the hardware price table.
Every command prints a table, or the server's JSON answer with `--json`."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.markup import escape

from simpletuner_cloud.cli.api_client import ServerClient
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

app = typer.Typer(
    help="The Replicate provider: token, versions, billing, settings, status.", no_args_is_help=True
)
token_app = typer.Typer(help="Save or delete the Replicate API token.", no_args_is_help=True)
settings_app = typer.Typer(help="Show or change the Replicate provider settings.")
app.add_typer(token_app, name="token")
app.add_typer(settings_app, name="settings")

BASE = "/api/cloud/providers/replicate"
JSON_OPTION = json_option()


def _client(ctx: typer.Context) -> ServerClient:
    return ServerClient((ctx.obj or {}).get("url"))


def _text(value: Any) -> str | None:
    """Text from Replicate (names, incident titles) shown literally: `[x]` is not rich markup here."""
    return None if value is None else escape(str(value))


def _show(result: Any, as_json: bool, title: str) -> None:
    if as_json:
        print_json(result)
    else:
        print_mapping(title, result)


@app.command("validate")
def validate(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Check the token at Replicate and show the account it belongs to."""
    result = _client(ctx).get(f"{BASE}/validate")
    if as_json:
        print_json(result)
        return
    account = result["account"]
    print_mapping(
        "Replicate token: valid",
        {
            "account": _text(f"{account['username']} ({account['type']})"),
            "name": _text(account.get("name")),
            "token": result["token"],
            "token source": result["token_source"],
            "sandbox": "yes: no GPUs, no charges" if result["sandbox"] else "no",
        },
    )


@token_app.command("set")
def token_set(
    ctx: typer.Context,
    from_stdin: bool = typer.Option(False, "--stdin", help="Read the token from standard input."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate a token at Replicate and save it (0600 file). Asked for hidden, or read with --stdin,
    never taken as an argument: arguments show up in `ps` and shell history."""
    if not from_stdin and not sys.stdin.isatty():
        # typer's hidden prompt would fall back to an echoing read with a raw GetPassWarning
        fail(
            "No terminal to ask for the token on.",
            hint="Pass the token on standard input with --stdin, e.g. "
            "`printenv REPLICATE_API_TOKEN | simpletuner cloud provider token set --stdin`.",
            code="no_terminal",
        )
    raw = sys.stdin.readline() if from_stdin else typer.prompt("Replicate API token", hide_input=True)
    if not raw.strip():
        fail(
            "No token given.",
            hint="Paste the r8_... token from https://replicate.com/account/api-tokens.",
            code="token_empty",
        )
    result = _client(ctx).put(f"{BASE}/token", {"api_token": raw})
    if as_json:
        print_json(result)
        return
    account = result["account"]
    console.print(f"Saved token {result['token']} for {account['username']} ({account['type']}).")
    if result.get("note"):
        console.print(f"[yellow]note:[/] {result['note']}")


@token_app.command("delete")
def token_delete(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Delete the saved token (the REPLICATE_API_TOKEN variable, if set, is not affected)."""
    result = _client(ctx).delete(f"{BASE}/token")
    if as_json:
        print_json(result)
        return
    console.print("Deleted the saved token." if result["deleted"] else "No saved token to delete.")
    if result.get("note"):
        console.print(f"[yellow]note:[/] {result['note']}")


@app.command("versions")
def versions(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The trainer model's versions, newest first; `*` marks the one jobs will use."""
    result = _client(ctx).get(f"{BASE}/versions")
    if as_json:
        print_json(result)
        return
    how = "pinned" if result["pinned"] else "latest"
    # Not a table: a table squeezes or cuts the 64-character ids on a narrow terminal, and they are
    # there to be copied whole (into `settings set version=...`).
    print_columns(
        f"{result['model']} (jobs use the {how} version)",
        ["", "version", "created", "cog"],
        (
            ["*" if v["selected"] else "", v["id"], v["created_at"], v["cog_version"]]
            for v in result["versions"]
        ),
    )
    if result.get("warning"):
        err_console.print(f"[yellow]warning:[/] {escape(result['warning'])}", soft_wrap=True)


@app.command("billing")
def billing(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Spend of this tool's jobs, the cost limit and prices (Replicate has no balance API)."""
    result = _client(ctx).get(f"{BASE}/billing")
    if as_json:
        print_json(result)
        return
    console.print(f"Balance: not available ({result['balance_reason']}); see {result['account_url']}")
    spend = result["spend"]
    print_table(
        "Spend of this tool's jobs (USD)", ["day", "week", "month"], [[f"{spend[k]:.2f}" for k in spend]]
    )
    limit = result["cost_limit"]
    if limit["enabled"]:
        console.print(
            f"Cost limit: {limit['amount']:.2f} USD {limit['period']} ({limit['action']}); "
            f"spent {limit['spent']:.2f}, remaining {limit['remaining']:.2f}: {limit['state']}"
        )
    else:
        console.print(
            "Cost limit: off (turn it on with `simpletuner cloud provider settings set "
            "cost_limit.enabled=true cost_limit.amount=50`)"
        )
    _hardware_table(result["hardware"])


@settings_app.callback(invoke_without_command=True)
def settings_default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        settings_get(ctx, as_json=False)


@settings_app.command("get")
def settings_get(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show the provider settings."""
    _show(_client(ctx).get(BASE), as_json, "Replicate settings")


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are JSON when they parse (`true`, `50`, `["1.2.3.4"]`, `null`),
    else text; `cost_limit.amount=50` sets one key of an object."""
    body: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            fail(
                f"Expected key=value, got {pair!r}.",
                hint="e.g. hardware=a100 or cost_limit.amount=50",
                code="assignment_invalid",
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        parent, _, child = key.strip().partition(".")
        if not child:
            body[parent] = value
        elif isinstance(body.setdefault(parent, {}), dict):
            body[parent][child] = value
        else:
            fail(
                f"{parent} is set as a whole and by key at once.",
                hint=f"Use either {parent}=... or {key}=...",
                code="assignment_invalid",
            )
    return body


@settings_app.command("set")
def settings_set(
    ctx: typer.Context,
    pairs: list[str] = typer.Argument(..., help="key=value, e.g. webhook_allowed_ips='[\"34.82.0.0/16\"]'"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change some settings; the others keep their values."""
    _show(_client(ctx).put(BASE, parse_assignments(pairs)), as_json, "Replicate settings")


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Replicate's status page (advisory; `unknown` when it cannot be read)."""
    result = _client(ctx).get("/api/cloud/system-status")
    if as_json:
        print_json(result)
        return
    shown = {"indicator": result["indicator"], "description": _text(result["description"])}
    if result["reason"]:
        shown["reason"] = result["reason"]
    print_mapping("Replicate status", {**shown, "source": result["source"]})
    if result["components"]:
        print_table(
            "Affected components",
            ["component", "status"],
            ([_text(c["name"]), c["status"]] for c in result["components"]),
        )
    if result["incidents"]:
        print_table(
            "Incidents",
            ["incident", "status", "impact"],
            ([_text(i["name"]), i["status"], i["impact"]] for i in result["incidents"]),
        )


@app.command("hardware")
def hardware(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The hardware profiles, their prices and the trainer model each uses."""
    result = _client(ctx).get("/api/cloud/hardware")
    if as_json:
        print_json(result)
        return
    _hardware_table(result["hardware"])


def _hardware_table(rows: list[dict[str, Any]]) -> None:
    print_table(
        "Hardware (approximate prices)",
        ["", "hardware", "VRAM", "USD/s", "USD/h", "trainer model"],
        (
            [
                "*" if h["default"] else "",
                h["name"],
                f"{h['vram_gb']}GB",
                h["usd_per_second"],
                f"{h['usd_per_hour']:.2f}",
                h["model"],
            ]
            for h in rows
        ),
    )
