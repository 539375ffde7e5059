"""Settings (`views/settings.js`, the seed's Cloud -> Settings) in the system Chromium: every field
round-trips through the API, Save sends only what changed, a wrong value names its field, the
allowlist preset, the webhook test, and the token's checks."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import Cloud, Tab


def test_settings_round_trip(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("settings")
    page.get_by_label("Cost Limit enabled").check()
    page.get_by_label("Amount (USD)").fill("25.50")
    page.get_by_label("Period", exact=True).select_option("weekly")
    page.get_by_label("Block").check()
    page.get_by_label("Time zone of the period").fill("Europe/Lisbon")
    page.get_by_label("Cancel running jobs at the limit").check()
    page.get_by_label("Cancel", exact=True).select_option("projected")
    page.get_by_role("button", name="Add Replicate's ranges").click()
    page.get_by_label("Trusted proxies (one per line)").fill("10.0.0.5\n10.0.0.6")
    page.get_by_label("Require webhook signatures").uncheck()
    page.get_by_label("Default hardware").select_option("a100")
    page.get_by_label("Training data upload (data consent)").select_option("allow")
    page.get_by_label("Proxy URL for calls to Replicate").fill("http://proxy.internal:3128")
    page.get_by_label("HTTP timeout (seconds)").fill("45")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text("Settings saved.")

    saved = cloud.http.get("/api/cloud/providers/replicate").json()
    assert {key: saved[key] for key in saved if key not in ("derived", "warnings")} == {
        "model": None,
        "version": None,
        "hardware": "a100",
        "public_url": None,
        "webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"],
        "trusted_proxies": ["10.0.0.5", "10.0.0.6"],
        "require_signature": False,
        "cost_limit": {
            "enabled": True,
            "amount": 25.5,
            "period": "weekly",
            "action": "block",
            "cancel_running_at_limit": True,
            "cancel_on": "projected",
            "time_zone": "Europe/Lisbon",
        },
        "http_timeout": 45.0,
        "proxy_url": "http://proxy.internal:3128",
        "data_consent": "allow",
    }
    assert saved["derived"]["trainer_model"] == "simpletuner/advanced-trainer-a100"

    page.reload()
    tab.wait_ready("settings")
    expect(page.get_by_label("Amount (USD)")).to_have_value("25.5")
    expect(page.get_by_label("Webhook allowed IPs (one per line)")).to_have_value(
        "34.82.0.0/16\n35.185.0.0/16"
    )
    expect(page.get_by_label("Block")).to_be_checked()
    expect(page.get_by_label("Cancel running jobs at the limit")).to_be_checked()
    expect(page.get_by_label("Time zone of the period")).to_have_value("Europe/Lisbon")
    expect(page.get_by_label("Default hardware")).to_have_value("a100")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text("Nothing to save: no setting changed.")
    # That proxy does not exist, so listing the trainer's versions fails; the page says so and works on.
    expect(page.locator("#setting-version-error")).to_contain_text("The versions could not be listed:")
    assert tab.errors == ["Failed to load resource: the server responded with a status of 502 (Bad Gateway)"]


def test_only_changed_settings_are_sent(tab: Tab, cloud: Cloud) -> None:
    sent: list[str] = []
    tab.page.on("request", lambda r: r.method == "PUT" and sent.append(r.post_data or ""))
    page = tab.open("settings")
    # Another client changes the hardware after this page was read; saving the allowlist keeps it.
    cloud.http.put("/api/cloud/providers/replicate", json={"hardware": "a100"}).raise_for_status()
    page.get_by_label("Webhook allowed IPs (one per line)").fill("34.82.0.0/16")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text("Settings saved.")
    assert sent == ['{"webhook_allowed_ips":["34.82.0.0/16"]}']
    assert cloud.http.get("/api/cloud/providers/replicate").json()["hardware"] == "a100"


def test_a_wrong_value_names_its_field(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("settings")
    page.get_by_label("Webhook allowed IPs (one per line)").fill("34.82.0.0/16\nnot-an-ip")
    page.get_by_role("button", name="Save settings").click()
    result = page.locator("#settings-result")
    expect(result).to_contain_text("webhook_allowed_ips.1")
    expect(result).to_contain_text("(validation_error)")
    assert cloud.http.get("/api/cloud/providers/replicate").json()["webhook_allowed_ips"] == []


def test_the_webhook_test_goes_through_the_saved_url(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("settings")
    expect(page.locator("#setting-webhook-url")).to_have_text(
        f"Webhooks go to {cloud.base}/api/webhooks/replicate"
    )
    page.get_by_role("button", name="Test webhook").click()
    result = page.locator("#webhook-test-result")
    expect(result).to_contain_text(
        f"reached this server's receiver through {cloud.base}/api/webhooks/replicate"
    )
    expect(result).to_contain_text("HTTP 200")
    page.get_by_label("Webhook URL (your public URL, no path)").fill("https://example.ngrok.app")
    page.get_by_role("button", name="Test webhook").click()
    expect(result).to_have_text("Save the settings first: the test goes through the saved webhook URL.")
    assert tab.errors == []


def test_a_token_that_is_not_a_replicate_token_is_refused_and_not_kept(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("settings")
    expect(page.locator("#token-source")).to_have_text("In use: the token from the sandbox.")
    page.get_by_label("API token").fill("sk-not-a-replicate-token")
    page.get_by_role("button", name="Save token").click()
    result = page.locator("#token-result")
    expect(result).to_contain_text("(token_invalid_format)")
    expect(result).to_contain_text("r8_")
    expect(page.get_by_label("API token")).to_have_value("")  # the secret does not linger in the page
    page.get_by_role("button", name="Delete saved token").click()
    expect(result).to_contain_text("No saved token to delete.")
