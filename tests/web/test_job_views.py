"""The Submit view and the job page (`views/submit.js`, `views/job.js`, `views/artifacts.js`) in the
system Chromium against `simpletuner server --sandbox`: a new user's whole path (Validate, Submit with
the example, estimate and preview, consent, submit, the job live with its chart moving, the log, the
samples and files, the weights downloaded), a cancel, a failed job's hints, a Block cost limit
refusing a submit, the merge and rename agreements, and a huge log."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.jobs import append_logs
from tests.support.cuttable_link import cuttable_link
from tests.support.provider_sandbox import record_job
from tests.support.waiting import eventually_sync
from tests.web.conftest import Cloud, Tab, run_async

CHART = "#loss-chart"


def points(page: Any) -> int:
    return int(page.locator(CHART).get_attribute("data-points") or 0)


def test_a_new_user_trains_the_example_and_watches_it_live(tab: Tab, cloud: Cloud) -> None:
    page = tab.page
    page.goto(f"{cloud.base}/")
    expect(page).to_have_url(f"{cloud.base}/cloud#/overview")
    tab.wait_ready("overview")
    expect(page.locator("#sandbox-banner")).to_have_text("sandbox: no GPUs, no charges")
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#validate-result")).to_contain_text(
        "Token works: sandbox (Sandbox (offline Replicate emulator), user)."
    )
    expect(page.locator("#validate-result")).to_contain_text("Token r8_...ken0 from sandbox.")

    tab.go("Submit", "submit")
    # The only environment is chosen for a new user; its preview and estimate follow.
    expect(page.get_by_label("Environment", exact=True)).to_have_value("flux-lora-example")
    expect(page.locator("#preview-summary")).to_have_text(
        re.compile(r"^Archive: [\d.]+ KiB \([\d,]+ bytes\) of 100\.0 MiB allowed\.$")
    )
    expect(page.locator("#preview-datasets tbody tr").first).to_contain_text("sks-plushie")
    estimate = cloud.http.post("/api/cloud/cost-estimate", json={"config": "flux-lora-example"}).json()
    low, high = (Decimal(estimate["cost_usd"][k]).quantize(Decimal("0.01")) for k in ("low", "high"))
    expect(page.locator("#estimate-cost")).to_have_text(f"Estimated cost: ${low} – ${high}")
    expect(page.locator("#estimate-time")).to_contain_text("for 1,000 steps on L40S at $3.51/h.")
    expect(page.locator("#estimate-basis")).to_contain_text("Basis: ")
    page.get_by_label("I agree to upload these files to Replicate's upload servers").check()
    page.get_by_label("Download to this machine").check()
    page.get_by_role("button", name="Submit job").click()

    expect(page).to_have_url(re.compile(r"#/jobs/job_[0-9a-z]+$"))
    tab.wait_ready("job")
    job_id = page.url.rsplit("/", 1)[1]
    # Packaging and upload happen on the job page, then the trainer starts.
    timeline = page.locator("#job-timeline")
    expect(timeline).to_contain_text("uploading from packaging")
    expect(page.locator("body")).to_have_attribute("data-job-status", "running")
    # The chart grows from live progress events while the job is still running.
    page.wait_for_function(
        "() => Number(document.querySelector('#loss-chart').dataset.points) >= 2", timeout=60_000
    )
    seen = points(page)
    page.wait_for_function(
        f"() => Number(document.querySelector('#loss-chart').dataset.points) > {seen}"
        " && document.body.dataset.jobStatus === 'running'",
        timeout=60_000,
    )
    expect(page.locator("#job-progress-text")).to_contain_text(re.compile(r"Step [\d,]+ of 1,000"))
    expect(page.locator("#job-cost-so-far")).to_have_text(re.compile(r"^\$\d"))
    tab.shot("job-running-1280")

    expect(page.locator("body")).to_have_attribute("data-job-status", "succeeded")
    expect(page.locator(CHART)).to_have_attribute("data-points", "20")
    expect(page.locator(CHART)).to_have_attribute("data-last-step", "1000")
    expect(page.locator("#loss-chart-summary")).to_contain_text("20 readings, steps 50 to 1,000")
    assert page.locator(f"{CHART} polyline.series-loss").count() == 1
    expect(page.locator("#job-cost-final")).to_have_text(re.compile(r"^\$\d"))
    expect(page.locator("#job-progress-text")).to_have_text("Step 1,000 of 1,000 (100%)")
    expect(page.locator("#log-text")).to_contain_text(
        f"Checkpoints published to: {cloud.base}/api/cloud/storage/"
    )

    # The results: delivered here and verified, the validation samples by step, the weights to download.
    delivery = page.locator("#job-deliveries li[data-destination='local']")
    expect(delivery).to_contain_text("verified")
    expect(page.locator("#artifacts-message")).to_contain_text(f"cloud_outputs/{job_id}: verified")
    expect(page.locator("#job-samples figcaption")).to_have_text(
        ["Step 250", "Step 500", "Step 750", "Step 1,000"]
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('#job-samples img')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )
    weights = page.locator("#job-files a", has_text=re.compile(r"checkpoint-1000/pytorch_lora_weights"))
    with page.expect_download() as download:
        weights.click()
    saved = Path(download.value.path())
    listed = cloud.http.get(f"/api/cloud/jobs/{job_id}/artifacts").json()["artifacts"]
    expected = next(
        a for a in listed if a["name"].endswith("checkpoint-1000/pytorch_lora_weights.safetensors")
    )
    assert download.value.suggested_filename == "pytorch_lora_weights.safetensors"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == expected["sha256"]

    # The log: search shows the matching lines of what is loaded, and says how many.
    page.get_by_label("Search the log").fill("step 1000 OF 1000")  # case does not matter
    notice = page.locator("#log-notice")
    expect(notice).to_have_text(re.compile(r"^[1-9]\d* of [\d,]+ loaded lines match\.$"))
    matches = int((notice.text_content() or "").split(" ")[0])
    expect(page.locator("#log-text mark")).to_have_count(matches)
    assert set(page.locator("#log-text mark").all_text_contents()) == {"Step 1000 of 1000"}
    page.get_by_label("Search the log").fill("")
    expect(page.locator("#log-notice")).to_have_text(re.compile(r"^[\d,]+ lines\.$"))

    # The jobs list shows it finished, with its cost.
    tab.go("Jobs", "jobs")
    row = page.locator("#jobs-table tbody tr", has_text=job_id)
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("l40s")
    expect(row).to_contain_text(re.compile(r"\$0\.\d{4}"))
    assert tab.errors == []


def test_cancel_asks_first_then_cancels_at_replicate_and_delete_says_what_stays(
    tab: Tab, cloud: Cloud
) -> None:
    cloud.sandbox_config.step_seconds = 2.0  # a job that stays running while we click
    job_id = cloud.submit()
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    expect(page.locator("body")).to_have_attribute("data-job-status", "running")
    expect(page.locator("#job-prediction a")).to_be_visible()  # it exists at Replicate
    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog", name="Cancel this job?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep it").click()  # a second thought: nothing happens
    expect(dialog).to_have_count(0)
    assert cloud.job(job_id)["cancel_requested"] is False
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_role("dialog", name="Cancel this job?").get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-action-result")).to_have_text("Canceled at Replicate.")
    expect(page.locator("body")).to_have_attribute("data-job-status", "canceled")
    expect(page.locator("#job-cancel")).to_be_hidden()
    expect(page.locator("#job-timeline")).to_contain_text("canceled from running")

    # Deleting waits for the clean-up at Replicate; before it, the server says to try again.
    expect(page.locator("#job-timeline")).to_contain_text("cleaned up")
    page.get_by_role("button", name="Delete job").click()
    page.get_by_role("dialog", name="Delete this job?").get_by_role("button", name="Delete job").click()
    deleted = page.locator("#job-deleted")
    expect(deleted).to_contain_text(f"Deleted {job_id} from this tool.")
    expect(deleted).to_contain_text("Not deleted:")
    assert cloud.http.get(f"/api/cloud/jobs/{job_id}").status_code == 404
    assert tab.errors == []


def test_a_failed_job_shows_the_error_and_the_seeds_advice(tab: Tab, cloud: Cloud) -> None:
    cloud.sandbox("POST", "/faults", json={"scripts": [{"outcome": "fail", "preset": "cuda_oom"}]})
    job_id = cloud.submit()
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    expect(page.locator("body")).to_have_attribute("data-job-status", "failed")
    error = page.locator("#job-error")
    expect(error).to_contain_text("torch.OutOfMemoryError: CUDA out of memory.")
    expect(error).to_contain_text("(trainer_out_of_memory)")
    expect(error).to_contain_text("Reduce the batch size (train_batch_size), turn on gradient checkpointing")
    expect(page.locator("#job-delete")).to_be_visible()
    expect(page.locator("#job-cancel")).to_be_hidden()
    tab.shot("job-failed-1280")
    assert tab.errors == []


def test_block_cost_limit_refuses_a_submit_whose_estimate_does_not_fit(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("settings")
    page.get_by_label("Cost Limit enabled").check()
    page.get_by_label("Amount (USD)").fill("0.01")
    page.get_by_label("Block").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-result")).to_have_text("Settings saved.")

    tab.go("Submit", "submit")
    expect(page.locator("#estimate-cost")).to_be_visible()
    page.get_by_label("I agree to upload these files to Replicate's upload servers").check()
    page.get_by_label("Nowhere (a test run)").check()
    page.get_by_role("button", name="Submit job").click()
    result = page.locator("#submit-result")
    expect(result).to_contain_text("(cost_limit_exceeded)")
    expect(result).to_contain_text("This job does not fit under the cost limit")
    expect(result).to_contain_text("limit $0.01")
    expect(page).to_have_url(re.compile(r"#/submit$"))  # nothing was created
    assert cloud.http.get("/api/cloud/jobs").json()["total"] == 0


def test_consent_is_asked_for_in_the_page(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("submit")
    expect(page.locator("#preview-summary")).to_be_visible()
    page.get_by_label("Nowhere (a test run)").check()
    page.get_by_role("button", name="Submit job").click()  # the box is not ticked
    expect(page.locator("#submit-result")).to_contain_text("(consent_required)")
    assert cloud.http.get("/api/cloud/jobs").json()["total"] == 0


def test_several_local_datasets_offer_the_merge_box(tab: Tab, cloud: Cloud) -> None:
    from tests.datasets.factory import local_entry, write_environment, write_images

    folder = write_environment(
        load_settings().effective_configs_dir,
        "two-sets",
        datasets=[local_entry("a", "data"), local_entry("b", "more")],
    )
    write_images(folder / "more", 2)
    page = tab.open("submit")
    merge = page.get_by_label("Merge several local datasets into one set")
    expect(merge).to_be_hidden()  # nothing to merge until an environment needs it
    page.get_by_label("Environment", exact=True).select_option("two-sets")
    expect(page.locator("#preview")).to_contain_text("(dataset_unsupported)")
    expect(merge).to_be_visible()
    merge.check()
    expect(page.locator("#preview-summary")).to_contain_text("allowed.")
    expect(page.locator("#preview")).to_contain_text("merged")
    expect(page.get_by_label("I agree to upload these files to Replicate's upload servers")).to_be_visible()


def test_textfile_captions_offer_the_rename_box_and_the_preview_shows_the_names(
    tab: Tab, cloud: Cloud
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
    page = tab.open("submit")
    page.get_by_label("Environment", exact=True).select_option("captions")
    expect(page.locator("#preview")).to_contain_text("'Name images after their captions' box")
    page.get_by_label("Name images after their captions").check()
    changes = page.locator("#preview-caption-changes tbody tr")
    expect(changes).to_have_count(1)
    expect(changes.first).to_contain_text("IMG_2.jpg")
    expect(changes.first).to_contain_text("AC DC poster")
    page.locator("#preview-archive summary").click()
    expect(page.locator("#preview-archive-files")).to_contain_text("sks_dog_on_the_beach.jpg")


async def write(logs: str, job_id: str | None = None) -> str:
    """Store `logs` (the whole text so far, as Replicate sends it) for a job, a new succeeded one by
    default, in the server's own database: the live feed brings what it adds."""
    database = Database(load_settings().effective_database_url)  # the server's own database file
    try:
        async with database.session() as session:
            job_id = job_id or await record_job(session, "succeeded")
            await append_logs(session, job_id, logs)
            await session.commit()
    finally:
        await database.dispose()
    return job_id


def test_a_huge_log_is_read_by_its_tail_and_drawn_capped_then_followed_live(tab: Tab, cloud: Cloud) -> None:
    line = "[RANK 0] step log line with some padding to look like a trainer's output ........ {n}\n"
    text = "".join(line.format(n=n) for n in range(600_000))  # about 50 MiB, as the issue says

    job_id = run_async(write(text))
    requested: list[str] = []
    tab.page.on("request", lambda request: requested.append(request.url))
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    log = page.locator("#log-text")
    expect(log).to_contain_text("........ 599999")
    expect(page.locator("#log-notice")).to_contain_text("Showing the last")
    expect(page.locator("#log-notice")).to_contain_text(f"lines of {len(text) / 2**20:.1f} MiB;")
    shown = int(log.get_attribute("data-lines") or 0)
    assert 0 < shown <= 5000
    assert "........ 0\n" not in (log.text_content() or "")
    assert [u for u in requested if "/logs" in u] == [f"{cloud.base}/api/cloud/jobs/{job_id}/logs?tail=5000"]

    run_async(write(text + "the trainer wrote one more line\n", job_id))  # the live feed brings it
    expect(log).to_contain_text("the trainer wrote one more line")
    assert int(log.get_attribute("data-lines") or 0) <= 5000
    assert tab.errors == []


def test_a_log_with_emoji_follows_live_without_losing_a_character(tab: Tab, cloud: Cloud) -> None:
    """Log offsets count characters as the server does: an emoji is one, not the two a JS string
    counts, so the text after one is neither cut nor doubled."""
    text = "🚀 Starting\n"
    job_id = run_async(write(text))
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    log = page.locator("#log-text")
    expect(log).to_have_text("🚀 Starting")
    for more in ("✓ Saved 🎉\n", "[STAGE] 🧪 Running Validation\n", "final line\n"):
        text += more
        run_async(write(text, job_id))
        expect(log).to_have_text(text.rstrip("\n"))
    assert tab.errors == []


def test_a_progress_bar_redrawn_with_carriage_returns_shows_its_last_drawing(tab: Tab, cloud: Cloud) -> None:
    """tqdm on stderr redraws one line with `\r`: the page shows what a terminal would (the latest
    drawing, not every drawing run together and clipped at 4,000 characters to the oldest ones),
    live as the bar moves; a CRLF line ends as a plain one."""
    bar = "Epoch 1/1, Steps: {pct:3d}%|{n}/1000 [step_loss=0.1]"
    text = "[STAGE] ✓ Loading base model\r\n" + "".join(
        "\r" + bar.format(pct=n // 10, n=n) for n in range(0, 501)
    )
    job_id = run_async(write(text))
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    log = page.locator("#log-text")
    expect(log).to_have_text("[STAGE] ✓ Loading base model\n" + bar.format(pct=50, n=500))
    text += "".join("\r" + bar.format(pct=n // 10, n=n) for n in range(501, 1001)) + "\n[INFO] done\n"
    run_async(write(text, job_id))
    expect(log).to_have_text("[STAGE] ✓ Loading base model\n" + bar.format(pct=100, n=1000) + "\n[INFO] done")
    page.get_by_label("Search the log").fill("Steps")
    expect(page.locator("#log-text mark")).to_have_count(1)
    assert tab.errors == []


def test_a_dropped_live_feed_resumes_and_a_refused_one_catches_up(
    browser: Any, cloud: Cloud, tab: Tab
) -> None:
    cloud.sandbox_config.step_seconds = 0.6  # about 12 s of training
    job_id = cloud.submit()
    with cuttable_link(cloud.base) as link:
        requests: list[Any] = []
        tab.page.on("request", lambda r: "/api/cloud/events" in r.url and requests.append(r))
        tab.base = link.url  # the browser reaches the server only through the link
        page = tab.open(f"jobs/{job_id}", ready_as="job")
        body = page.locator("body")
        expect(body).to_have_attribute("data-job-status", "running")
        expect(body).to_have_attribute("data-live", "open")
        seen = points(page)

        link.cut()  # a dropped connection: EventSource reconnects by itself, sending Last-Event-ID
        page.wait_for_function(f"() => Number(document.querySelector('#loss-chart').dataset.points) > {seen}")

        # The stream comes back: the browser's own reconnect (with Last-Event-ID) or, when the cut
        # surfaces as an error first, the page's re-open (which then catches up over REST).
        def reopened() -> list[dict[str, str]] | None:
            streams = [r.all_headers() for r in requests]
            return streams if len(streams) >= 2 else None

        streams = eventually_sync(reopened, timeout=60, interval=0.2, what="the live feed coming back")
        assert "last-event-id" not in streams[0]
        assert all(int(s["last-event-id"]) > 0 for s in streams[1:] if "last-event-id" in s), streams

        link.refusing = True  # now the way back answers 503: EventSource gives up; the page retries
        link.cut()
        expect(body).to_have_attribute("data-live", "reconnecting")
        cloud.wait_for(job_id, "succeeded")  # the job ends while the page is cut off
        refused = len(requests)
        link.refusing = False
        expect(body).to_have_attribute("data-live", "open")
        # The page's own re-open resumes after the last event it saw (a new EventSource has no header).
        resumed = [r.url for r in requests[refused - 1 :] if "after=" in r.url]
        assert resumed and int(resumed[-1].rsplit("after=", 1)[1]) > 0, [r.url for r in requests]
        expect(body).to_have_attribute("data-job-status", "succeeded")
        expect(page.locator(CHART)).to_have_attribute("data-points", "20")
        full = cloud.http.get(f"/api/cloud/jobs/{job_id}/logs").json()["text"]
        expect(page.locator("#log-text")).to_have_text(full.rstrip("\n"))
        expect(page.locator("#job-action-result")).to_be_empty()


def test_a_job_page_whose_first_read_fails_says_so_and_fills_in_by_itself(tab: Tab, cloud: Cloud) -> None:
    job_id = cloud.submit()
    cloud.wait_for(job_id, "succeeded")
    failures = {"left": 2}

    def flaky(route: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, body="")  # a proxy or the server restarting
        else:
            route.continue_()

    tab.page.route(re.compile(rf".*/api/cloud/jobs/{job_id}$"), flaky)
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    expect(page.locator("#job-action-result")).to_contain_text("HTTP 503")
    expect(page.locator("#job-missing")).to_have_count(0)  # a passing failure is not "no such job"
    body = page.locator("body")
    expect(body).to_have_attribute("data-job-status", "succeeded", timeout=20_000)  # retried: 1 s, 2 s
    expect(page.locator(CHART)).to_have_attribute("data-points", "20")
    expect(page.locator("#log-text")).not_to_be_empty()
    expect(page.locator("#job-action-result")).to_be_empty()
    assert failures["left"] == 0
    tab.errors.clear()  # the two 503s are in the console, as they should be


def test_a_job_that_does_not_exist_is_said_so_at_once(tab: Tab, cloud: Cloud) -> None:
    page = tab.open("jobs/job_nosuchjob", ready_as="job")
    expect(page.locator("#job-missing")).to_contain_text("job_nosuchjob")
    tab.errors.clear()


def test_the_results_follow_files_arriving_without_a_delivery_state_change(tab: Tab, cloud: Cloud) -> None:
    """Only the first file moves the delivery to `receiving` (an event); the page keeps its file count
    with the API's while the trainer uploads after each validation run, before the job ends."""
    cloud.sandbox_config.step_seconds = 0.6  # a validation (and an upload) every 3 s, 12 s in all
    job_id = cloud.submit(delivery="local")
    page = tab.open(f"jobs/{job_id}", ready_as="job")
    delivery = page.locator("#job-deliveries li[data-destination='local']")
    expect(delivery).to_contain_text("receiving")
    shown = re.compile(r"· ([\d,]+) files")

    def shown_files() -> int:
        found = shown.search(delivery.text_content() or "")
        return int(found.group(1).replace(",", "")) if found else 0

    def more_files() -> int | None:
        answer = cloud.http.get(f"/api/cloud/jobs/{job_id}/artifacts").json()
        local = next(d for d in answer["deliveries"] if d["destination"] == "local")
        files = int(local["files"])
        return files if local["state"] == "receiving" and files > seen else None

    seen = shown_files()
    grown = eventually_sync(more_files, timeout=60, interval=0.1, what="more files at the API")
    page.wait_for_function(
        """([grown]) => {
          const item = document.querySelector("#job-deliveries li[data-destination='local']");
          const found = /· ([\\d,]+) files/.exec(item ? item.textContent : "");
          return document.body.dataset.jobStatus === "running" && found
            && Number(found[1].replaceAll(",", "")) >= grown;
        }""",
        arg=[grown],
        timeout=8_000,
    )
    cloud.wait_for(job_id, "succeeded")
    assert tab.errors == []
