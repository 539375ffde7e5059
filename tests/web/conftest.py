"""The system Chromium driven by Playwright. Skips on a laptop without Chromium; fails in CI
(`SIMPLETUNER_REQUIRE_BROWSER=1`), where .ci/run installs it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

# `expect` retries until its condition holds; its 5 s default is short for steps that wait on the
# server's background work (an upload, a sandbox round trip) on a loaded machine.
expect.set_options(timeout=20_000)

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


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
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
