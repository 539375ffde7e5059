"""Configuration: one `Settings` class read from `SIMPLETUNER_*` variables, and the state root layout.

Environment variables are read here and only here (plus `REPLICATE_API_TOKEN`, read by the provider
factory). Tests point `SIMPLETUNER_HOME` at a temporary folder."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The fixed token a bare `SandboxConfig()` accepts (tests and embedding code). It is public, so neither
# `simpletuner server --sandbox` nor `simpletuner sandbox` ever uses it: they use the installation's
# random token (`Settings.sandbox_token`).
DEFAULT_SANDBOX_TOKEN = "r8_sandboxOfflineReplicateEmulatorToken0"  # noqa: S105 (public, offline only)

DEFAULT_TRAINER_MODEL = "simpletuner/advanced-trainer"

# Shown wherever a sandboxed server answers: the UI, the CLI (via this response header) and the API.
SANDBOX_BANNER = "sandbox: no GPUs, no charges"
SANDBOX_HEADER = "X-SimpleTuner-Sandbox"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMPLETUNER_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".simpletuner")
    database_url: str | None = None
    configs_dir: Path | None = None
    require_auth: bool = False
    # Trust requests that look local (loopback peer and Host, no forwarding header) without the admin
    # token. Unset: yes when bound to a loopback address, no otherwise (see `trusts_local_requests`).
    trust_local: bool | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    url: str = "http://127.0.0.1:8080"  # where `simpletuner cloud ...` finds the server
    keep_alive_seconds: int = Field(default=5, ge=1)  # idle time before uvicorn closes a connection
    max_concurrency: int = Field(default=256, ge=1)  # connections + requests; beyond it uvicorn answers 503

    sandbox: bool = False
    # Unset: the installation's random token (`cloud/sandbox_token`, 0600), filled in sandbox mode.
    sandbox_token: str | None = None
    sandbox_step_seconds: float = 0.5

    replicate_base_url: str = "https://api.replicate.com"
    status_page_url: str = "https://www.replicatestatus.com"

    worker_interval: float = 5.0  # seconds between reconcile passes; tests set 0
    shutdown_drain_seconds: float = 10.0  # how long a shutdown waits for running uploads
    log_level: str = "INFO"

    # The job worker (services/job_runner.py). Tests shorten these; nothing else needs to.
    job_lease_seconds: float = 60.0  # a job stays with one worker this long per claim (renewed while busy)
    worker_batch: int = 200  # jobs claimed per pass
    poll_seconds: float = 10.0  # how often an active job is read while webhooks are silent (x6 if they flow)
    log_poll_seconds: float = 30.0  # how often a running job's logs are fetched while webhooks are silent
    list_threshold: int = 5  # from this many active jobs, one list call finds which changed
    create_lookup_seconds: float = 30.0  # how long a create of unknown fate is looked for, then resent
    stuck_queued_seconds: float = 900.0  # the doctor speaks up after a job sat this long in queued
    fault_point: str | None = None  # kill test only: kill the server at this step of submit

    @field_validator("home", "configs_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _fill_sandbox_token(self) -> Self:
        if self.sandbox:
            self.sandbox_token = self.effective_sandbox_token()
        return self

    def effective_sandbox_token(self) -> str:
        """`SIMPLETUNER_SANDBOX_TOKEN`, else the installation's random token (0600, made on first use)."""
        if self.sandbox_token:
            return self.sandbox_token
        from simpletuner_cloud.security.sandbox_token import installation_sandbox_token

        return installation_sandbox_token(self.sandbox_token_path)

    @property
    def host_is_loopback(self) -> bool:
        return is_loopback_bind_address(self.host)

    @property
    def trusts_local_requests(self) -> bool:
        """A same-machine forwarder that adds no header (socat, `ssh -R`) makes remote requests look
        local, and binding a public address invites one; so local trust follows the bind address
        unless `SIMPLETUNER_TRUST_LOCAL` says otherwise. `SIMPLETUNER_REQUIRE_AUTH=1` always wins."""
        if self.require_auth:
            return False
        return self.trust_local if self.trust_local is not None else self.host_is_loopback

    # The state root layout, in one place.
    @property
    def cloud_dir(self) -> Path:
        return self.home / "cloud"

    @property
    def database_path(self) -> Path:
        return self.cloud_dir / "jobs.db"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.database_path}"

    @property
    def admin_token_path(self) -> Path:
        return self.cloud_dir / "admin_token"

    @property
    def sandbox_token_path(self) -> Path:
        return self.cloud_dir / "sandbox_token"

    @property
    def replicate_token_path(self) -> Path:
        return self.cloud_dir / "replicate_token"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "cloud_outputs"

    @property
    def effective_configs_dir(self) -> Path:
        return self.configs_dir or self.home / "configs"


def is_loopback_bind_address(host: str) -> bool:
    """`127.0.0.1`, `127.0.0.2`, `::1`, `[::1]`, `localhost`: only this machine can connect."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Read the environment now (never cached: tests and the CLI change it between calls)."""
    return Settings(**overrides)  # type: ignore[arg-type]
