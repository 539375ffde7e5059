"""`/docs` in the system Chromium with no network but this server: Swagger UI renders our
operations, nothing is requested from anywhere else, and the page's CSP blocks nothing it needs."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import live_server

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_swagger_ui_renders_offline_under_its_csp(page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.add_init_script(RECORD_VIOLATIONS)
    with live_server(create_app(load_settings())) as base:
        page.goto(f"{base}/docs")
        expect(page.locator(".opblock-summary-path", has_text="/api/cloud/providers").first).to_be_visible()
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("simpletuner-cloud")
        violations = page.evaluate("window.__violations")
    assert violations == []
    assert requested and all(url.startswith(f"{base}/") or url.startswith("data:") for url in requested), (
        requested
    )
