"""`simpletuner cloud jobs ...` against `simpletuner server --sandbox` on a socket: the server's calls
reach the sandbox's Replicate and its simulated trainer for real. Submit and follow (`--wait`,
through a dropped stream and a server that goes away, and Ctrl-C), failures with their hints, list,
show, logs (`--tail`, `--follow`), cancel and rm, consent, and a server that is not running."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from simpletuner_cloud.cli import app as cli
from simpletuner_cloud.cli.cloud import job_watch
from simpletuner_cloud.cli.cloud.job_watch import usd
from simpletuner_cloud.services.datasets import install_example
from tests.support.live_server import free_port, live_server
from tests.support.provider_sandbox import SANDBOX_TOKEN, sandbox_mode_server
from tests.support.waiting import eventually_sync

runner = CliRunner()
EXAMPLE = ["flux-lora-example", "--consent", "--delivery", "none"]
STATUS_LINES = [
    "status: packaging (Packaging the dataset.)",
    "status: uploading (Uploading 33,678 bytes.)",
    "status: submitting (Creating the prediction at Replicate.)",
]
DELIVERY_WARNING = (
    'warning: Delivery "none": the trained weights stay on Replicate\'s machine and are lost when it stops.'
)


@dataclass
class Server:
    url: str
    app: FastAPI
    http: httpx.Client

    def sandbox(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(
            method, f"/sandbox{path}", headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}, **kwargs
        )
        assert response.is_success, response.text
        return response.json()

    def job(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.get(f"/api/cloud/jobs/{job_id}").json()
        return answer

    def submit(self, **body: Any) -> str:
        answer = self.http.post(
            "/api/cloud/jobs/submit",
            json={"config": "flux-lora-example", "consent": True, "delivery": "none", **body},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["job_id"])

    def wait_for(self, job_id: str, *statuses: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        return eventually_sync(probe, timeout=60, interval=0.05, what=f"job {job_id} reaching {statuses}")

    def cleaned_up(self, job_id: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id)
            return job if any(e["kind"] == "cleaned_up" for e in job["timeline"]) else None

        return eventually_sync(probe, timeout=30, interval=0.05, what=f"clean-up of {job_id}")

    def set_step_seconds(self, seconds: float) -> None:
        self.app.state.sandbox_app.state.sandbox.config.step_seconds = seconds


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("COLUMNS", "300")  # tables on one line each, whatever the real terminal
    with sandbox_mode_server(poll_seconds=0.2, log_poll_seconds=0.2, job_lease_seconds=5) as (base, app):
        config = app.state.sandbox_app.state.sandbox.config
        config.step_seconds, config.boot_seconds, config.max_simulated_steps = 0.02, 0.0, 20
        install_example(app.state.settings)
        with httpx.Client(base_url=base, trust_env=False, timeout=30) as http:
            yield Server(base, app, http)


def jobs(url: str, *args: str) -> Any:
    return runner.invoke(cli, ["cloud", "--url", url, "jobs", *args])


def flat(text: str) -> str:
    return " ".join(text.split())


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def submitted_id(output: str) -> str:
    found = re.search(r"Submitted: job (job_\w+) ", output)
    assert found, output
    return found.group(1)


def status_names(out: list[str]) -> list[str]:
    """The statuses the display announced, in order."""
    return [line.split()[1] for line in out if line.startswith("status: ")]


def announced_the_happy_path(out: list[str]) -> bool:
    """Each status once, in order. `queued` and `running` may be missing: the trainer's start webhook
    can come before the create's answer, and a fast job can end between two polls (docs/decisions.md)."""
    names = status_names(out)
    return (
        names[:3] == ["packaging", "uploading", "submitting"]
        and names[-1:] == ["succeeded"]
        and names[3:-1] in ([], ["queued"], ["running"], ["queued", "running"])
    )


def settled(job: dict[str, Any]) -> dict[str, Any]:
    """A finished job's view without `updated_at`, which the worker's bookkeeping still moves."""
    return {k: v for k, v in job.items() if k != "updated_at"}


def event_label(event: dict[str, Any]) -> str:
    if event["kind"] != "status":
        return str(event["kind"])
    return f"{event['from_status']} -> {event['to_status']}" if event["from_status"] else event["to_status"]


def mapping_rows(output: str) -> dict[str, str]:
    """The field/value rows of a `print_mapping` table."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 2 and cells[0] not in ("", "field"):
            rows[cells[0]] = cells[1]
    return rows


def test_submit_and_wait_to_success(server: Server) -> None:
    result = jobs(server.url, "submit", *EXAMPLE, "--wait")
    assert result.exit_code == 0, result.output
    job_id = submitted_id(result.stdout)
    job = server.job(job_id)
    assert job["status"] == "succeeded"
    out = lines(result.stdout)
    assert out[:3] == [
        f"Submitted: job {job_id} (created), l40s, flux-lora-example",
        DELIVERY_WARNING,
        f"Following job {job_id} (created); Ctrl-C stops waiting, not the job.",
    ]
    assert [line for line in out if line.startswith("status: ")][:3] == STATUS_LINES
    assert announced_the_happy_path(out), out
    cost = usd(job["cost"]["final_usd"])
    upload_bar = next(line for line in out if line.startswith("upload "))
    assert upload_bar.endswith("100% 32.9 KiB of 32.9 KiB")
    training_bar = next(line for line in out if line.startswith("succeeded "))
    assert training_bar.endswith(
        f"100% step 1000/1000  loss {job['progress']['loss']:.4g}  lr 0.0001  {cost} in all"
    )
    assert out[-2:] == [f"Job {job_id} succeeded; cost {cost}.", f"Output: {job['output']}"]
    assert "sandbox: no GPUs, no charges" in result.stderr

    # `--json --wait`: no display, one JSON document (the final job) on stdout.
    as_json = jobs(server.url, "submit", *EXAMPLE, "--wait", "--json")
    assert as_json.exit_code == 0, as_json.output
    final = json.loads(as_json.stdout)
    assert final["status"] == "succeeded" and final["progress"]["step"] == 1000
    assert final["id"] != job_id and settled(final) == {
        **settled(server.job(final["id"])),
        "timeline": final["timeline"],
    }


def test_the_cost_limit_warning_is_printed(server: Server) -> None:
    server.wait_for(server.submit(), "succeeded")
    limit = {"cost_limit": {"enabled": True, "amount": 0.0001, "period": "daily", "action": "warn"}}
    assert server.http.put("/api/cloud/providers/replicate", json=limit).status_code == 200
    result = jobs(server.url, "submit", *EXAMPLE)
    assert result.exit_code == 0, result.output
    job_id = submitted_id(result.stdout)
    spent = next(
        e["message"] for e in server.http.get(f"/api/cloud/jobs/{job_id}").json()["timeline"]
        if e["kind"] == "cost_limit_warning"
    )  # fmt: skip
    assert spent.startswith("Over the cost limit: spent $0.0") and spent.endswith("(Warn: submitted anyway).")
    assert lines(result.stdout) == [
        f"Submitted: job {job_id} (created), l40s, flux-lora-example",
        DELIVERY_WARNING,
        f"warning: {spent}",
    ]


def test_a_failure_with_wait_exits_1_with_the_error_and_hint(server: Server) -> None:
    server.sandbox("POST", "/faults", json={"fail_at_step": 5})
    result = jobs(server.url, "submit", *EXAMPLE, "--max-train-steps", "20", "--wait")
    assert result.exit_code == 1, result.output
    job_id = submitted_id(result.stdout)
    job = server.job(job_id)
    prediction = server.sandbox("GET", f"/v1/predictions/{job['prediction_id']}")
    assert job["status"] == "failed" and prediction["error"]
    assert flat(result.stderr) == flat(
        f"sandbox: no GPUs, no charges error[trainer_failed]: {prediction['error']} "
        f"hint: Open the job's logs (`simpletuner cloud jobs logs {job_id}`) for the trainer's own message."
    )
    failed_bar = next(line for line in lines(result.stdout) if line.startswith("failed "))
    assert re.search(r" 25% step 5/20  loss [\d.]+  lr 0\.0001  \$[\d.]+ in all$", failed_bar), failed_bar

    shown = jobs(server.url, "show", job_id)
    assert shown.exit_code == 0, shown.output
    rows = mapping_rows(shown.stdout)
    assert rows["error"] == f"[trainer_failed] {prediction['error']}"
    assert (
        rows["hint"]
        == "Open the job's logs (`simpletuner cloud jobs logs <id>`) for the trainer's own message."
    )
    assert rows["status"] == "failed (Replicate: failed)"

    waited = jobs(server.url, "wait", job_id)  # an ended job: its end at once, the same exit code
    assert waited.exit_code == 1 and "error[trainer_failed]" in waited.stderr


def test_list_show_and_logs(server: Server, state_root: Path) -> None:
    folder = state_root / "configs" / "flux-lora-example"
    by_path = jobs(server.url, "submit", str(folder), "--consent", "--delivery", "none", "--hardware", "a100")
    assert by_path.exit_code == 0, by_path.output
    ids = [submitted_id(by_path.stdout), server.submit(), server.submit()]
    for job_id in ids:
        server.cleaned_up(job_id)
    listed = server.http.get("/api/cloud/jobs").json()

    table = jobs(server.url, "list")
    assert table.exit_code == 0, table.output
    out = lines(table.stdout)
    assert out[0] == "Jobs (3 of 3)" and out[1].split() == [
        "id", "status", "hardware", "progress", "cost", "created"
    ]  # fmt: skip
    for line, job in zip(out[2:], listed["jobs"], strict=True):
        cost = usd(job["cost"]["final_usd"])
        assert line.split()[:5] == [job["id"], "succeeded", job["hardware"], "100%", cost]
    assert [line.split()[0] for line in out[2:]] == ids[::-1]  # newest first, whole ids

    first = jobs(server.url, "list", "--limit", "2")
    assert lines(first.stdout)[-1] == f"Next page: --cursor {ids[1]}"
    rest = jobs(server.url, "list", "--limit", "2", "--cursor", ids[1])
    assert [line.split()[0] for line in lines(rest.stdout)[2:]] == [ids[0]]
    a100 = jobs(server.url, "list", "--hardware", "a100", "--status", "succeeded", "--status", "failed")
    assert [line.split()[0] for line in lines(a100.stdout)[2:]] == [ids[0]]
    assert lines(jobs(server.url, "list", "--search", ids[2][-8:]).stdout)[0] == "Jobs (1 of 1)"
    assert jobs(server.url, "list", "--status", "failed").stdout == "No jobs.\n"
    as_json = json.loads(jobs(server.url, "list", "--json").stdout)
    assert [settled(j) for j in as_json["jobs"]] == [settled(j) for j in listed["jobs"]]
    assert (as_json["total"], as_json["next_cursor"]) == (3, None)
    bad = jobs(server.url, "list", "--status", "nonsense")
    assert bad.exit_code == 2 and "'nonsense' is not one of" in flat(bad.output)

    job = server.job(ids[0])
    assert job["config"] == "flux-lora-example"  # the folder's environment, found by its path
    shown = jobs(server.url, "show", ids[0])
    assert shown.exit_code == 0, shown.output
    rows = mapping_rows(shown.stdout)
    assert {k: rows[k] for k in ("id", "status", "hardware", "delivery", "prediction", "cost")} == {
        "id": ids[0],
        "status": "succeeded (Replicate: succeeded)",
        "hardware": "a100 ($5.04/hour)",
        "delivery": "none",
        "prediction": job["prediction_id"],
        "cost": usd(job["cost"]["final_usd"]),
    }
    assert (
        rows["progress"]
        == f"finished, step 1000/1000, 100%, loss {job['progress']['loss']:.4g}, Training Complete"
    )
    assert rows["warning 1"] == DELIVERY_WARNING.removeprefix("warning: ")
    assert "error" not in rows
    rows_of_tables = [[c.strip() for c in line.split("│")[1:-1]] for line in lines(shown.stdout)]
    timeline = [cells[1:] for cells in rows_of_tables if len(cells) == 3 and cells[0] != "at"]
    events = [e for e in job["timeline"] if e["kind"] != "progress"]
    assert timeline == [[event_label(e), e["message"] or ""] for e in events]
    assert [t[0] for t in timeline][-2:] == ["running -> succeeded", "cleaned_up"]
    assert timeline[0] == ["created", ""] and timeline[1] == [
        "created -> packaging",
        "Packaging the dataset.",
    ]
    assert settled(json.loads(jobs(server.url, "show", ids[0], "--json").stdout)) == settled(
        server.job(ids[0])
    )

    full = server.http.get(f"/api/cloud/jobs/{ids[1]}/logs").json()["text"]
    assert "Step 1000 of 1000" in full
    logged = jobs(server.url, "logs", ids[1])
    assert logged.exit_code == 0 and logged.stdout == full
    tail = jobs(server.url, "logs", ids[1], "--tail", "2")
    assert tail.stdout == "".join(full.splitlines(keepends=True)[-2:])
    done = jobs(server.url, "logs", ids[1], "--tail", "1", "--follow")  # ended: nothing to follow
    assert done.stdout == full.splitlines(keepends=True)[-1]
    assert done.stderr.endswith(f"Job {ids[1]} succeeded.\n")


def test_logs_follow_prints_new_lines_until_the_end(server: Server) -> None:
    server.set_step_seconds(0.1)
    job_id = server.submit()
    # --tail 0: nothing from before; everything printed comes from the followed stream.
    followed = jobs(server.url, "logs", job_id, "--tail", "0", "--follow")
    assert followed.exit_code == 0, followed.output
    job = server.job(job_id)
    assert job["status"] == "succeeded"
    full = server.http.get(f"/api/cloud/jobs/{job_id}/logs").json()["text"]
    assert followed.stdout == full and "Step 1000 of 1000" in full
    assert followed.stderr.endswith(f"Job {job_id} succeeded.\n")


def hold_the_worker(app: FastAPI) -> Any:
    """Stop the worker's passes (jobs stay where they are); returns the function that restarts them."""
    task = app.state.worker.tasks[0]
    original = task.run

    async def idle() -> None:
        return None

    task.run = idle

    def release() -> None:
        task.run = original
        app.state.worker.wake()

    return release


def test_cancel_and_rm_of_a_job_that_never_reached_replicate(server: Server) -> None:
    release = hold_the_worker(server.app)
    submitted = jobs(server.url, "submit", *EXAMPLE)
    job_id = submitted_id(submitted.stdout)

    active = jobs(server.url, "rm", job_id)
    assert active.exit_code == 1
    assert flat(active.stderr).endswith(
        f"error[job_active]: Job {job_id} is created; only a finished job can be deleted. "
        f"hint: Cancel it first: `simpletuner cloud jobs cancel {job_id}`."
    )
    canceled = jobs(server.url, "cancel", job_id)
    assert canceled.exit_code == 0, canceled.output
    assert canceled.stdout == (
        f"Canceled; no prediction was created at Replicate (a dataset file uploaded for it is deleted). "
        f"Job {job_id} is canceled.\n"
    )

    before_clean_up = jobs(server.url, "rm", job_id)
    assert before_clean_up.exit_code == 1
    assert flat(before_clean_up.stderr).endswith(
        f"error[job_active]: Job {job_id} is still being cleaned up (its dataset file at Replicate, its "
        "secrets). hint: Try again in a few seconds."
    )
    waited = jobs(server.url, "wait", job_id)
    assert waited.exit_code == 1 and flat(waited.stderr).endswith(f"error[canceled]: Job {job_id} canceled.")

    release()
    server.cleaned_up(job_id)
    removed = jobs(server.url, "rm", job_id)
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"Deleted job {job_id} from this server.\n"  # nothing left elsewhere
    gone = jobs(server.url, "show", job_id)
    assert gone.exit_code == 1
    assert flat(gone.stderr).endswith(
        f"error[job_not_found]: No job '{job_id}'. hint: `simpletuner cloud jobs list` shows your jobs."
    )


def test_cancel_while_running_then_rm_says_what_stays(server: Server) -> None:
    server.set_step_seconds(0.5)
    job_id = server.submit()
    running = server.wait_for(job_id, "running")
    canceled = jobs(server.url, "cancel", job_id)
    assert canceled.exit_code == 0, canceled.output
    assert canceled.stdout == f"Canceled at Replicate. Job {job_id} is canceled.\n"
    again = jobs(server.url, "cancel", job_id, "--json")
    assert json.loads(again.stdout)["message"] == "The job already canceled; nothing to cancel."
    assert server.sandbox("GET", f"/v1/predictions/{running['prediction_id']}")["status"] == "canceled"

    server.cleaned_up(job_id)
    cost = server.http.get(f"/api/cloud/jobs/{job_id}").json()["cost"]["final_usd"]
    removed = jobs(server.url, "rm", job_id)
    assert removed.exit_code == 0, removed.output
    assert lines(removed.stdout) == [
        f"Deleted job {job_id} from this server.",
        "Not deleted:",
        f"- The prediction {running['prediction_id']} at Replicate (its record stays in your Replicate "
        "account; its data is removed by Replicate after an hour).",
        f"- Its cost, ${cost}: it still counts in the spend and against the cost limit of the period it "
        "finished in.",
    ]
    assert server.http.get(f"/api/cloud/jobs/{job_id}").status_code == 404


def test_submit_refusals_say_what_to_pass(server: Server) -> None:
    no_consent = jobs(server.url, "submit", "flux-lora-example", "--delivery", "none")
    assert no_consent.exit_code == 1
    assert flat(no_consent.stderr) == (
        "sandbox: no GPUs, no charges error[consent_required]: This job uploads your training images to "
        "Replicate's upload servers; confirm it first. hint: Review what would be sent with "
        "`simpletuner cloud data preview flux-lora-example`, then run the command again with `--consent`."
    )
    no_delivery = jobs(server.url, "submit", "flux-lora-example", "--consent")
    assert no_delivery.exit_code == 1
    assert flat(no_delivery.stderr).endswith(
        "hint: Choose where the weights go: `--delivery hub --hub-model-id username/repo` (with HF_TOKEN "
        "set for the server), or `--delivery none` to train without keeping them."
    )
    assert "Traceback" not in no_consent.output + no_delivery.output
    assert server.http.get("/api/cloud/jobs").json()["total"] == 0

    first = jobs(server.url, "submit", *EXAMPLE, "--idempotency-key", "k-1")
    again = jobs(server.url, "submit", *EXAMPLE, "--idempotency-key", "k-1")
    job_id = submitted_id(first.stdout)
    assert re.fullmatch(
        rf"Already submitted with this idempotency key: job {job_id} \([a-z]+\), l40s, flux-lora-example",
        lines(again.stdout)[0],
    )
    assert server.http.get("/api/cloud/jobs").json()["total"] == 1


@pytest.mark.parametrize(
    "command",
    [
        ["submit", *EXAMPLE],
        ["list"],
        ["show", "job_x"],
        ["logs", "job_x", "--follow"],
        ["wait", "job_x"],
        ["cancel", "job_x"],
        ["rm", "job_x"],
    ],
)
def test_a_dead_server(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = jobs(url, *command)
    assert result.exit_code == 1
    assert flat(result.stderr) == (
        f"error[server_not_running]: No simpletuner server is answering at {url}. hint: Start it with "
        "`simpletuner server` (or `simpletuner server --sandbox` to try it offline), or point --url / "
        "SIMPLETUNER_URL at the running one."
    )
    assert "Traceback" not in result.output


@dataclass
class CuttingProxy:
    """A loopback TCP forwarder to the server that cuts the first event stream after `cut_after`
    bytes of its answer (mid-event, most likely); `then_refuse` makes it refuse connections after
    that, like a server that went away. Records what each event stream request sent."""

    url: str
    cut_after: int
    then_refuse: bool
    event_requests: list[str] = field(default_factory=list)
    cuts: int = 0
    refusing: threading.Event = field(default_factory=threading.Event)
    sockets: list[socket.socket] = field(default_factory=list)

    def go_away(self) -> None:
        """Refuse new connections and end every open one (kept-alive ones too)."""
        self.refusing.set()
        for sock in self.sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def cutting_proxy(upstream: str, cut_after: int = 1200, then_refuse: bool = False) -> Iterator[CuttingProxy]:
    host, port = upstream.removeprefix("http://").rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    proxy = CuttingProxy(f"http://127.0.0.1:{listener.getsockname()[1]}", cut_after, then_refuse)
    stop = threading.Event()

    def serve(client: socket.socket) -> None:
        server = socket.create_connection((host, int(port)))
        proxy.sockets += [client, server]
        state = {"events": False, "sent": 0}

        def close() -> None:
            for sock in (client, server):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        def upward() -> None:
            with suppress(OSError):
                while data := client.recv(65536):
                    if b"/api/cloud/events" in data:
                        proxy.event_requests.append(data.decode("latin-1"))
                        state["events"], state["sent"] = True, 0
                    server.sendall(data)
            close()  # the client hung up: so does the server side (an event stream would stay open)

        threading.Thread(target=upward, daemon=True).start()
        with suppress(OSError):
            while data := server.recv(65536):
                if state["events"] and proxy.cuts == 0:
                    room = proxy.cut_after - int(state["sent"])
                    if len(data) >= room:
                        client.sendall(data[:room])
                        proxy.cuts += 1
                        if proxy.then_refuse:
                            proxy.go_away()
                        break
                    state["sent"] = int(state["sent"]) + len(data)
                client.sendall(data)
        close()

    def accept() -> None:
        while not stop.is_set() and not proxy.refusing.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if proxy.refusing.is_set():
                client.close()
                break
            threading.Thread(target=serve, args=(client,), daemon=True).start()
        listener.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        thread.join(timeout=10)
        proxy.go_away()


def test_wait_resumes_a_dropped_stream_after_the_last_event(server: Server) -> None:
    server.set_step_seconds(0.05)
    with cutting_proxy(server.url) as proxy:
        result = jobs(proxy.url, "submit", *EXAMPLE, "--wait")
    assert result.exit_code == 0, result.output
    assert proxy.cuts == 1 and len(proxy.event_requests) >= 2
    assert "last-event-id" not in proxy.event_requests[0].lower()
    resumed = re.search(r"(?im)^last-event-id: (\d+)\r$", proxy.event_requests[1])
    assert resumed, proxy.event_requests[1]
    out = lines(result.stdout)
    assert "Lost the event stream; reconnecting..." in out
    assert "Reconnected; resuming after the last event received." in out
    # each status exactly once and in order: nothing lost, nothing replayed
    assert announced_the_happy_path(out), out
    job_id = submitted_id(result.stdout)
    assert out[-2] == f"Job {job_id} succeeded; cost {usd(server.job(job_id)['cost']['final_usd'])}."


def test_wait_gives_up_on_a_server_that_went_away(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_watch, "RECONNECT_DELAYS", (0.01, 0.01, 0.01))
    server.set_step_seconds(0.5)
    with cutting_proxy(server.url, then_refuse=True) as proxy:
        result = jobs(proxy.url, "submit", *EXAMPLE, "--wait")
    assert result.exit_code == 1, result.output
    job_id = submitted_id(result.stdout)
    assert flat(result.stderr).endswith(
        f"error[server_not_running]: Lost the connection to the server at {proxy.url} while following job "
        f"{job_id}. hint: The job goes on without this command. Once the server answers, follow it again "
        f"with `simpletuner cloud jobs wait {job_id}`, or cancel it with `simpletuner cloud jobs cancel "
        f"{job_id}`."
    )
    assert server.job(job_id)["status"] not in ("failed", "canceled")  # the job did go on


def test_ctrl_c_stops_waiting_without_canceling(server: Server) -> None:
    server.set_step_seconds(0.5)  # ten seconds of training: time to interrupt it
    command = [str(Path(sys.executable).with_name("simpletuner")), "cloud", "--url", server.url, "jobs"]
    process = subprocess.Popen(
        [*command, "submit", *EXAMPLE, "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert process.stdout is not None
    seen = bytearray()

    def read() -> bytes:
        if select.select([process.stdout], [], [], 0)[0]:
            seen.extend(os.read(process.stdout.fileno(), 65536))
        return bytes(seen)

    try:
        eventually_sync(lambda: b"status: running" in read(), timeout=60, what="the job running")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    job_id = submitted_id(seen.decode())
    assert flat(stderr.decode()).endswith(
        f"Stopped waiting; job {job_id} was not canceled and goes on. Follow it again with `simpletuner "
        f"cloud jobs wait {job_id}`; cancel it with `simpletuner cloud jobs cancel {job_id}`."
    )
    assert "Traceback" not in stderr.decode()
    job = server.job(job_id)
    assert job["status"] == "running" and job["cancel_requested"] is False


def test_a_job_id_is_one_path_segment_whatever_it_holds(server: Server) -> None:
    saved = server.http.put("/api/cloud/providers/replicate/token", json={"api_token": SANDBOX_TOKEN})
    assert saved.status_code == 200, saved.text
    token_file = server.app.state.settings.replicate_token_path
    removed = jobs(server.url, "rm", "../providers/replicate/token", "--json")
    assert removed.exit_code == 1 and token_file.is_file()  # not DELETE .../replicate/token
    assert json.loads(removed.stdout)["error"]["code"] == "not_found"  # nothing routes to it
    for odd in ("../providers/replicate/validate", "..", ".", "job x?y"):
        shown = jobs(server.url, "show", odd)
        assert shown.exit_code == 1, (odd, shown.output)
        assert "Traceback" not in shown.output and "error[" in shown.stderr
        assert "`simpletuner cloud jobs list` shows your jobs." in flat(shown.stderr)
    assert "error[job_not_found]: No job '..'." in flat(jobs(server.url, "show", "..").stderr)
    empty = jobs(server.url, "show", "")
    assert empty.exit_code == 2 and "empty" in empty.output


def test_show_refuses_an_answer_that_is_not_a_job() -> None:
    odd = FastAPI()
    odd.get("/api/cloud/jobs/{job_id}")(lambda job_id: {"jobs": [], "total": 0})
    with live_server(odd) as url:
        shown = jobs(url, "show", "job_x")
    assert shown.exit_code == 1 and "Traceback" not in shown.output
    assert flat(shown.stderr).startswith(
        "error[unexpected_answer]: The server's answer to GET /api/cloud/jobs/"
    )


def test_an_error_with_json_prints_the_servers_envelope(server: Server) -> None:
    missing = jobs(server.url, "show", "job_0000000000000000000a", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout) == {
        "error": {
            "code": "job_not_found",
            "message": "No job 'job_0000000000000000000a'.",
            "hint": "`simpletuner cloud jobs list` shows jobs.",
        }
    }
    assert "error[" not in missing.output
    refused = jobs(server.url, "submit", "flux-lora-example", "--delivery", "none", "--json")
    assert refused.exit_code == 1 and json.loads(refused.stdout)["error"]["code"] == "consent_required"


def test_an_empty_config_is_a_usage_error(server: Server) -> None:
    for command in (["jobs", "submit", ""], ["cost", "estimate", " "], ["data", "preview", ""]):
        refused = runner.invoke(cli, ["cloud", "--url", server.url, *command])
        assert refused.exit_code == 2, (command, refused.output)
        assert "config is empty" in flat(refused.output)
    assert server.http.get("/api/cloud/jobs").json()["total"] == 0
