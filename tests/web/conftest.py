"""The system Chromium driven by Playwright, against `simpletuner server --sandbox` on a socket.
Skips on a laptop without Chromium; fails in CI (`SIMPLETUNER_REQUIRE_BROWSER=1`), where .ci/run
installs it. Every page records its console errors and uncaught exceptions; screenshots go to
`$SIMPLETUNER_ARTIFACTS_DIR/screenshots` (else the test's tmp_path)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import expect

from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server
from tests.support.waiting import eventually_sync

# `expect` retries until its condition holds; its 5 s default is short for steps that wait on the
# server's background work (an upload, a sandbox round trip) on a loaded machine.
expect.set_options(timeout=30_000)

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T = TypeVar("T")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Playwright's sync API holds this thread's event loop; the store is async, so use another thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("SIMPLETUNER_REQUIRE_BROWSER") == "1":
            pytest.fail("SIMPLETUNER_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no system chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    root = os.environ.get("SIMPLETUNER_ARTIFACTS_DIR")
    folder = (Path(root) if root else tmp_path) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Tab:
    """A browser tab on the Cloud tab, with what it printed to the console."""

    page: Any
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def open(self, view: str = "overview", *, ready_as: str | None = None) -> Any:
        """Load `/cloud#/<view>` afresh and wait until the view has read its data."""
        self.page.goto(f"{self.base}/cloud#/{view}")
        self.wait_ready(ready_as or view.split("/")[0].split("?")[0])
        return self.page

    def wait_ready(self, name: str) -> None:
        expect(self.page.locator(f"body[data-view='{name}'][data-ready='true']")).to_have_count(1)

    def go(self, link_text: str, name: str) -> None:
        """Follow a navigation link, as a person would."""
        self.page.get_by_role("navigation", name="Cloud tab").get_by_role("link", name=link_text).click()
        self.wait_ready(name)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def attach(page: Any, base: str, shots: Path) -> Tab:
    tab = Tab(page, base, shots)
    page.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
    return tab


@dataclass
class Cloud:
    """`simpletuner server --sandbox` on a free port, with an HTTP client for setting things up."""

    base: str
    app: FastAPI
    http: httpx.Client

    @property
    def sandbox_config(self) -> Any:
        return self.app.state.sandbox_app.state.sandbox.config

    def sandbox(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(
            method, f"/sandbox{path}", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, **kwargs
        )
        assert response.is_success, response.text
        return response.json()

    def submit(self, **overrides: Any) -> str:
        body = {"config": "flux-lora-example", "consent": True, "delivery": "none", **overrides}
        response = self.http.post("/api/cloud/jobs/submit", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(f"/api/cloud/jobs/{job_id}").json()
        return answer

    def wait_for(self, job_id: str, *statuses: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        return eventually_sync(probe, timeout=90, interval=0.1, what=f"job {job_id} reaching {statuses}")


@pytest.fixture
def cloud(state_root: Path) -> Iterator[Cloud]:
    from simpletuner_cloud.services.datasets import install_example

    with sandbox_mode_server(poll_seconds=0.2, log_poll_seconds=0.2, job_lease_seconds=5) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        # 20 progress lines 0.3 s apart: long enough to watch a job live, short enough for a test.
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.3, 0.2, 20
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield Cloud(base, app, http)


@pytest.fixture
def tab(browser: Any, cloud: Cloud, shots_dir: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield attach(context.new_page(), cloud.base, shots_dir)
    finally:
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A bare page, for tests that start their own server."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()
