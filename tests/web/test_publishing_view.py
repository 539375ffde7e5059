"""Publishing (`views/publishing.js`, the seed's Publishing tab) in the system Chromium against
`simpletuner server --sandbox`: the form round-trips (secrets saved, never shown back), the S3 test
against a real moto server process, and the Hub token check against the sandbox's Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.support.s3_servers import MOTO_KEYS, moto_server
from tests.web.conftest import Cloud, Tab

HUB_TOKEN = "hf_" + "sandboxWriteToken" + "0" * 20


def test_publishing_round_trip_and_the_s3_test(tab: Tab, cloud: Cloud, tmp_path: Path) -> None:
    with moto_server(tmp_path / "moto") as s3:
        bucket = s3.bucket("loras")
        page = tab.open("publishing")
        expect(page.locator("#pub-token-state")).to_contain_text("No token: export HF_TOKEN")
        expect(page.locator("#pub-local-state")).to_contain_text(f"{cloud.base}/api/cloud/storage")
        page.get_by_role("radio", name="External S3").check()
        page.get_by_label("Push to Hub").check()
        page.get_by_label("hub_model_id").fill("me/my-lora")
        page.get_by_label("Private repository").uncheck()
        page.get_by_label("Endpoint URL (empty: AWS S3)").fill(s3.url)
        page.get_by_label("Bucket").fill(bucket)
        page.get_by_label("Key prefix").fill("team/loras")
        page.get_by_label("Access key").fill(MOTO_KEYS["aws_access_key_id"])
        page.get_by_label("Secret key").fill(MOTO_KEYS["aws_secret_access_key"])
        page.get_by_role("button", name="Save publishing").click()
        expect(page.locator("#publishing-result")).to_have_text("Publishing saved.")
        expect(page.get_by_label("Secret key")).to_have_value("")  # write-only: not kept in the page
        expect(page.locator("#pub-s3-keys-state")).to_have_text(
            "The access key is saved (type a new one to replace it). "
            "The secret key is saved (type a new one to replace it)."
        )
        saved = cloud.http.get("/api/cloud/publishing").json()
        assert saved["default_delivery"] == "s3"
        assert {k: saved["hub"][k] for k in ("push_to_hub", "hub_model_id", "private")} == {
            "push_to_hub": True,
            "hub_model_id": "me/my-lora",
            "private": False,
        }
        assert {
            k: saved["s3"][k] for k in ("endpoint_url", "bucket", "prefix", "access_key", "secret_key")
        } == {
            "endpoint_url": s3.url,
            "bucket": "loras",
            "prefix": "team/loras",
            "access_key": {"saved": True},
            "secret_key": {"saved": True},
        }
        assert MOTO_KEYS["aws_secret_access_key"] not in cloud.http.get("/api/cloud/publishing").text

        page.get_by_role("button", name="Test S3").click()
        result = page.locator("#pub-s3-test-result")
        expect(result).to_have_class("message ok")
        expect(result).to_contain_text(
            "The bucket `loras` accepts writes, reads and deletes with these keys."
        )
        expect(result.locator("li strong")).to_have_text(["write: ok", "read: ok", "delete: ok"])
        page.get_by_label("Bucket").fill("no-such-bucket")  # tried as typed, before saving
        page.get_by_role("button", name="Test S3").click()
        expect(result).to_have_class("message bad")
        expect(result.locator("li[data-step='write'] strong")).to_have_text("write: failed")

        page.reload()
        tab.wait_ready("publishing")
        expect(page.get_by_label("hub_model_id")).to_have_value("me/my-lora")
        expect(page.get_by_label("Bucket")).to_have_value("loras")
        expect(page.get_by_role("radio", name="External S3")).to_be_checked()
        # The Submit view takes these as its defaults.
        tab.go("Submit", "submit")
        expect(page.get_by_role("radio", name="External S3")).to_be_checked()
        expect(page.locator("#delivery-card")).to_contain_text("Into s3://loras/team/loras/<job id>/.")
        expect(page.get_by_label("Hub model id")).to_have_value("me/my-lora")
    assert tab.errors == []


def test_the_hub_token_is_checked_saved_and_deleted(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("publishing")
    page.get_by_label("Hugging Face token").fill("hf_short")
    page.get_by_role("button", name="Check token").click()
    check = page.locator("#pub-hub-check")
    expect(check).to_have_class("message bad")
    page.get_by_label("Hugging Face token").fill(HUB_TOKEN)
    page.get_by_role("button", name="Save publishing").click()
    expect(page.locator("#publishing-result")).to_have_text("Publishing saved.")
    expect(check).to_have_class("message ok")  # a saved token is checked at once
    expect(page.locator("#pub-token-state")).to_have_text("Token: the saved token.")
    page.get_by_role("button", name="Check token").click()
    expect(check).to_have_class("message ok")
    page.get_by_role("button", name="Delete saved token").click()
    expect(check).to_have_text("The saved token was deleted.")
    expect(page.locator("#pub-token-state")).to_contain_text("No token: export HF_TOKEN")


def test_the_s3_test_sends_the_fields_as_the_form_shows_them(tab: Tab, cloud: Cloud) -> None:
    """A cleared Endpoint goes as null (the server then tests AWS S3, what Save would switch to), not
    left out (the server would test the saved endpoint and report on what the form no longer has)."""
    saved = {"endpoint_url": "http://127.0.0.1:9", "region": "eu-west-1", "bucket": "loras", "prefix": "team"}
    keys = {"access_key": MOTO_KEYS["aws_access_key_id"], "secret_key": MOTO_KEYS["aws_secret_access_key"]}
    cloud.http.put("/api/cloud/publishing", json={"s3": {**saved, **keys}}).raise_for_status()
    sent: list[Any] = []

    def answer(route: Any) -> None:  # AWS itself is not reachable from a test: answer for it
        sent.append(route.request.post_data_json)
        body = {"ok": True, "failed_step": None, "message": "Tested.", "hint": "", "bucket": "loras"}
        route.fulfill(json={**body, "endpoint_url": None, "key": "k", "steps": []})

    page = tab.open("publishing")
    page.route("**/api/cloud/publishing/s3/test", answer)
    expect(page.get_by_label("Endpoint URL (empty: AWS S3)")).to_have_value(saved["endpoint_url"])
    page.get_by_label("Endpoint URL (empty: AWS S3)").fill("")
    page.get_by_label("Key prefix").fill("")
    page.get_by_role("button", name="Test S3").click()
    expect(page.locator("#pub-s3-test-result")).to_contain_text("Tested.")
    assert sent == [
        {
            "endpoint_url": None,
            "region": "eu-west-1",
            "bucket": "loras",
            "prefix": None,
            "public_base_url": None,
        }
    ]
    assert tab.errors == []


def test_deleting_the_saved_token_keeps_what_is_typed_and_not_saved(tab: Tab, cloud: Cloud) -> None:
    cloud.http.put("/api/cloud/publishing", json={"hub": {"token": HUB_TOKEN}}).raise_for_status()
    page = tab.open("publishing")
    expect(page.locator("#pub-token-state")).to_have_text("Token: the saved token.")
    page.get_by_label("hub_model_id").fill("me/not-saved-yet")
    page.get_by_label("Bucket").fill("typed-bucket")
    page.get_by_role("radio", name="External S3").check()
    page.get_by_role("button", name="Delete saved token").click()
    expect(page.locator("#pub-hub-check")).to_have_text("The saved token was deleted.")
    expect(page.locator("#pub-token-state")).to_contain_text("No token: export HF_TOKEN")
    expect(page.get_by_label("hub_model_id")).to_have_value("me/not-saved-yet")
    expect(page.get_by_label("Bucket")).to_have_value("typed-bucket")
    expect(page.get_by_role("radio", name="External S3")).to_be_checked()
    page.get_by_role("button", name="Save publishing").click()  # and they are still saved as typed
    expect(page.locator("#publishing-result")).to_have_text("Publishing saved.")
    saved = cloud.http.get("/api/cloud/publishing").json()
    assert (saved["default_delivery"], saved["hub"]["hub_model_id"], saved["s3"]["bucket"]) == (
        "s3",
        "me/not-saved-yet",
        "typed-bucket",
    )
    assert saved["hub"]["token"]["saved"] is False
    assert tab.errors == []
