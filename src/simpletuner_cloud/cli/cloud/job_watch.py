"""Following one job live, for `jobs submit --wait`, `jobs wait` and `jobs logs --follow`: the job's
Server-Sent Events (`GET /api/cloud/events?job=`), resumed with `Last-Event-ID` when the connection
drops, and a rich display of the upload bytes, the training steps with loss, and the cost so far."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from simpletuner_cloud.cli.api_client import ServerClient, api_path
from simpletuner_cloud.cli.output import console, err_console, fail
from simpletuner_cloud.domain.jobs import TERMINAL_STATUSES

TERMINAL = TERMINAL_STATUSES  # str-valued: the API's status strings are members
# Pauses before each reconnect; once they are used up without an event getting through, give up.
RECONNECT_DELAYS: tuple[float, ...] = (0.2, 0.5, 1, 2, 3, *(5,) * 10)
JOBS = "/api/cloud/jobs"
COST_EVERY = 2.0  # seconds between reads of the job for its cost so far (events do not carry it)


@dataclass(frozen=True)
class JobEvent:
    id: str | None
    name: str  # status, upload, progress, log, event; `ping` for the server's keep-alive comment
    data: dict[str, Any]


def job_events(client: ServerClient, job_id: str, on_drop: Callable[[], None]) -> Iterator[JobEvent]:
    """The job's events from its first one on, endlessly (the caller stops). A dropped or closed
    stream is opened again after the last event received, so nothing is lost or seen twice."""
    last_id: str | None = None
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            with client.stream(
                "GET", "/api/cloud/events", params={"job": job_id}, headers=headers
            ) as response:
                if not response.is_success:
                    response.read()
                    ServerClient._decode(response, {"job_not_found": JOB_NOT_FOUND_HINT})
                for event in parse_events(response.iter_lines()):
                    if event.id is not None:
                        last_id, failures = event.id, 0
                    yield event
        except httpx.TransportError:
            pass  # dropped, refused or silent past the read timeout: all resumed the same way
        if failures >= len(RECONNECT_DELAYS):
            fail(
                f"Lost the connection to the server at {client.url} while following job {job_id}.",
                hint=f"The job goes on without this command. Once the server answers, follow it again with "
                f"`simpletuner cloud jobs wait {job_id}`, or cancel it with "
                f"`simpletuner cloud jobs cancel {job_id}`.",
                code="server_not_running",
            )
        on_drop()
        time.sleep(RECONNECT_DELAYS[failures])
        failures += 1


JOB_NOT_FOUND_HINT = "`simpletuner cloud jobs list` shows your jobs."


def parse_events(lines: Iterable[str]) -> Iterator[JobEvent]:
    """Server-Sent Events from text lines. An event counts only once its closing blank line arrived:
    one cut off by a dropped connection is not dispatched, and its id is not taken as seen."""
    event_id: str | None = None
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    yield JobEvent(event_id, name, payload)
            event_id, name, data = None, "message", []
        elif line.startswith(":"):
            yield JobEvent(None, "ping", {})
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "id":
                event_id = value
            elif key == "event":
                name = value
            elif key == "data":
                data.append(value)


def wait_for_job(client: ServerClient, job: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Follow the job until it ends, showing its progress (unless `quiet`); return its final state."""
    job_id = job["id"]
    if job["status"] in TERMINAL:
        return job
    with JobDisplay(job, quiet) as display:
        next_read = time.monotonic() + COST_EVERY
        finished_reads = 0
        for event in job_events(client, job_id, on_drop=display.dropped):
            if event.id is not None:
                display.connected()
            if event.name == "status":
                display.status(event.data)
                if event.data.get("to_status") in TERMINAL:
                    break
                next_read = 0.0  # a new status may start (or stop) the meter: read the cost now
            elif event.name == "upload":
                display.upload(event.data.get("data") or {})
            elif event.name == "progress":
                display.training(event.data.get("data") or {})
            elif event.name == "event" and event.data.get("kind") == "stuck":
                display.note(str(event.data.get("message") or ""))
            if time.monotonic() >= next_read:
                next_read = time.monotonic() + COST_EVERY
                latest = client.get_quietly(api_path(JOBS, job_id))
                if latest is not None:
                    display.cost(latest)
                    # The end is told by its status event; if that never comes (the job was
                    # deleted meanwhile), two reads that say it ended are enough.
                    finished_reads = finished_reads + 1 if latest["status"] in TERMINAL else 0
                    if finished_reads >= 2:
                        break
        final: dict[str, Any] = client.request(
            "GET", api_path(JOBS, job_id), hints={"job_not_found": JOB_NOT_FOUND_HINT}
        )
        display.finish(final)
    return final


class JobDisplay:
    """Status changes as lines; an upload bar in bytes, then a steps bar with loss and cost."""

    def __init__(self, job: dict[str, Any], quiet: bool) -> None:
        self.job_id = job["id"]
        self.quiet = quiet
        self.last_status = job["status"]
        self.so_far: str | None = job["cost"].get("so_far_usd")
        self.final = False
        self.steps: dict[str, Any] = {}
        self.bar = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            disable=quiet,
        )
        self.upload_task: TaskID | None = None
        self.training_task: TaskID | None = None
        self.disconnected = False

    def __enter__(self) -> JobDisplay:
        self.bar.start()
        self._say(f"Following job {self.job_id} ({self.last_status}); Ctrl-C stops waiting, not the job.")
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.stop()

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        if not self.quiet and text:
            self.bar.console.print(f"[yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)

    def dropped(self) -> None:
        if not self.disconnected:
            self._warn("Lost the event stream; reconnecting...")
        self.disconnected = True

    def connected(self) -> None:
        if self.disconnected:
            self.disconnected = False
            self._warn("Reconnected; resuming after the last event received.")

    def _warn(self, text: str) -> None:
        """Connection news: above the bars, or on stderr when the display is off (`--json`)."""
        where = err_console if self.quiet else self.bar.console
        where.print(f"[yellow]{escape(text)}[/]", highlight=False, soft_wrap=True)

    def status(self, data: dict[str, Any]) -> None:
        to_status = str(data.get("to_status") or "")
        if not to_status or to_status == "created":
            return  # the submit already said so
        message = data.get("message")
        self._say(f"status: {to_status}" + (f" ({message})" if message else ""))
        self.last_status = to_status
        if to_status in ("queued", "running"):
            self._training_bar()

    def upload(self, data: dict[str, Any]) -> None:
        done, total = int(data.get("bytes_done") or 0), data.get("bytes_total")
        if self.upload_task is None:
            self.upload_task = self.bar.add_task("upload", total=total, detail="")
        detail = f"{_size(done)} of {_size(total)}" if total else _size(done)
        self.bar.update(self.upload_task, completed=done, total=total, detail=detail)

    def training(self, data: dict[str, Any]) -> None:
        self.steps = data
        self._refresh_training()

    def cost(self, job: dict[str, Any]) -> None:
        self.final = job["cost"].get("final_usd") is not None
        self.so_far = job["cost"].get("final_usd") if self.final else job["cost"].get("so_far_usd")
        if self.training_task is not None:
            self._refresh_training()

    def finish(self, job: dict[str, Any]) -> None:
        self.cost(job)
        progress = job.get("progress") or {}
        if progress.get("step") is not None:
            self.training({**self.steps, **{k: v for k, v in progress.items() if v is not None}})
        if self.training_task is not None:
            self.bar.update(self.training_task, description=job["status"])

    def _training_bar(self) -> TaskID:
        if self.training_task is None:
            self.training_task = self.bar.add_task("training", total=None, detail="")
        return self.training_task

    def _refresh_training(self) -> None:
        task = self._training_bar()
        step, total = self.steps.get("step"), self.steps.get("total_steps")
        parts = [f"step {step}/{total or '?'}"] if step is not None else []
        if self.steps.get("loss") is not None:
            parts.append(f"loss {self.steps['loss']:.4g}")
        if self.steps.get("learning_rate") is not None:
            parts.append(f"lr {self.steps['learning_rate']:.3g}")
        if self.so_far is not None:
            parts.append(f"{usd(self.so_far)} {'in all' if self.final else 'so far'}")
        self.bar.update(task, completed=step or 0, total=total, detail="  ".join(parts))


def usd(value: str | None) -> str:
    """A money string from the API for people: cents from a dollar up (`$3.51`), below that four
    decimals (`$0.0005`: a short run costs fractions of a cent), and tiny costs keep a digit."""
    if value is None:
        return ""
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return value
    if amount >= 1:
        return f"${amount:.2f}"
    return f"${amount:.4f}" if amount == 0 or amount >= Decimal("0.0001") else f"${amount:.6f}"


def _size(value: Any) -> str:
    if value is None:
        return "?"
    number = int(value)
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if number >= scale:
            return f"{number / scale:.1f} {unit}"
    return f"{number} B"


def follow_logs(client: ServerClient, job_id: str, printed: int) -> str:
    """Print the job's log text after offset `printed` as it arrives, until the job ends; return the
    final status. Log events carry (offset, text); overlap with what was printed is cut off."""
    path = api_path(JOBS, job_id, "logs")
    for event in job_events(client, job_id, on_drop=lambda: None):
        if event.name == "log":
            offset, text = int(event.data.get("offset") or 0), str(event.data.get("text") or "")
            if offset > printed:  # a chunk this stream did not carry: read it
                printed = _print_logs(client.get(path, after=printed))
            if offset + len(text) > printed:
                typer.echo(text[printed - offset :], nl=False)
                printed = offset + len(text)
        elif event.name == "status" and event.data.get("to_status") in TERMINAL:
            _print_logs(client.get(path, after=printed))
            return str(event.data["to_status"])
    raise AssertionError("unreachable: job_events never ends by itself")


def _print_logs(logs: dict[str, Any]) -> int:
    typer.echo(logs["text"], nl=False)
    return int(logs["next_offset"])
