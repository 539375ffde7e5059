"""How the CLI shows things: rich tables or raw JSON, and errors as message + hint (never a traceback),
or, for a command run with `--json`, as the server's error envelope on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        # cells carry text from Replicate and from files: never let `[...]` in it act as rich markup
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console.print(table)


def print_columns(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Aligned plain columns that are never cut or wrapped by rich, whatever the terminal's width:
    for values meant to be copied whole (version ids)."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(column)] + [len(row[i]) for row in cells]) for i, column in enumerate(columns)]
    console.print(Text(title, style="bold"), soft_wrap=True)
    for row in [list(columns), *cells]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        console.print(Text(line), soft_wrap=True, overflow="ignore", crop=False)


def print_mapping(title: str, data: Mapping[str, Any]) -> None:
    print_table(title, ["field", "value"], ((k, _cell(v)) for k, v in data.items()))


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


class _JsonAnswers:
    """Whether the command running was given `--json`: set by `json_option`'s callback as the command's
    options are read (click reads every option, so each command with one sets it either way), and
    cleared by the `cloud` group before each command."""

    requested = False


def json_option(help: str = "Print the server's JSON answer.") -> Any:
    """The `--json` option of every command: its answer, and its errors too, are printed as JSON."""
    return typer.Option(False, "--json", help=help, callback=_remember_json)


def _remember_json(value: bool) -> bool:
    _JsonAnswers.requested = bool(value)
    return value


def forget_json() -> None:
    _JsonAnswers.requested = False


def fail(message: str, hint: str = "", code: str = "", envelope: Mapping[str, Any] | None = None) -> NoReturn:
    """End the command with exit 1: the message and hint on stderr, or with `--json` the server's
    error answer (`envelope`, as it came) or one of the same shape, on stdout, for scripts to parse."""
    if _JsonAnswers.requested:
        print_json(envelope or {"error": {"code": code or "error", "message": message, "hint": hint or None}})
        raise typer.Exit(code=1)
    prefix = escape(f"error[{code}]: " if code else "error: ")
    err_console.print(f"[bold red]{prefix}[/]{escape(message)}", markup=True, highlight=False, soft_wrap=True)
    if hint:
        err_console.print(f"[yellow]hint:[/] {escape(hint)}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)
