"""The Cloud tab in the system Chromium, against live servers: the seed's quick start (open the tab,
click Validate), the sandbox banner, settings, billing, dataset preview, and the seed's errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.settings import load_settings
from tests.support.live_server import live_server
from tests.support.provider_sandbox import sandbox_mode_server


@pytest.fixture
def sandboxed(tmp_path: Path, state_root: Path) -> Iterator[str]:
    from simpletuner_cloud.services.datasets import install_example

    settings = load_settings()
    install_example(settings)
    with sandbox_mode_server() as (base, _app):
        yield base


@pytest.fixture
def plain(state_root: Path) -> Iterator[str]:
    with live_server(create_app(load_settings())) as base:
        yield base


def open_tab(page: Any, base: str) -> None:
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/cloud")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def test_quick_start_validate_in_sandbox(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    expect(page.locator("#sandbox-banner")).to_have_text("sandbox: no GPUs, no charges")
    expect(page.locator("#provider-model")).to_have_text("simpletuner/advanced-trainer")
    expect(page.locator("#provider-webhook")).to_have_text(f"{sandboxed}/api/webhooks/replicate")
    page.get_by_role("button", name="Validate").click()
    result = page.locator("#validate-result")
    expect(result).to_contain_text("Token works: sandbox (Sandbox (offline Replicate emulator), user).")
    expect(result).to_contain_text("Token r8_...ken0 from sandbox.")
    expect(page.locator("#system-status")).to_contain_text("All Systems Operational")
    expect(page.locator("#hardware tbody tr")).to_have_count(2)
    expect(page.locator("#hardware tbody tr").first).to_contain_text("L40S (default)")


def test_settings_round_trip_and_billing(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    page.locator("#setting-cost_limit-enabled").check()
    page.locator("#setting-cost_limit-amount").fill("25")
    page.locator("#setting-cost_limit-period").select_option("weekly")
    page.locator("#setting-cost_limit-action").select_option("block")
    page.locator("#setting-webhook_allowed_ips").fill("34.82.0.0/16\n35.185.0.0/16")
    page.locator("#setting-hardware").select_option("a100")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text("Settings saved.")
    expect(page.locator("#billing-limit")).to_contain_text("Cost limit: $25.00 weekly, action block: ok")
    expect(page.locator("#provider-model")).to_have_text("simpletuner/advanced-trainer-a100")
    saved = httpx.get(f"{sandboxed}/api/cloud/providers/replicate").json()
    assert saved["cost_limit"] == {"enabled": True, "amount": 25.0, "period": "weekly", "action": "block"}
    assert saved["webhook_allowed_ips"] == ["34.82.0.0/16", "35.185.0.0/16"]
    assert saved["hardware"] == "a100"
    assert saved["require_signature"] is True  # untouched fields keep their values
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#setting-cost_limit-amount")).to_have_value("25")
    expect(page.locator("#setting-webhook_allowed_ips")).to_have_value("34.82.0.0/16\n35.185.0.0/16")


def test_settings_error_names_the_field(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    page.locator("#setting-webhook_allowed_ips").fill("34.82.0.0/16\nnot-an-ip")
    page.get_by_role("button", name="Save settings").click()
    result = page.locator("#settings-result")
    expect(result).to_contain_text("webhook_allowed_ips.1")
    expect(result).to_contain_text("(validation_error)")


def test_billing_never_invents_a_balance(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    balance = page.locator("#billing-balance")
    expect(balance).to_contain_text("Balance: unknown (Replicate has no public API for account balance)")
    expect(balance.locator("a")).to_have_attribute("href", "https://replicate.com/account/billing")
    expect(page.locator("#billing-spend")).to_have_text(
        "Spent by this tool: today $0.00, this week $0.00, this month $0.00."
    )


def test_dataset_preview(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    row = page.locator("#configs tbody tr", has_text="flux-lora-example")
    expect(row).to_contain_text("flux")
    row.get_by_role("button", name="Preview upload").click()
    table = page.locator("#preview-datasets tbody")
    expect(table.locator("tr").first).to_contain_text("sks-plushie")
    expect(table.locator("tr").first).to_contain_text("upload")
    expect(table.locator("tr").nth(1)).to_contain_text("skip")
    expect(page.locator("#preview-summary")).to_have_text(
        re.compile(r"Archive: [\d,]+ bytes of 104,857,600 allowed\.")
    )


def test_no_token_shows_the_seed_message(page: Any, plain: str) -> None:
    open_tab(page, plain)
    expect(page.locator("#sandbox-banner")).to_have_count(0)
    expect(page.locator("#provider-token")).to_contain_text("not set")
    page.get_by_role("button", name="Validate").click()
    result = page.locator("#validate-result")
    expect(result).to_contain_text("REPLICATE_API_TOKEN not set (token_missing)")
    expect(result).to_contain_text('export REPLICATE_API_TOKEN="r8_..."')


def test_bad_token_format_is_refused(page: Any, plain: str) -> None:
    open_tab(page, plain)
    page.locator("#token-input").fill("sk-not-a-replicate-token")
    page.get_by_role("button", name="Save token").click()
    result = page.locator("#token-result")
    expect(result).to_contain_text("(token_invalid_format)")
    expect(result).to_contain_text("Tokens start with r8_")
    expect(page.locator("#token-input")).to_have_value("")  # the secret does not linger in the page


def test_remote_browser_needs_the_login_link(
    page: Any, monkeypatch: pytest.MonkeyPatch, state_root: Path
) -> None:
    monkeypatch.setenv("SIMPLETUNER_REQUIRE_AUTH", "1")
    app = create_app(load_settings())
    with live_server(app) as base:
        page.goto(f"{base}/cloud")
        expect(page.locator("#auth-warning")).to_be_visible()
        token = app.state.settings.admin_token_path.read_text().strip()
        page.goto(f"{base}/login?token={token}")
        expect(page).to_have_url(f"{base}/cloud")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator("#auth-warning")).to_be_hidden()
        expect(page.locator("#hardware tbody tr")).to_have_count(2)


def test_dataset_upload_with_consent_progress_and_reuse(page: Any, sandboxed: str) -> None:
    open_tab(page, sandboxed)
    page.locator("#configs tbody tr", has_text="flux-lora-example").get_by_role(
        "button", name="Preview upload"
    ).click()
    upload = page.get_by_role("button", name="Upload to Replicate")
    upload.click()  # consent mode `ask` and the box is not ticked
    result = page.locator("#upload-result")
    expect(result).to_contain_text("(consent_required)")
    page.locator("#upload-consent").check()
    upload.click()
    expect(result).to_contain_text(re.compile(r"^Uploaded [\d,]+ bytes \(24 files\)\."))
    expect(result).to_contain_text("reused: false")
    bar = page.locator("#upload-progress")
    assert bar.evaluate("b => b.value === b.max && b.max > 1")
    upload.click()
    expect(result).to_contain_text(re.compile(r"^Reused [\d,]+ bytes"))
    expect(result).to_contain_text("reused: true")


def test_several_local_datasets_need_the_merge_box(page: Any, sandboxed: str) -> None:
    from tests.datasets.factory import local_entry, write_environment, write_images

    folder = write_environment(
        load_settings().effective_configs_dir,
        "two-sets",
        datasets=[local_entry("a", "data"), local_entry("b", "more")],
    )
    write_images(folder / "more", 2)
    open_tab(page, sandboxed)
    row = page.locator("#configs tbody tr", has_text="two-sets")
    row.get_by_role("button", name="Preview upload").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("(dataset_unsupported)")
    expect(page.get_by_role("button", name="Upload to Replicate")).to_have_count(0)
    page.locator("#merge-local").check()
    row.get_by_role("button", name="Preview upload").click()
    expect(page.locator("#preview-summary")).to_contain_text("allowed.")
    expect(preview).to_contain_text("merged")
    page.locator("#upload-consent").check()
    page.get_by_role("button", name="Upload to Replicate").click()
    expect(page.locator("#upload-result")).to_contain_text(
        "(5 files)"
    )  # 3 + 2 images; captioned by file name, so their .txt files stay home


def test_textfile_captions_need_the_rename_box_and_the_preview_shows_the_names(
    page: Any, sandboxed: str
) -> None:
    from tests.datasets.factory import local_entry, write_environment, write_image

    folder = write_environment(
        load_settings().effective_configs_dir,
        "captions",
        datasets=[local_entry(caption_strategy="textfile")],
        images=0,
    )
    write_image(folder / "data" / "IMG_1.jpg", caption="sks dog on the beach")
    write_image(folder / "data" / "IMG_2.jpg", caption="AC/DC poster")
    open_tab(page, sandboxed)
    row = page.locator("#configs tbody tr", has_text="captions")
    row.get_by_role("button", name="Preview upload").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("(dataset_unsupported)")
    expect(preview).to_contain_text("'Name images after their captions' box")
    page.get_by_label("Name images after their captions").check()
    row.get_by_role("button", name="Preview upload").click()
    changes = page.locator("#preview-caption-changes tbody tr")
    expect(changes).to_have_count(1)
    expect(changes.first).to_contain_text("IMG_2.jpg")
    expect(changes.first).to_contain_text("AC DC poster")
    page.locator("#preview-archive summary").click()
    expect(page.locator("#preview-archive-files")).to_contain_text("sks_dog_on_the_beach.jpg")
    page.locator("#upload-consent").check()
    page.get_by_role("button", name="Upload to Replicate").click()
    expect(page.locator("#upload-result")).to_contain_text("(4 files)")
