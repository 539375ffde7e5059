"""The sandbox: an offline, Replicate-compatible emulator with a simulated
`simpletuner/advanced-trainer`, also the test suite's fault injector (docs/sandbox.md)."""

from simpletuner_cloud.sandbox.app import create_sandbox_app
from simpletuner_cloud.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_sandbox_app"]
