"""The CLI's client for a running server: finds it through `--url`/`SIMPLETUNER_URL`, sends the admin
token from the state root, and turns error bodies and a dead server into one-line messages."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import typer
from rich.markup import escape

from simpletuner_cloud.cli.output import err_console, fail
from simpletuner_cloud.security.admin_token import read_admin_token
from simpletuner_cloud.settings import SANDBOX_HEADER, Settings, load_settings

# The server's hints name its HTTP routes (they also serve curl and the web UI); at the terminal the
# CLI command that does the same is what helps. Longest routes first: `.../token` before `...`.
ROUTE_COMMANDS = (
    ("PUT /api/cloud/providers/replicate/token", "simpletuner cloud provider token set"),
    ("DELETE /api/cloud/providers/replicate/token", "simpletuner cloud provider token delete"),
    ("GET /api/cloud/providers/replicate/validate", "simpletuner cloud provider validate"),
    ("GET /api/cloud/providers/replicate/versions", "simpletuner cloud provider versions"),
    ("GET /api/cloud/providers/replicate/billing", "simpletuner cloud provider billing"),
    ("POST /api/cloud/providers/replicate/test-webhook", "simpletuner cloud webhooks test"),
    ("PUT /api/cloud/providers/replicate", "simpletuner cloud provider settings set"),
    ("GET /api/cloud/providers/replicate", "simpletuner cloud provider settings"),
    ("GET /api/cloud/system-status", "simpletuner cloud provider status"),
    ("GET /api/cloud/hardware", "simpletuner cloud provider hardware"),
    ("GET /api/cloud/cost-limit/status", "simpletuner cloud cost status"),
    ("POST /api/cloud/data-consent/preview", "simpletuner cloud data preview"),
)
_ROUTES = [
    (re.compile(r"`?" + re.escape(route) + r"`?(?![\w/-])"), f"`{cli}`") for route, cli in ROUTE_COMMANDS
]
# A job's route names its id: the command takes it as its argument (a `{id}` placeholder: `<id>`).
_JOB_ARTIFACTS = re.compile(r"`?GET /api/cloud/jobs/(?:\{\w+\}|([\w-]+))/artifacts`?(?![\w/-])")
# `PUT <settings route> with {...}`: the body, as the `key=value` arguments of `settings set`.
_SETTINGS_BODY = re.compile(r"`?PUT /api/cloud/providers/replicate`? with (?=\{)")
_SETTINGS_SET = "simpletuner cloud provider settings set"
# A hint that named the route and, beside it, its command says the command twice once translated.
_TWICE = re.compile(r"(`[^`]+`) \((?:or )?\1\)")


def api_path(route: str, *segments: object) -> str:
    """`route` followed by each of `segments` as one path segment, whatever it holds: `/`, `?`, `#` and
    `%` are percent-encoded, and so are the dot segments `.` and `..` (httpx would resolve them away),
    so an id typed by the user can never reach another route (`jobs rm ../providers/replicate/token`)."""
    parts = [route.rstrip("/")]
    for segment in segments:
        text = str(segment)
        if not text.strip():
            raise typer.BadParameter("an id or name given on the command line is empty.")
        parts.append(text.replace(".", "%2E") if text in (".", "..") else quote(text, safe=""))
    return "/".join(parts)


def _assignments(body: Mapping[str, Any]) -> list[str]:
    """A settings body as `settings set` arguments: `a.b=value`, text as it is unless it would read as
    JSON, anything else as JSON (`parse_assignments` in `cloud/provider.py` reads them back)."""
    pairs = []
    for key, value in body.items():
        if isinstance(value, dict):
            pairs += [f"{key}.{pair}" for pair in _assignments(value)]
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        if isinstance(value, str):
            try:
                json.loads(value)
                text = json.dumps(value)  # `"50"` stays text, not the number 50
            except ValueError:
                pass
        pairs.append(shlex.quote(f"{key}={text}"))
    return pairs


def _settings_commands(hint: str) -> str:
    out, position = [], 0
    for found in _SETTINGS_BODY.finditer(hint):
        try:
            body, end = json.JSONDecoder().raw_decode(hint, found.end())
        except ValueError:
            continue
        if not isinstance(body, dict) or not body:
            continue
        out += [hint[position : found.start()], f"`{' '.join([_SETTINGS_SET, *_assignments(body)])}`"]
        position = end
    return "".join([*out, hint[position:]])


def cli_hint(hint: str) -> str:
    """A server hint with each route it names replaced by the matching CLI command, written so it can
    be pasted; a route without a command (`PUT /api/cloud/publishing`) is left as it is."""
    hint = _settings_commands(hint)
    hint = _JOB_ARTIFACTS.sub(lambda m: f"`simpletuner cloud jobs artifacts {m.group(1) or '<id>'}`", hint)
    for pattern, command in _ROUTES:
        hint = pattern.sub(command, hint)
    return _TWICE.sub(r"\1", hint)


class ServerClient:
    def __init__(self, url: str | None = None, settings: Settings | None = None, timeout: float = 30.0):
        self.settings = settings or load_settings()
        self.url = (url or self.settings.url).rstrip("/")
        headers = {"Accept": "application/json"}
        token = read_admin_token(self.settings)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._sandbox_announced = False
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, trust_env=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        hints: Mapping[str, str] | None = None,
        expect: tuple[str, ...] = (),
    ) -> Any:
        """The decoded answer; an error answer ends the command with its message and hint (`hints`
        replaces the server's hint for the codes it names, when the command knows a better one). With
        `expect`, an answer that is not an object holding those keys ends it too, not a KeyError."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.ConnectError:
            fail(
                f"No simpletuner server is answering at {self.url}.",
                hint="Start it with `simpletuner server` (or `simpletuner server --sandbox` to try it "
                "offline), or point --url / SIMPLETUNER_URL at the running one.",
                code="server_not_running",
            )
        except httpx.TimeoutException:
            fail(f"The server at {self.url} did not answer in time.", code="server_timeout")
        self._announce_sandbox(response)
        answer = self._decode(response, hints)
        missing = [key for key in expect if not isinstance(answer, dict) or key not in answer]
        if missing:
            fail(
                f"The server's answer to {method} {path} is not what this command reads "
                f"(it has no {', '.join(f'`{key}`' for key in missing[:3])}).",
                hint="Check that --url / SIMPLETUNER_URL points at a simpletuner server of the same "
                "version as this CLI.",
                code="unexpected_answer",
            )
        return answer

    def _announce_sandbox(self, response: httpx.Response) -> None:
        banner = response.headers.get(SANDBOX_HEADER)
        if banner and not self._sandbox_announced:
            self._sandbox_announced = True
            err_console.print(
                f"[bold yellow]{escape(banner)}[/]", markup=True, highlight=False, soft_wrap=True
            )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def post(self, path: str, body: Any = None, hints: Mapping[str, str] | None = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, hints=hints)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def get_quietly(self, path: str) -> Any | None:
        """A GET that never ends the command: None when the server is unreachable or answers an
        error (for refreshes while something else, like an event stream, reports the connection)."""
        try:
            response = self._http.get(path)
            return response.json() if response.is_success else None
        except (httpx.TransportError, ValueError):
            return None

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._http.stream(method, path, **kwargs)

    @staticmethod
    def _decode(response: httpx.Response, hints: Mapping[str, str] | None = None) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_success:
            return body
        error = (body or {}).get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            hint = (hints or {}).get(str(error.get("code"))) or cli_hint(str(error.get("hint") or ""))
            fail(str(error.get("message", "request failed")), hint, str(error.get("code", "")), body)
        fail(f"The server answered HTTP {response.status_code}.", code="http_error")
