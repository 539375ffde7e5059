"""The command line: useful help everywhere, and a clear one-line error when no server answers."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simpletuner_cloud.cli import app
from tests.support.live_server import free_port

runner = CliRunner()


def test_top_level_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("server", "sandbox", "cloud", "examples"):
        assert command in result.output


@pytest.mark.parametrize("command", [["server"], ["sandbox"], ["cloud"], ["examples"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_server_help_shows_options() -> None:
    result = runner.invoke(app, ["server", "--help"])
    for option in ("--host", "--port", "--sandbox"):
        assert option in result.output


def test_server_client_says_how_to_start_a_dead_server(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from simpletuner_cloud.cli.api_client import ServerClient

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(typer.Exit) as exited:
        ServerClient(url=url).get("/healthz")
    assert exited.value.exit_code == 1
    err = capsys.readouterr().err
    assert f"error[server_not_running]: No simpletuner server is answering at {url}." in err
    assert "simpletuner server" in err
    assert "Traceback" not in err


def test_table_cells_are_never_rich_markup(capsys: pytest.CaptureFixture[str]) -> None:
    from simpletuner_cloud.cli.output import print_table

    print_table("t", ["name"], [["[bold]incident[/bold] [red]x"]])
    assert "[bold]incident[/bold] [red]x" in capsys.readouterr().out
