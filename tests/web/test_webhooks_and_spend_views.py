"""Webhooks (the flight recorder, `views/webhooks.js`) and Spend (`views/spend.js`) in the system
Chromium, after a real sandbox job: deliveries accepted and rejected with their reasons, Replay, and
what the job cost per day, hardware and environment against the limit."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal

import httpx
from playwright.sync_api import expect

from tests.web.conftest import Cloud, Tab


def test_the_flight_recorder_lists_deliveries_and_replays_one(tab: Tab, cloud: Cloud) -> None:
    cloud.sandbox_config.step_seconds = 0.05
    job_id = cloud.wait_for(cloud.submit(), "succeeded")["id"]
    unsigned = httpx.post(f"{cloud.base}/api/webhooks/replicate", json={"id": "x"}, trust_env=False)
    assert unsigned.status_code == 401

    page = tab.open("webhooks")
    rows = page.locator("#deliveries-table tbody tr")
    expect(rows.first).to_contain_text("rejected")
    expect(rows.first).to_contain_text("signature_missing")
    accepted = rows.filter(has_text="completed")
    expect(accepted).to_have_count(1)
    expect(accepted).to_contain_text("accepted")
    expect(accepted.get_by_role("link", name=job_id)).to_have_attribute("href", f"#/jobs/{job_id}")

    page.get_by_label("Outcome").select_option("rejected")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"#/webhooks\?outcome=rejected$"))
    page.get_by_label("Outcome").select_option("accepted")
    expect(rows.filter(has_text="rejected")).to_have_count(0)

    completed = rows.filter(has_text="completed")
    completed.locator("summary").click()
    expect(completed.locator(".headers")).to_contain_text("webhook-id: msg_")
    completed.get_by_role("button", name="Replay").click()
    expect(page.locator("#replay-result")).to_contain_text(f"to job {job_id}: status unchanged (succeeded)")
    assert tab.errors == []


def test_spend_shows_the_period_per_day_hardware_and_environment(tab: Tab, cloud: Cloud) -> None:
    cloud.sandbox_config.step_seconds = 0.05
    cloud.http.put(
        "/api/cloud/providers/replicate",
        json={"cost_limit": {"enabled": True, "amount": "40", "period": "weekly", "action": "block"}},
    ).raise_for_status()
    job = cloud.wait_for(cloud.submit(), "succeeded")
    cost = job["cost"]["final_usd"]
    assert cost is not None

    page = tab.open("spend")
    expect(page.locator("#spend-total")).not_to_have_text("$0.0000")
    expect(page.locator("#spend-chart")).to_have_attribute("data-bars", "7")  # a week, day by day
    expect(page.locator("#spend-chart-summary")).to_contain_text("7 days, ")
    expect(page.locator("#spend-hardware-table tbody tr")).to_have_count(1)
    expect(page.locator("#spend-hardware-table tbody tr").first).to_contain_text("l40s")
    expect(page.locator("#spend-config-table tbody tr").first).to_contain_text("flux-lora-example")
    expect(page.locator("#spend-limit-text")).to_contain_text("of $40.00 weekly")
    expect(page.locator("#spend-limit-text")).to_contain_text("(0%): within the limit. Block.")
    page.get_by_label("Period", exact=True).select_option("daily")
    expect(page.locator("#spend-chart")).to_have_attribute("data-bars", "1")
    expect(page).to_have_url(re.compile(r"#/spend\?period=daily$"))
    assert tab.errors == []


def test_each_limit_state_reads_the_same_in_overview_and_spend(tab: Tab, cloud: Cloud) -> None:
    """ok, warning and exceeded (services/costs.py), each worded and coloured alike in both views,
    with the limit shown with its own decimals ($0.285, not $0.29)."""
    cloud.sandbox_config.step_seconds = 0.05
    cost = Decimal(cloud.wait_for(cloud.submit(), "succeeded")["cost"]["final_usd"])
    assert 0 < cost < Decimal("0.2")
    cases = [
        (
            (cost / Decimal("0.85")).quantize(Decimal("0.000001"), ROUND_DOWN),
            "warning",
            "near the limit",
            "warn",
        ),
        (cost, "exceeded", "limit reached", "bad"),
        (Decimal("0.285"), "ok", "within the limit", "ok"),
    ]
    for amount, state, words, kind in cases:
        cloud.http.put(
            "/api/cloud/providers/replicate",
            json={
                "cost_limit": {"enabled": True, "amount": str(amount), "period": "daily", "action": "block"}
            },
        ).raise_for_status()
        status = cloud.http.get("/api/cloud/cost-limit/status").json()
        assert status["state"] == state, status

        page = tab.open("overview")
        overview = page.locator("#billing-limit")
        expect(overview).to_contain_text(f"Block: {words}.")
        if kind == "ok":
            expect(overview).not_to_have_class(re.compile(r"warn|bad"))
        else:
            expect(overview).to_have_class(kind)
        if state == "ok":
            expect(overview).to_contain_text(" of $0.285 daily (0%)")
        page = tab.open("spend")
        spend = page.locator("#spend-limit-text")
        expect(spend).to_contain_text(f": {words}. Block.")
        expect(spend).to_have_class(kind)
        if state == "ok":
            expect(spend).to_contain_text(" of $0.285 daily (0%)")
        if state == "exceeded":  # the same amount, shown the same, at 100%
            expect(spend).to_contain_text(re.compile(r"^(\$[\d.]+) of \1 daily \(100%\)"))
    assert tab.errors == []
