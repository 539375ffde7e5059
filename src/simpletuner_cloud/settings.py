"""Configuration: one `Settings` class read from `SIMPLETUNER_*` variables, and the state root layout.

Environment variables are read here and only here (plus `REPLICATE_API_TOKEN`, read by the provider
factory). Tests point `SIMPLETUNER_HOME` at a temporary folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A fixed 40-character token the sandbox accepts by default; it says what it is.
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

    host: str = "127.0.0.1"
    port: int = 8080
    url: str = "http://127.0.0.1:8080"  # where `simpletuner cloud ...` finds the server

    sandbox: bool = False
    sandbox_token: str = DEFAULT_SANDBOX_TOKEN
    sandbox_step_seconds: float = 0.5

    replicate_base_url: str = "https://api.replicate.com"
    status_page_url: str = "https://www.replicatestatus.com"

    worker_interval: float = 5.0  # seconds between reconcile passes; tests set 0
    shutdown_drain_seconds: float = 10.0  # how long a shutdown waits for running uploads
    log_level: str = "INFO"

    @field_validator("home", "configs_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

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
    def replicate_token_path(self) -> Path:
        return self.cloud_dir / "replicate_token"

    @property
    def outputs_dir(self) -> Path:
        return self.home / "cloud_outputs"

    @property
    def effective_configs_dir(self) -> Path:
        return self.configs_dir or self.home / "configs"


def load_settings(**overrides: object) -> Settings:
    """Read the environment now (never cached: tests and the CLI change it between calls)."""
    return Settings(**overrides)  # type: ignore[arg-type]
