"""`simpletuner cloud cost ...`: the estimate before submitting, the cost limit's status, setting or
turning off the limit, and the spend history. Money is printed from the server's decimal strings."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import typer

from simpletuner_cloud.cli.api_client import ServerClient
from simpletuner_cloud.cli.cloud.data import _reference as config_reference
from simpletuner_cloud.cli.cloud.data import config_argument
from simpletuner_cloud.cli.output import console, json_option, print_columns, print_json, print_mapping

app = typer.Typer(help="Cost estimates, the cost limit, and spend.", no_args_is_help=True)
limit_app = typer.Typer(help="Set or turn off the cost limit.", no_args_is_help=True)
app.add_typer(limit_app, name="limit")
JSON_OPTION = json_option()
SETTINGS = "/api/cloud/providers/replicate"


class PeriodChoice(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


class ActionChoice(StrEnum):
    warn = "warn"
    block = "block"


def _client(ctx: typer.Context) -> ServerClient:
    return ServerClient((ctx.obj or {}).get("url"))


def dollars(value: str | None) -> str:
    if value is None:
        return "-"
    amount = Decimal(value)
    if amount >= 1 or amount == amount.quantize(Decimal("0.01")):
        return f"${amount:,.2f}"
    return f"${amount:.4f}"  # fractions of a cent: a sandbox run, a job's first seconds


def minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@app.command("estimate")
def estimate(
    ctx: typer.Context,
    config: str = config_argument(),
    hardware: str | None = typer.Option(None, "--hardware", help="l40s (default) or a100."),
    max_train_steps: int | None = typer.Option(None, "--max-train-steps", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """How long and how much a job would take, as a range, and what the estimate is based on."""
    body: dict[str, Any] = {"config": config_reference(config)}
    if hardware:
        body["hardware"] = hardware
    if max_train_steps:
        body["max_train_steps"] = max_train_steps
    result = _client(ctx).post("/api/cloud/cost-estimate", body)
    if as_json:
        print_json(result)
        return
    cost, duration, basis = result["cost_usd"], result["duration_seconds"], result["basis"]
    console.print(
        f"{dollars(cost['low'])} to {dollars(cost['high'])} on {result['hardware']} "
        f"({dollars(result['usd_per_hour'])}/h), {minutes(duration['low'])} to {minutes(duration['high'])} "
        f"for {result['steps']:,} steps."
    )
    console.print(f"Basis: {basis['description']}", highlight=False)


@app.command("status")
def status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Spend against the cost limit, and what happens next."""
    result = _client(ctx).get("/api/cloud/cost-limit/status")
    if as_json:
        print_json(result)
        return
    shown = {
        "state": result["state"],
        "limit": f"{dollars(result['limit_usd'])} {result['period']} ({result['action']})"
        if result["enabled"]
        else "off",
        "spent": dollars(result["spent_usd"]),
        "reserved": dollars(result["reserved_usd"]),
        "total": dollars(result["committed_total_usd"])
        + (f" ({result['percent']:.1f}%)" if result["percent"] is not None else ""),
        "projected": dollars(result["projected_usd"]),
        "cancel at limit": f"yes ({result['cancel_on']})" if result["cancel_running_at_limit"] else "no",
        "period": f"{result['period_start']} to {result['resets_at']} ({result['time_zone']})",
        "next": result["next"],
    }
    print_mapping("Cost limit", shown)


@limit_app.command("set")
def limit_set(
    ctx: typer.Context,
    amount: str | None = typer.Option(
        None, "--amount", help="USD, e.g. 20 or 12.50 (default: the saved amount, if there is one)."
    ),
    period: PeriodChoice | None = typer.Option(None, "--period", help="Default: the saved one (monthly)."),
    action: ActionChoice | None = typer.Option(
        None, "--action", help="warn or block (default: the saved one, warn)."
    ),
    cancel_running: bool | None = typer.Option(
        None,
        "--cancel-running/--no-cancel-running",
        help="Also cancel running jobs at Replicate when the limit is reached (or no longer).",
    ),
    projected: bool | None = typer.Option(
        None,
        "--projected/--accrued",
        help="With --cancel-running (given or saved): act on the running jobs' projected cost, or on "
        "what they cost so far.",
    ),
    time_zone: str | None = typer.Option(None, "--time-zone", help="IANA name; default: the machine's."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Turn the cost limit on (Cloud -> Settings -> Cost Limit). Options not given keep their saved
    values, so `set --amount 50` changes the amount only."""
    client = _client(ctx)
    saved: dict[str, Any] = client.request("GET", SETTINGS, expect=("cost_limit",))["cost_limit"]
    cancels = cancel_running if cancel_running is not None else bool(saved.get("cancel_running_at_limit"))
    if projected and not cancels:
        raise typer.BadParameter(
            "--projected only applies with --cancel-running: add --cancel-running (running jobs are "
            "not canceled at the limit now).",
            param_hint="--projected",
        )
    if amount is None and saved.get("amount") is None:
        raise typer.BadParameter("no amount is saved yet: give one, e.g. --amount 20.", param_hint="--amount")
    given = {
        "amount": amount,
        "period": period.value if period else None,
        "action": action.value if action else None,
        "cancel_running_at_limit": cancel_running,
        "cancel_on": None if projected is None else ("projected" if projected else "accrued"),
        "time_zone": time_zone,
    }
    # The server merges `cost_limit` key by key: what is not sent keeps its saved value.
    limit = {"enabled": True} | {key: value for key, value in given.items() if value is not None}
    result = client.put(SETTINGS, {"cost_limit": limit})["cost_limit"]
    if as_json:
        print_json(result)
        return
    console.print(
        f"Cost limit on: ${Decimal(str(result['amount'])):,.2f} {result['period']}, {result['action']}"
        + (", cancels running jobs at the limit" if result["cancel_running_at_limit"] else "")
        + "."
    )


@limit_app.command("off")
def limit_off(ctx: typer.Context) -> None:
    """Turn the cost limit off (the amount and period are kept for next time)."""
    _client(ctx).put(SETTINGS, {"cost_limit": {"enabled": False}})
    console.print("Cost limit off: submissions are no longer checked against a budget.")


@app.command("history")
def history(
    ctx: typer.Context,
    period: PeriodChoice | None = typer.Option(None, "--period", help="Default: the limit's period."),
    group_by: str = typer.Option("day", "--by", help="day, hardware or config."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Spend in the period, by day (or hardware, or environment)."""
    params: dict[str, Any] = {"group_by": group_by}
    if period:
        params["period"] = period.value
    result = _client(ctx).get("/api/cloud/spend", **params)
    if as_json:
        print_json(result)
        return
    rows = [(group["key"], dollars(group["usd"])) for group in result["groups"]]
    print_columns(
        f"Spend {result['start'][:10]} to {result['end'][:10]} ({result['time_zone']})",
        [result["group_by"], "USD"],
        rows,
    )
    console.print(
        f"Total {dollars(result['total_usd'])}: finished {dollars(result['committed_usd'])}, running "
        f"{dollars(result['running_usd'])}, reserved {dollars(result['reserved_usd'])}."
    )
