"""`simpletuner cloud provider ...` against live servers: one in `--sandbox` mode, one pointed at
that sandbox like a real deployment (for the missing and rejected token errors)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.cli import app as cli
from simpletuner_cloud.cli.cloud.provider import parse_assignments
from simpletuner_cloud.services.provider import ProviderRuntime
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import live_server
from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server, set_faults
from tests.support.waiting import eventually_sync

runner = CliRunner()


async def _no_sleep(_: float) -> None:
    return None


WRONG_TOKEN = "r8_" + "w" * 37


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FastAPI]]:
    with sandbox_mode_server(home=tmp_path_factory.mktemp("home")) as running:
        yield running


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, sandboxed: tuple[str, FastAPI]) -> Iterator[str]:
    sandbox = f"{sandboxed[0]}/sandbox"
    settings = load_settings(
        home=tmp_path_factory.mktemp("plain"), replicate_base_url=sandbox, status_page_url=f"{sandbox}/status"
    )
    app = create_app(settings)
    app.state.provider_runtime = ProviderRuntime(sleep=_no_sleep)  # backoff without waiting
    with live_server(app) as base:
        yield base


def run(url: str, *args: str, input: str | None = None) -> Any:
    return runner.invoke(cli, ["cloud", "--url", url, "provider", *args], input=input)


def err(result: Any) -> str:
    """stderr with any line wrapping undone."""
    return " ".join(result.stderr.split())


def run_json(url: str, *args: str, input: str | None = None) -> Any:
    result = run(url, *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_validate(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    table = run(url, "validate")
    assert table.exit_code == 0
    assert "valid" in table.stdout and "sandbox (user)" in table.stdout and "r8_...ken0" in table.stdout
    assert run_json(url, "validate")["token_source"] == "sandbox"
    assert "sandbox: no GPUs, no charges" in table.stderr  # the banner, on every command


def test_no_banner_from_a_real_deployment(plain: str) -> None:
    result = run(plain, "hardware")
    assert result.exit_code == 0
    assert "no GPUs" not in result.output


def test_token_set_from_stdin_and_prompt_then_delete(sandboxed: tuple[str, FastAPI]) -> None:
    url, app = sandboxed
    from_stdin = run(url, "token", "set", "--stdin", input=f"  {SANDBOX_TOKEN}\n")
    assert from_stdin.exit_code == 0, from_stdin.output
    assert "Saved token r8_...ken0 for sandbox (user)." in from_stdin.stdout
    assert "Sandbox mode uses the sandbox token" in from_stdin.stdout
    assert SANDBOX_TOKEN not in from_stdin.output
    assert app.state.settings.replicate_token_path.read_text() == SANDBOX_TOKEN
    assert run_json(url, "token", "set", "--stdin", input=f"{SANDBOX_TOKEN}\n") == {
        "saved": True,
        "token": "r8_...ken0",
        "account": {"username": "sandbox", "name": "Sandbox (offline Replicate emulator)", "type": "user"},
        "token_source": "sandbox",
        "note": "Sandbox mode uses the sandbox token; the saved token is used without --sandbox.",
    }
    assert "Deleted the saved token." in run(url, "token", "delete").stdout
    assert run_json(url, "token", "delete") == {
        "deleted": False,
        "token_source": "sandbox",
        "token": "r8_...ken0",
        "note": None,
    }


def test_token_set_bad_format(sandboxed: tuple[str, FastAPI]) -> None:
    result = run(sandboxed[0], "token", "set", "--stdin", input="sk-abc\n")
    assert result.exit_code == 1
    assert "error[token_invalid_format]: That does not look like a Replicate API token" in err(result)
    assert "hint: Tokens start with r8_. Check for stray spaces or newlines" in err(result)
    assert "Traceback" not in result.output


def test_the_three_errors(
    plain: str, monkeypatch: pytest.MonkeyPatch, sandboxed: tuple[str, FastAPI]
) -> None:
    missing = run(plain, "validate")
    assert missing.exit_code == 1
    assert "error[token_missing]: REPLICATE_API_TOKEN not set" in err(missing)
    assert (
        'hint: Export it: export REPLICATE_API_TOKEN="r8_..." and restart simpletuner server (or save one '
        "with `simpletuner cloud provider token set`)."  # the server's hint names its route: translated
    ) in err(missing)
    assert "/api/cloud" not in missing.stderr

    monkeypatch.setenv("REPLICATE_API_TOKEN", "sk-" + "a" * 37)
    malformed = run(plain, "validate")
    assert (
        "error[token_invalid_format]: Invalid token in REPLICATE_API_TOKEN. Token must start with r8_."
        in (err(malformed))
    )

    monkeypatch.setenv("REPLICATE_API_TOKEN", WRONG_TOKEN)
    invalid = run(plain, "validate")
    assert "error[token_invalid]: Invalid token" in err(invalid)
    assert "Check for stray spaces or newlines" in err(invalid)

    monkeypatch.setenv("REPLICATE_API_TOKEN", SANDBOX_TOKEN)
    set_faults(f"{sandboxed[0]}/sandbox", SANDBOX_TOKEN, {"server_errors": {"count": 4, "status": 503}})
    try:
        down = run(plain, "versions")
    finally:
        set_faults(f"{sandboxed[0]}/sandbox", SANDBOX_TOKEN, {"server_errors": {"count": 0}})
    assert down.exit_code == 1
    assert (
        "Replicate is failing: HTTP 503 on GET /sandbox/v1/models/simpletuner/advanced-trainer/versions."
        in err(down)
    )
    assert "Replicate's status page says: All Systems Operational (none)." in err(down)


def test_versions(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    answer = run_json(url, "versions")
    assert answer["model"] == "simpletuner/advanced-trainer" and answer["pinned"] is None
    newest, older = (v["id"] for v in answer["versions"])
    assert (answer["selected"], answer["warning"]) == (newest, None)
    table = run(url, "versions")
    assert "jobs use the latest version" in table.stdout and "0.16.2" in table.stdout
    try:
        run_json(url, "settings", "set", f"version={older}")
        pinned = run(url, "versions")
        assert "jobs use the pinned version" in pinned.stdout and "warning" not in pinned.stderr
        run_json(url, "settings", "set", f"version={'f' * 64}")
        missing = run(url, "versions")
        assert missing.exit_code == 0
        assert f"warning: The pinned version {'f' * 64} is not a version of" in err(missing)
        assert run_json(url, "versions")["selected"] is None
    finally:
        run_json(url, "settings", "set", "version=null")


def test_billing(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    table = run(url, "billing")
    assert table.exit_code == 0
    assert "Balance: not available (Replicate has no public API for account balance)" in table.stdout
    assert "Cost limit: off" in table.stdout
    answer = run_json(url, "billing")
    assert (answer["balance"], answer["spend"], answer["sandbox"]) == (
        None,
        {"day": 0.0, "week": 0.0, "month": 0.0},
        True,
    )
    try:
        run_json(
            url,
            "settings",
            "set",
            "cost_limit.enabled=true",
            "cost_limit.amount=20",
            "cost_limit.period=weekly",
        )
        limited = run(url, "billing")
        assert "Cost limit: 20.00 USD weekly (warn); spent 0.00, remaining 20.00: ok" in limited.stdout
        assert "3.51" in limited.stdout  # the price table
    finally:
        run_json(url, "settings", "set", "cost_limit=null")


def test_settings_get_and_set(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    ips = 'webhook_allowed_ips=["34.82.0.0/16", "35.185.0.0/16"]'
    changed = run_json(
        url, "settings", "set", ips, "cost_limit.amount=25", "cost_limit.enabled=true", "hardware=a100"
    )
    assert changed["webhook_allowed_ips"] == ["34.82.0.0/16", "35.185.0.0/16"]
    assert changed["cost_limit"] == {
        "enabled": True,
        "amount": 25.0,
        "period": "monthly",
        "action": "warn",
        "cancel_running_at_limit": False,
        "cancel_on": "accrued",
        "time_zone": None,
    }
    assert run_json(url, "settings", "get") == changed
    assert "webhook_allowed_ips" in run(url, "settings").stdout
    table = run(url, "settings", "set", "require_signature=false")
    assert table.exit_code == 0
    assert "Replicate settings" in table.stdout and "require_signature" in table.stdout
    assert '["34.82.0.0/16", "35.185.0.0/16"]' in table.stdout  # list values survive the table
    assert run_json(url, "settings", "get")["require_signature"] is False
    bad = run(url, "settings", "set", 'trusted_proxies=["nope"]')
    assert bad.exit_code == 1 and "trusted_proxies.0" in err(bad)
    reset = run_json(
        url,
        "settings",
        "set",
        "hardware=null",
        "cost_limit=null",
        "webhook_allowed_ips=null",
        "require_signature=null",
    )
    assert (reset["hardware"], reset["webhook_allowed_ips"], reset["require_signature"]) == ("l40s", [], True)


def test_parse_assignments() -> None:
    assert parse_assignments(["a=1", "b=text", "c.d=true", "c.e=5", "f=null", 'g=["x", "y"]']) == {
        "a": 1,
        "b": "text",
        "c": {"d": True, "e": 5},
        "f": None,
        "g": ["x", "y"],
    }


def test_settings_set_refuses_a_key_set_whole_and_by_part(sandboxed: tuple[str, FastAPI]) -> None:
    result = run(sandboxed[0], "settings", "set", "cost_limit=null", "cost_limit.amount=5")
    assert result.exit_code == 1
    assert "error[assignment_invalid]: cost_limit is set as a whole and by key at once." in err(result)
    assert "Traceback" not in result.output
    bad_pair = run(sandboxed[0], "settings", "set", "hardware")
    assert bad_pair.exit_code == 1 and "Expected key=value, got 'hardware'" in err(bad_pair)


def test_status_and_hardware(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    assert run_json(url, "status")["indicator"] == "none"
    assert "All Systems Operational" in run(url, "status").stdout
    hardware = run_json(url, "hardware")
    assert [h["id"] for h in hardware["hardware"]] == ["l40s", "a100"]
    table = run(url, "hardware").stdout
    assert "48GB" in table and "3.51" in table and "5.04" in table


def cli_process(url: str, *args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("simpletuner")), "cloud", "--url", url, "provider", *args]


def test_token_set_without_a_terminal_says_to_use_stdin(sandboxed: tuple[str, FastAPI]) -> None:
    """Before: getpass's raw `GetPassWarning: Can not control echo on the terminal` and an echoed read."""
    done = subprocess.run(
        cli_process(sandboxed[0], "token", "set"),
        input=f"{SANDBOX_TOKEN}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "GetPassWarning" not in done.stderr and SANDBOX_TOKEN not in done.stderr + done.stdout
    assert " ".join(done.stderr.split()) == (
        "error[no_terminal]: No terminal to ask for the token on. hint: Pass the token on standard input "
        "with --stdin, e.g. `printenv REPLICATE_API_TOKEN | simpletuner cloud provider token set --stdin`."
    )


def _read_terminal(master: int, seen: bytearray) -> bytes:
    if select.select([master], [], [], 0)[0]:
        try:
            seen.extend(os.read(master, 4096))
        except OSError:  # EIO: the child closed the terminal
            seen.extend(b"\0")
    return bytes(seen)


def test_token_set_on_a_terminal_prompts_without_echo(sandboxed: tuple[str, FastAPI]) -> None:
    url, app = sandboxed
    master, slave = os.openpty()
    process = subprocess.Popen(
        cli_process(url, "token", "set"), stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    seen = bytearray()
    try:
        # Click writes "Replicate API token:", then getpass turns echo off, flushing what was typed
        # (TCSAFLUSH), and writes its own " ": typing before that space is lost and the read waits.
        eventually_sync(lambda: b"Replicate API token: " in _read_terminal(master, seen), what="the prompt")
        os.write(master, f"{SANDBOX_TOKEN}\n".encode())
        # The end: the child exits (the terminal's EIO alone can come late on a loaded machine).
        eventually_sync(
            lambda: process.poll() is not None or b"\0" in _read_terminal(master, seen),
            timeout=60,
            what="the command's end",
        )
        assert process.wait(timeout=30) == 0
        while select.select([master], [], [], 0.2)[0] and b"\0" not in _read_terminal(master, seen):
            pass  # what it wrote last
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    output = re.sub(r"\x1b\[[0-9;]*m", "", seen.decode(errors="replace"))  # the terminal gets colours
    assert "Saved token r8_...ken0 for sandbox (user)." in output
    assert SANDBOX_TOKEN not in output  # not echoed
    assert app.state.settings.replicate_token_path.read_text() == SANDBOX_TOKEN


def test_versions_print_whole_ids_on_a_narrow_terminal(sandboxed: tuple[str, FastAPI]) -> None:
    url = sandboxed[0]
    ids = [v["id"] for v in run_json(url, "versions")["versions"]]
    done = subprocess.run(
        cli_process(url, "versions"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "simpletuner/advanced-trainer (jobs use the latest version)"
    assert lines[1].split() == ["version", "created", "cog"]
    for line, version_id in zip(lines[2:], ids, strict=True):
        assert version_id in line.split()  # whole, on one line, no ellipsis
    assert "…" not in done.stdout
    assert lines[2].startswith("* ")


def test_errors_with_json_print_the_servers_envelope(plain: str, sandboxed: tuple[str, FastAPI]) -> None:
    missing = run(plain, "validate", "--json")
    assert missing.exit_code == 1
    envelope = json.loads(missing.stdout)
    assert envelope["error"]["code"] == "token_missing"
    assert envelope["error"]["message"] == "REPLICATE_API_TOKEN not set"
    assert "PUT /api/cloud/providers/replicate/token" in envelope["error"]["hint"]  # the server's words
    assert "error[" not in missing.output and "hint:" not in missing.output

    bad = run(sandboxed[0], "token", "set", "--stdin", "--json", input="sk-abc\n")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["code"] == "token_invalid_format"
    assert json.loads(bad.stdout)["error"]["details"]["fields"][0]["field"] == "api_token"

    empty = run(sandboxed[0], "token", "set", "--stdin", "--json", input="\n")  # refused by the CLI itself
    assert empty.exit_code == 1
    assert json.loads(empty.stdout) == {
        "error": {
            "code": "token_empty",
            "message": "No token given.",
            "hint": "Paste the r8_... token from https://replicate.com/account/api-tokens.",
        }
    }

    dead = runner.invoke(cli, ["cloud", "--url", "http://127.0.0.1:9", "provider", "versions", "--json"])
    assert dead.exit_code == 1 and json.loads(dead.stdout)["error"]["code"] == "server_not_running"
