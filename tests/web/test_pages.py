"""The Cloud tab's shell (`web/pages.py`, `templates/cloud.html`, `static/js/main.js`) in the system
Chromium: relative URLs only, the strict CSP, the router, and signing in from a browser that is not
on the server's machine (a tunnel or a proxy adds `X-Forwarded-For`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.web.conftest import DESKTOP, Cloud, Tab, attach

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_the_shell_uses_relative_urls_under_a_strict_csp(tab: Tab, cloud: Cloud) -> None:
    answer = httpx.get(f"{cloud.base}/cloud", trust_env=False)
    assert answer.headers["content-security-policy"] == (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
    assert not re.search(r'(href|src)="/', answer.text)  # works under a proxy's path prefix too
    root = httpx.get(f"{cloud.base}/", trust_env=False, follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (307, "cloud")

    requested: list[str] = []
    tab.page.on("request", lambda request: requested.append(request.url))
    tab.page.add_init_script(RECORD_VIOLATIONS)
    page = tab.open("overview")
    for name, view in [("Jobs", "jobs"), ("Submit", "submit"), ("Spend", "spend"), ("Settings", "settings")]:
        tab.go(name, view)
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
        expect(page).to_have_title(re.compile(r" · SimpleTuner Cloud$"))
    tab.go("Webhooks", "webhooks")
    assert page.evaluate("window.__violations") == []
    assert requested and all(url.startswith(f"{cloud.base}/") for url in requested), requested
    assert tab.errors == []


def test_an_unknown_page_says_so_and_links_home(tab: Tab) -> None:
    page = tab.open("no-such-view", ready_as="not-found")
    expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    page.get_by_role("link", name="Go to the overview").click()
    tab.wait_ready("overview")


def test_a_remote_browser_signs_in_with_the_printed_link(browser: Any, cloud: Cloud, shots_dir: Path) -> None:
    # Through a tunnel or a reverse proxy every request carries X-Forwarded-For: not local.
    context = browser.new_context(viewport=DESKTOP, extra_http_headers={"X-Forwarded-For": "203.0.113.9"})
    try:
        tab = attach(context.new_page(), cloud.base, shots_dir)
        page = tab.page
        page.goto(f"{cloud.base}/cloud#/jobs")
        tab.wait_ready("login")
        expect(page).to_have_url(f"{cloud.base}/cloud#/login")
        expect(page.locator("#auth-warning")).to_be_visible()
        assert tab.errors == []  # the page asked the API nothing it would be refused
        tab.shot("login-1280")

        field = page.get_by_label("Login link or admin token")
        field.fill("st_not-the-token")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#login-result")).to_contain_text("That token is not this server's admin token.")
        expect(field).to_have_value("")

        token = cloud.app.state.settings.admin_token_path.read_text().strip()
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        field.fill(f"{cloud.base}/login?token={token}")  # the whole link, as printed
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{cloud.base}/cloud#/overview")
        assert not [u for u in urls if token in u]  # posted, never in an address (history, proxy logs)
        tab.wait_ready("overview")
        expect(page.locator("#auth-warning")).to_be_hidden()
        expect(page.locator("#provider-model")).to_have_text("simpletuner/advanced-trainer")
        cookie = next(c for c in context.cookies() if c["name"] == "simpletuner_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and token not in cookie["value"]

        tab.go("Settings", "settings")  # a change needs the session too
        page.get_by_label("Default hardware").select_option("a100")
        page.get_by_role("button", name="Save settings").click()
        expect(page.locator("#settings-result")).to_have_text("Settings saved.")
        assert [e for e in tab.errors if "401" not in e] == []  # only the wrong token was refused
    finally:
        context.close()
