"""Every view of the Cloud tab at 1280 and 390 px, light and dark: axe-core finds no serious or
critical accessibility violation, the console stays clean, nothing is wider than the screen, the
keyboard reaches the controls with a visible focus, and a screenshot of each is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.web.conftest import DESKTOP, PHONE, Cloud, attach

AXE = Axe()
# Elements that stick out of the viewport (tables inside their own scrolling region may).
WIDER_THAN_THE_SCREEN = """() => {
  if (document.documentElement.scrollWidth <= window.innerWidth) return [];
  return [...document.querySelectorAll("body *")]
    .filter((e) => !e.closest(".scroll") && e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`);
}"""
BLOCKING = {"serious", "critical"}


def views(job_id: str) -> list[tuple[str, str]]:
    return [
        ("overview", "overview"),
        ("jobs", "jobs"),
        (f"jobs/{job_id}", "job"),
        ("submit", "submit"),
        ("spend", "spend"),
        ("settings", "settings"),
        ("publishing", "publishing"),
        ("webhooks", "webhooks"),
        ("login", "login"),
    ]


def blocking_violations(page: Any) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_view_is_accessible_clean_and_fits(
    browser: Any, cloud: Cloud, shots_dir: Path, scheme: str
) -> None:
    cloud.sandbox_config.step_seconds = 0.05
    job_id = cloud.wait_for(cloud.submit(delivery="local"), "succeeded")["id"]
    problems: list[str] = []
    for size, viewport in (("1280", DESKTOP), ("390", PHONE)):
        context = browser.new_context(viewport=viewport, color_scheme=scheme)
        try:
            tab = attach(context.new_page(), cloud.base, shots_dir)
            for view, name in views(job_id):
                tab.open(view, ready_as=name)
                if name == "job":
                    tab.page.wait_for_selector("#loss-chart[data-points='20']")
                    tab.page.wait_for_selector("#log-text[data-lines]")
                    tab.page.wait_for_selector("#job-samples img")
                if name == "submit":
                    tab.page.wait_for_selector("#preview-summary")
                    tab.page.wait_for_selector("#estimate-cost")
                problems += [f"{view} {size} {scheme}: {v}" for v in blocking_violations(tab.page)]
                overflow = tab.page.evaluate(WIDER_THAN_THE_SCREEN)
                if overflow:
                    problems.append(f"{view} {size} {scheme}: wider than the screen: {overflow}")
                tab.shot(f"{name}-{size}-{scheme}")
            problems += [f"console at {size} {scheme}: {e}" for e in tab.errors]
        finally:
            context.close()
    assert problems == []


def test_the_keyboard_reaches_every_control_with_a_visible_focus(
    browser: Any, cloud: Cloud, shots_dir: Path
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    try:
        tab = attach(context.new_page(), cloud.base, shots_dir)
        page = tab.open("settings")
        reached: list[str] = []
        for _ in range(100):  # through every control once, until focus leaves the page
            page.keyboard.press("Tab")
            focused = page.evaluate(
                """() => {
                  const el = document.activeElement;
                  if (!document.hasFocus() || el === document.body) return null;
                  const style = getComputedStyle(el);
                  return {id: el.id || el.textContent.trim().slice(0, 20), outline: style.outlineStyle,
                          width: parseFloat(style.outlineWidth)};
                }"""
            )
            if focused is None or (reached and focused["id"] == reached[0]):
                break
            assert focused["outline"] != "none" and focused["width"] >= 2, focused
            reached.append(focused["id"])
        for control in (
            "token-input",
            "token-save",
            "setting-public_url",
            "webhook-test",
            "setting-cost_limit-amount",
        ):
            assert control in reached, reached
        # Enter on a navigation link opens the view, and focus moves to its heading.
        page.get_by_role("link", name="Jobs", exact=True).focus()
        page.keyboard.press("Enter")
        tab.wait_ready("jobs")
        assert (
            page.evaluate("document.activeElement.tagName + ' ' + document.activeElement.textContent")
            == "H2 Jobs"
        )
    finally:
        context.close()
