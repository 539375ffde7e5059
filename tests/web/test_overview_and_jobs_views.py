"""Overview and Jobs (`views/overview.js`, `views/jobs.js`) in the system Chromium: readiness with the
seed's messages, spend against the limit, active jobs and the jobs list updating live, filters,
search and pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.database import Database
from tests.support.live_server import live_server
from tests.support.provider_sandbox import record_job
from tests.web.conftest import DESKTOP, Cloud, Tab, attach, run_async


@pytest.fixture
def tokenless(browser: Any, state_root: Path, shots_dir: Path) -> Iterator[Tab]:
    """A server with no Replicate token anywhere (not the sandbox)."""
    with live_server(create_app(load_settings())) as base:
        context = browser.new_context(viewport=DESKTOP)
        try:
            yield attach(context.new_page(), base, shots_dir)
        finally:
            context.close()


def test_without_a_token_the_overview_says_what_the_seed_says(tokenless: Tab) -> None:
    page = tokenless.open("overview")
    expect(page.locator("#sandbox-banner")).to_have_count(0)
    expect(page.locator("#provider-ready")).to_have_text("Not ready: REPLICATE_API_TOKEN not set")
    expect(page.locator("#provider-token")).to_contain_text("not set: export REPLICATE_API_TOKEN")
    page.get_by_role("button", name="Validate").click()
    result = page.locator("#validate-result")
    expect(result).to_contain_text("REPLICATE_API_TOKEN not set (token_missing)")
    expect(result).to_contain_text('export REPLICATE_API_TOKEN="r8_..."')


def test_the_overview_follows_active_jobs_and_spend_live(tab: Tab, cloud: Cloud) -> None:
    cloud.http.put(
        "/api/cloud/providers/replicate",
        json={"cost_limit": {"enabled": True, "amount": "20", "period": "daily", "action": "warn"}},
    ).raise_for_status()
    page = tab.open("overview")
    expect(page.locator("#active-jobs")).to_contain_text("No active jobs.")
    expect(page.locator("#billing-limit")).to_contain_text("Cost limit: $0.0000 of $20.00 daily (0%), Warn")
    expect(page.locator("#system-status")).to_contain_text("All Systems Operational")
    job_id = cloud.submit()  # from elsewhere (the CLI, say): the page learns it from the live feed
    row = page.locator("#active-jobs-table tbody tr", has_text=job_id)
    expect(row).to_contain_text(re.compile(r"packaging|uploading|submitting|queued|running"))
    expect(row.get_by_role("progressbar")).to_be_visible()
    cloud.wait_for(job_id, "succeeded")
    expect(page.locator("#active-jobs")).to_contain_text("No active jobs.")
    expect(page.locator("#billing-spend")).not_to_contain_text("today $0.0000")
    assert tab.errors == []


def test_the_jobs_list_filters_searches_and_pages(tab: Tab, cloud: Cloud) -> None:
    async def record() -> tuple[list[str], str]:
        database = Database(load_settings().effective_database_url)  # the server's own database file
        try:
            async with database.session() as session:
                done = [await record_job(session, "succeeded", cost="0.5") for _ in range(27)]
                failed = await record_job(session, "failed", hardware="a100")
                await session.commit()
        finally:
            await database.dispose()
        return done, failed

    finished, failed = run_async(record())

    page = tab.open("jobs")
    expect(page.locator("#jobs-count")).to_have_text("28 jobs; showing 1–25.")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(25)
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text(failed)  # newest first
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#jobs-count")).to_have_text("28 jobs; showing 26–28.")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(page.locator("#jobs-table tbody tr")).to_have_count(25)

    page.get_by_label("Status").select_option("failed")
    expect(page.locator("#jobs-count")).to_have_text("1 job.")
    expect(page).to_have_url(re.compile(r"#/jobs\?status=failed$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Hardware").select_option("a100")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    page.get_by_label("Hardware").select_option("")
    page.get_by_label("Search").fill(finished[3])
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text(finished[3])
    page.get_by_label("Search").fill("no-such-job")
    expect(page.locator("#jobs-list")).to_contain_text("No job matches these filters.")

    page.reload()  # the filters live in the address
    tab.wait_ready("jobs")
    expect(page.get_by_label("Search")).to_have_value("no-such-job")
    tab.shot("jobs-filtered-1280")
    assert [e for e in tab.errors] == []
