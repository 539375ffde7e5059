"""S3 servers for tests: a real moto server process on a loopback port (the user's external bucket),
and Caddy as a TLS reverse proxy in front of our own server (boto3 then sends aws-chunked bodies,
as it does through a tunnel). Each is stopped by its own process id."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from tests.deploy.proxies import binary, run_process
from tests.support.live_server import free_port

MOTO_KEYS = {
    "aws_access_key_id": "AKIAMOTOTESTKEY00001",
    "aws_secret_access_key": "moto-secret-key-for-tests",
}


@dataclass
class MotoServer:
    url: str

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", **MOTO_KEYS)

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents") or []}


@contextmanager
def moto_server(folder: Path) -> Iterator[MotoServer]:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with run_process(command, folder / f"moto-{port}.log", port, env=env):
        yield MotoServer(f"http://127.0.0.1:{port}")


@contextmanager
def caddy_tls(folder: Path, upstream_port: int) -> Iterator[str]:
    """`https://localhost:<port>` -> `http://127.0.0.1:<upstream_port>`, Caddy's own internal CA
    (clients use verify=False). Caddy keeps the Host header the client sent."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Caddyfile").write_text(
        "{\n  admin off\n  skip_install_trust\n}\n\n"
        f"https://localhost:{port} {{\n  tls internal\n  reverse_proxy 127.0.0.1:{upstream_port}\n}}\n"
    )
    env = {**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
    command = [binary("caddy"), "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"]
    with run_process(command, folder / "caddy.out", port, env=env):
        yield f"https://localhost:{port}"


def subprocess_env(home: Path) -> dict[str, str]:
    """An environment for the AWS CLI that reads no config or credentials of the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(home / "aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-creds"))
    return env


def aws_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("aws")), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
