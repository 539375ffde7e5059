"""`SandboxConfig`: every knob of the emulator in one dataclass. Nothing here reads the environment;
the CLI and the server build a config from their own settings."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN


def new_webhook_secret() -> str:
    """`whsec_` + standard base64 of 24 random bytes. 24 bytes encode to 32 characters without `=`
    and the standard alphabet has no `_`, so the official client's `split("_")` sees two parts."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


@dataclass
class SandboxConfig:
    # Where the sandbox is reachable, including any mount prefix; every emitted URL starts with it.
    public_base_url: str = "http://127.0.0.1:5005"
    token: str = DEFAULT_SANDBOX_TOKEN
    # Also accept any well-formed 40-character `r8_` token (off: only `token` is accepted).
    accept_any_r8_token: bool = False

    # The simulated trainer. A run shows at most `max_simulated_steps` progress lines, whatever
    # `max_train_steps` says; each line advances the counter by ceil(total / max_simulated_steps).
    step_seconds: float = 0.5
    max_simulated_steps: int = 20
    boot_seconds: float = 1.0  # time spent in `starting` before `processing`
    # Where input validation happens: "create" answers 422 like Replicate's API layer does;
    # "run" creates the prediction and fails it like an older model (Cog validating in the container).
    input_validation: Literal["create", "run"] = "create"

    retention_seconds: float = 3600.0
    retention_sweep_seconds: float = 1.0
    file_size_limit: int = 100 * 1024 * 1024
    file_expiry_seconds: float = 86400.0
    page_size: int = 100

    webhook_secret: str | None = None  # generated once per sandbox when None
    webhook_throttle_seconds: float = 0.5
    # Waits before each retry of a failed `completed` delivery; the default ends about 60 s later.
    webhook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 29.0)
    webhook_timeout_seconds: float = 10.0

    data_dir: Path | None = None  # uploaded file bytes and produced outputs; a temp dir when None

    # Token buckets, per minute, like Replicate's documented limits.
    create_rate_per_minute: int = 600
    other_rate_per_minute: int = 3000
    poll_rate_per_minute: int = 60000  # GET /v1/predictions/{id}: a separate, larger bucket in traffic

    # Replicate's create response for a training points urls.get/cancel at /v1/predictions/{id}.
    training_create_urls_quirk: bool = False
    # The models route (POST /v1/models/{owner}/{name}/predictions) is documented for official
    # models only, so it refuses every other model with 422, as Replicate does. False is the lenient
    # knob for a test that wants the route to run any catalogue model's latest version.
    models_route_official_only: bool = True
    # The real trainer's parser fails the run on a config_json key it does not know (trainer-contract
    # 2.1). False is the lenient knob; `extra_trainer_options` adds names a newer trainer knows.
    reject_unknown_config_keys: bool = True
    extra_trainer_options: tuple[str, ...] = ()

    account_username: str = "sandbox"
    status_page_timeout_seconds: float = 10.0  # how long the "timeout" status-page mode hangs

    @property
    def base_url(self) -> str:
        return self.public_base_url.rstrip("/")
