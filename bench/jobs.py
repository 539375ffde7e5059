"""Jobs benchmark, side by side in one run (issue 9):

1. `GET /api/cloud/jobs` latency on a real `simpletuner server` (uvicorn on loopback, one keep-alive
   client) with 100 and with 100,000 jobs in the store. Targets: p50 under 20 ms at 100,000 and
   p50(100,000) / p50(100) under 2. SQLite, and PostgreSQL with `--postgres URL` (throwaway databases
   are created on that server and dropped afterwards).
2. Replicate calls over one example job's life, submit to cleaned up, on `simpletuner server --sandbox`
   with its webhooks flowing, by route. Target: at most 6.
3. Replicate calls per minute with 200 running jobs and no webhooks (a standalone sandbox, no public
   URL), at the product's default poll settings. Target: under 900/min (30% of 3,000/min).
4. Submit-to-`queued` time of the example environment against packaging it and uploading the archive
   directly (`package_dataset` + `upload_file`), interleaved, median of --runs. Target: under 20% more.

Usage: .venv/bin/python bench/jobs.py [--only list,calls,rate,submit] [--postgres URL] [--requests 200]
       [--jobs 100000] [--active 200] [--rate-seconds 60] [--runs 5]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN

BIN = Path(sys.executable).parent
SUBMIT = "/api/cloud/jobs/submit"
EXAMPLE = {"config": "flux-lora-example", "consent": True, "delivery": "none"}
PREPARING = ("created", "packaging", "uploading", "submitting")
RESULTS: list[tuple[str, bool]] = []  # (target, met) for the final PASS/MISS lines


# Processes and ports ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `probe` until it returns something truthy; the deadline only shows when something broke."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


@dataclass
class Process:
    """A child server on a loopback port, its output in a log file, stopped by its own pid."""

    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, path: str = "/healthz") -> None:
        def up() -> bool:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            try:
                return httpx.get(f"{self.url}{path}", timeout=2, headers=SANDBOX_AUTH).status_code < 500
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what=f"{self.name} answering {path}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextlib.contextmanager
def started(name: str, command: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[Process]:
    with open(log, "wb") as out:
        popen = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    process = Process(name, port, popen, log)
    try:
        yield process
    finally:
        process.stop()


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for `simpletuner server`: its own state root, nothing read from the user's
    Replicate token or tuning variables, and no address outside loopback."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SIMPLETUNER_") and k != "REPLICATE_API_TOKEN"
    }
    env["SIMPLETUNER_HOME"] = str(home)
    env["SIMPLETUNER_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


@contextlib.contextmanager
def our_server(home: Path, **extra: str) -> Iterator[Process]:
    port = free_port()
    command = [str(BIN / "simpletuner"), "server", "--port", str(port)]
    log = home.parent / f"server-{port}.log"
    with started("simpletuner server", command, server_env(home, **extra), log, port) as process:
        process.wait_healthy()
        yield process


# A sandbox (or a sandboxed server) in a child process that logs every request it receives ----------
SANDBOX_AUTH = {"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
_ID_AFTER = {"predictions", "files", "trainings", "versions", "deliveries"}


def route_of(path: str) -> str:
    """`/v1/predictions/abc123/cancel` -> `/v1/predictions/{id}/cancel` (also under `/sandbox`)."""
    parts = path.removeprefix("/sandbox").strip("/").split("/")
    named = [
        "{id}"
        if index >= 2 and parts[index - 1] in _ID_AFTER and part not in ("cancel", "download")
        else part
        for index, part in enumerate(parts)
    ]
    return "/" + "/".join(named)


@dataclass
class CallLog:
    """Requests as (unix time, method, route); served as JSON at `/bench/calls` by `Recorder`."""

    calls: list[tuple[float, str, str]] = field(default_factory=list)
    webhooks: list[float] = field(default_factory=list)


class Counting:
    """ASGI middleware around the sandbox: every Replicate API request it receives."""

    def __init__(self, app: Any, log: CallLog) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/v1/" in scope["path"]:
            self.log.calls.append((time.time(), scope["method"], route_of(scope["path"])))
        await self.app(scope, receive, send)


class Recorder:
    """The outermost ASGI layer of a child: answers `/bench/calls` (GET: the log; DELETE: clear it)
    and notes every webhook delivery the server receives."""

    def __init__(self, app: Any, log: CallLog) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/calls":
            if scope["method"] == "DELETE":
                self.log.calls.clear()
                self.log.webhooks.clear()
            body = json.dumps({"calls": self.log.calls, "webhooks": self.log.webhooks}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and scope["path"].startswith("/api/webhooks/replicate"):
            self.log.webhooks.append(time.time())
        await self.app(scope, receive, send)


def serve_child(mode: str, port: int, where: str, options: str) -> None:
    """`bench/jobs.py _child sandbox PORT DATA_DIR JSON` or `_child server PORT HOME JSON`."""
    import uvicorn

    log = CallLog()
    if mode == "sandbox":
        from simpletuner_cloud.sandbox import SandboxConfig, create_sandbox_app

        config = SandboxConfig(public_base_url=f"http://127.0.0.1:{port}", data_dir=Path(where),
                               **json.loads(options))  # fmt: skip
        sandbox = create_sandbox_app(config)
        sandbox.add_middleware(Counting, log=log)
        uvicorn.run(Recorder(sandbox, log), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        return
    from simpletuner_cloud.api.app import create_app
    from simpletuner_cloud.cli.server import uvicorn_config
    from simpletuner_cloud.settings import load_settings

    settings = load_settings(home=Path(where), sandbox=True, port=port, sandbox_token=DEFAULT_SANDBOX_TOKEN)
    app = create_app(settings)
    app.state.sandbox_app.add_middleware(Counting, log=log)
    for name, value in json.loads(options).items():
        setattr(app.state.sandbox_app.state.sandbox.config, name, value)
    served = uvicorn_config(app, settings)
    served.app = Recorder(app, log)
    uvicorn.Server(served).run()


@contextlib.contextmanager
def child(mode: str, work: Path, **options: Any) -> Iterator[Process]:
    port = free_port()
    where = work / f"{mode}-{port}"
    where.mkdir(parents=True)
    if mode == "server":
        from simpletuner_cloud.services.datasets import install_example
        from simpletuner_cloud.settings import load_settings

        install_example(load_settings(home=where))
    command = [sys.executable, __file__, "_child", mode, str(port), str(where), json.dumps(options)]
    env = server_env(where, SIMPLETUNER_HOME=str(where))
    with started(f"bench {mode}", command, env, work / f"{mode}-{port}.log", port) as process:
        process.wait_healthy("/bench/calls")
        yield process


def calls_of(process: Process, *, clear: bool = False) -> dict[str, Any]:
    method = "DELETE" if clear else "GET"
    return httpx.request(method, f"{process.url}/bench/calls", timeout=30).json()  # type: ignore[no-any-return]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def by_route(calls: list[list[Any]]) -> Counter[str]:
    return Counter(f"{method} {route}" for _, method, route in calls)


# 1. The list's latency ------------------------------------------------------------------------------
def job_id_at(moment: datetime) -> str:
    """An id like the store's (`job_` + 10 base32 chars of milliseconds + 10 random), for a past time."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = int(moment.timestamp() * 1000) << 50 | secrets.randbits(50)
    return "job_" + "".join(alphabet[(value >> shift) & 31] for shift in range(95, -1, -5))


def realistic_job(index: int, created: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A finished, cleaned-up example job as the worker leaves it, and its timeline."""
    job_id = job_id_at(created)
    status = ("succeeded", "succeeded", "succeeded", "failed", "canceled")[index % 5]
    started = created + timedelta(seconds=40)
    completed = started + timedelta(minutes=25)
    config = json.loads((resources.files("simpletuner_cloud") / "examples/flux-lora/config.json").read_text())
    prediction = f"{uuid.uuid4().hex[:26]}"
    archive_url = (
        f"https://api.replicate.com/v1/files/{uuid.uuid4().hex}/download?expiry=1&owner=ana&signature=x"
    )
    spec = {
        "request": {"config": "flux-lora-example", "config_json": None, "dataloader_json": None,
                    "merge_local_datasets": False, "rename_to_captions": False, "hardware": None,
                    "delivery": "none", "hub_model_id": None, "consent": True, "webhook_url": None,
                    "max_train_steps": None},
        "webhook": f"https://tuner.example.com/api/webhooks/replicate?job={job_id}",
        "webhook_events_filter": ["start", "output", "logs", "completed"],
        "hub_model_id": None, "archive_bytes": 101_412, "needs_upload": True,
        "inputs": {"images": archive_url, "config_json": json.dumps(config), "max_train_steps": 1000},
        "archive_url": archive_url, "prepare_attempts": 1,
    }  # fmt: skip
    progress = {"step": 1000, "total_steps": 1000, "epoch": 84, "epochs": 84, "loss": 0.0812,
                "learning_rate": 0.0001, "seconds_per_step": 1.5, "parsed_to": 48_211}  # fmt: skip
    row = {
        "id": job_id, "prediction_id": prediction, "client_ref": uuid.uuid4().hex, "status": status,
        "provider_status": status, "config_name": "flux-lora-example",
        "hardware": "a100" if index % 10 == 6 else "l40s",
        "model": "simpletuner/advanced-trainer", "version": "a" * 64, "created_at": created,
        "updated_at": completed, "submitted_at": created + timedelta(seconds=3), "started_at": started,
        "completed_at": completed, "estimated_cost_usd": Decimal("1.462500"),
        "actual_cost_usd": Decimal("1.423125"), "reserved_cost_usd": None,
        "error_code": "cuda_oom" if status == "failed" else None,
        "error": "CUDA out of memory at step 412." if status == "failed" else None,
        "error_hint": "Lower the batch size or the resolution." if status == "failed" else None,
        "output": {"weights": f"https://replicate.delivery/{prediction}/lora.safetensors"}
        if status == "succeeded" else None,
        "progress": progress, "logs_offset": 48_211, "upload_id": None, "idempotency_key": None,
        "request_hash": uuid.uuid4().hex * 2, "spec": spec, "lock_token": None, "locked_until": None,
        "next_poll_at": None, "last_webhook_at": completed, "create_sent_at": created + timedelta(seconds=2),
        "create_attempts": 1, "cancel_requested_at": completed if status == "canceled" else None,
        "cleaned_at": completed + timedelta(seconds=5), "delivery": "none", "warnings": [
            'Delivery "none": the trained weights stay on Replicate\'s machine and are lost when it stops.'
        ], "notice": None,
    }  # fmt: skip
    moves = [("created", created), ("packaging", created), ("uploading", created + timedelta(seconds=1)),
             ("queued", created + timedelta(seconds=3)), ("running", started),
             (status, completed)]  # fmt: skip
    events = [
        {"job_id": job_id, "at": at, "kind": "status", "from_status": previous, "to_status": to,
         "message": None, "data": {"provider_status": to} if to in ("running", status) else None}
        for (previous, _), (to, at) in zip([(None, None), *moves], moves, strict=False)
    ]  # fmt: skip
    events.append({"job_id": job_id, "at": completed + timedelta(seconds=5), "kind": "cleaned_up",
                   "from_status": None, "to_status": None, "data": None,
                   "message": "Dataset file deleted at Replicate; secrets removed."})  # fmt: skip
    return row, events


async def seed(url: str, count: int) -> None:
    """Migrate, then insert `count` jobs (one a minute, newest now) with their timelines in bulk."""
    from sqlalchemy import insert

    from simpletuner_cloud.store.database import Database
    from simpletuner_cloud.store.tables import JobEventRow, JobRow

    database = Database(url)
    await database.migrate()
    now = datetime.now(UTC)
    try:
        for start in range(0, count, 5_000):
            rows, events = [], []
            for index in range(start, min(count, start + 5_000)):
                row, timeline = realistic_job(index, now - timedelta(minutes=count - index))
                rows.append(row)
                events.extend(timeline)
            async with database.engine.begin() as conn:
                await conn.execute(insert(JobRow), rows)
                await conn.execute(insert(JobEventRow), events)
        if database.dialect == "postgresql":
            async with database.engine.connect() as conn:
                await conn.exec_driver_sql("COMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE jobs")
                await conn.exec_driver_sql("VACUUM ANALYZE job_events")
    finally:
        await database.dispose()


async def time_claim(url: str, rounds: int = 20) -> float:
    """The worker pass's first query, `claim_due_jobs`, on the seeded store (nothing is due)."""
    from simpletuner_cloud.store import jobs as repo
    from simpletuner_cloud.store.database import Database

    database = Database(url)
    timings = []
    try:
        for _ in range(rounds):
            async with database.session() as session:
                start = time.perf_counter()
                await repo.claim_due_jobs(session, "bench", limit=200)
                timings.append(time.perf_counter() - start)
                await session.rollback()
    finally:
        await database.dispose()
    return statistics.median(timings)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


LISTS = ("/api/cloud/jobs", "/api/cloud/jobs?status=failed", "/api/cloud/jobs?hardware=a100")


def time_list(servers: dict[int, Process], requests: int) -> dict[tuple[int, str], list[float]]:
    """Alternate requests between the servers and the lists (the same noise for all), one keep-alive
    client per server. The default list is the target; the filtered ones show the indexes at work."""
    clients = {n: httpx.Client(base_url=p.url, timeout=30, trust_env=False) for n, p in servers.items()}
    timings: dict[tuple[int, str], list[float]] = {(n, path): [] for n in servers for path in LISTS}
    try:
        for n, client in clients.items():  # warm-up: connections, caches, the first query plans
            for path in LISTS * 10:
                response = client.get(path)
                response.raise_for_status()
            assert client.get(LISTS[0]).json()["total"] == n
        for _ in range(requests):
            for (n, path), seen in timings.items():
                start = time.perf_counter()
                response = clients[n].get(path)
                seen.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text}")
    finally:
        for client in clients.values():
            client.close()
    return timings


@contextlib.contextmanager
def postgres_databases(url: str, count: int) -> Iterator[list[str]]:
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    names = [f"bench_jobs_{uuid.uuid4().hex[:10]}" for _ in range(count)]

    async def run(*statements: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run(*(f'CREATE DATABASE "{name}"' for name in names)))
    try:
        yield [base.set(drivername="postgresql+asyncpg", database=n).render_as_string(hide_password=False)
               for n in names]  # fmt: skip
    finally:
        asyncio.run(run(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names)))


def bench_list(work: Path, args: argparse.Namespace, backend: str, urls: list[str] | None) -> None:
    sizes = [100, args.jobs]
    homes = {n: work / f"list-{backend}-{n}" / "state" for n in sizes}
    extra: dict[int, dict[str, str]] = {n: {} for n in sizes}
    claims: dict[int, float] = {}
    for index, n in enumerate(sizes):
        homes[n].mkdir(parents=True)
        from simpletuner_cloud.settings import load_settings

        url = urls[index] if urls else load_settings(home=homes[n]).effective_database_url
        if urls:
            extra[n]["SIMPLETUNER_DATABASE_URL"] = url
        start = time.perf_counter()
        asyncio.run(seed(url, n))
        took = time.perf_counter() - start
        print(f"  seeded {n:,} jobs ({n * 7:,} timeline events) on {backend} in {took:.1f} s")
        claims[n] = asyncio.run(time_claim(url))
    nowhere = "http://127.0.0.1:9"  # nothing is due, so the worker never calls out; if it did, it fails here
    with contextlib.ExitStack() as stack:
        servers = {
            n: stack.enter_context(our_server(homes[n], SIMPLETUNER_REPLICATE_BASE_URL=nowhere,
                                              SIMPLETUNER_STATUS_PAGE_URL=nowhere, **extra[n]))
            for n in sizes
        }  # fmt: skip
        timings = time_list(servers, args.requests)
    print(f"\n1. GET /api/cloud/jobs on {backend} ({args.requests} requests each, alternating, keep-alive; "
          f"pages of 50; a tenth of the jobs on a100, a fifth failed)")  # fmt: skip
    print(f"{'':36}{f'{args.jobs:,} jobs':>14}{'100 jobs':>12}{'ratio':>8}{'target':>22}")
    for path in LISTS:
        for name, value in (("p50", statistics.median), ("p95", lambda v: percentile(v, 0.95))):
            low, high = (value(timings[n, path]) * 1000 for n in sizes)
            label = f"{path.removeprefix('/api/cloud/jobs') or 'default'} {name}"
            target = "< 20 ms, ratio < 2" if path == LISTS[0] and name == "p50" else ""
            print(f"{label:36}{high:>11.2f} ms{low:>9.2f} ms{high / low:>8.2f}{target:>22}")
    low, high = (claims[n] * 1000 for n in sizes)
    print(f"{'worker claim (in-process, median)':36}{high:>11.2f} ms{low:>9.2f} ms{high / low:>8.2f}")
    small, big = (statistics.median(timings[n, LISTS[0]]) * 1000 for n in sizes)
    RESULTS.append((f"list p50 at {args.jobs:,} jobs on {backend} < 20 ms ({big:.2f} ms)", big < 20))
    RESULTS.append(
        (f"list p50 ratio {args.jobs:,}/100 on {backend} < 2 ({big / small:.2f})", big / small < 2)
    )


# 2. Replicate calls over one job's life -------------------------------------------------------------
def get_json(http: httpx.Client, path: str) -> Any:
    response = http.get(path)
    response.raise_for_status()
    return response.json()


def wait_job(http: httpx.Client, job_id: str, done: Callable[[dict[str, Any]], bool], *,
             timeout: float, interval: float = 0.25) -> dict[str, Any]:  # fmt: skip
    return wait_until(lambda: (job := get_json(http, f"/api/cloud/jobs/{job_id}")) and done(job) and job,
                      timeout=timeout, interval=interval, what=f"job {job_id}")  # fmt: skip


def cleaned_up(job: dict[str, Any]) -> bool:
    return any(event["kind"] == "cleaned_up" for event in job["timeline"] or [])


def one_job_calls(server: Process, http: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    calls_of(server, clear=True)
    submitted = http.post(SUBMIT, json=EXAMPLE)
    submitted.raise_for_status()
    job = wait_job(http, submitted.json()["job_id"], cleaned_up, timeout=300, interval=0.5)
    return job, calls_of(server)


def bench_calls(work: Path) -> None:
    with child("server", work) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        first, cold = one_job_calls(
            server, http
        )  # the server's first job also fetches once-per-process things
        job, seen = one_job_calls(server, http)
    routes, first_routes = by_route(seen["calls"]), by_route(cold["calls"])
    total = sum(routes.values())
    start = min((t for t, _, _ in seen["calls"]), default=0.0)
    print(f"\n2. Replicate calls over one example job's life, submit to cleaned up (simpletuner server "
          f"--sandbox, product defaults; the server's second job, {len(seen['webhooks'])} webhooks "
          f"received, {job['status']}; its first job, {first['status']}, in the last column)")  # fmt: skip
    print(f"{'route':44}{'calls':>6}{'first job':>11}")
    for route in sorted(set(routes) | set(first_routes)):
        print(f"{route:44}{routes[route]:>6}{first_routes[route]:>11}")
    floor = 5  # the model's version at submit, upload, create, the final read, the dataset file's delete
    print(f"{'total (ours)':44}{total:>6}{sum(first_routes.values()):>11}")
    print(f"{'reference: the calls a job cannot do without':44}{floor:>6}")
    print(f"ratio {total / floor:.2f}, target <= 6. In order: "
          + ", ".join(f"+{t - start:.1f} s {m} {r}" for t, m, r in seen["calls"]))  # fmt: skip
    first_total = sum(first_routes.values())
    RESULTS.append(
        (f"Replicate calls per job <= 6 ({total}; the server's first job {first_total})", total <= 6)
    )


# 3. The call rate with many running jobs and no webhooks --------------------------------------------
def bench_rate(work: Path, args: argparse.Namespace) -> None:
    from simpletuner_cloud.services.datasets import install_example
    from simpletuner_cloud.settings import Settings, load_settings

    defaults = Settings(home=work)
    home = work / "rate" / "state"
    home.mkdir(parents=True)
    install_example(load_settings(home=home))
    long_run = {"step_seconds": 3600.0, "boot_seconds": 0.0, "max_simulated_steps": 20}
    with child("sandbox", work, **long_run) as box:
        env = {"REPLICATE_API_TOKEN": DEFAULT_SANDBOX_TOKEN, "SIMPLETUNER_REPLICATE_BASE_URL": box.url,
               "SIMPLETUNER_STATUS_PAGE_URL": f"{box.url}/status"}  # fmt: skip
        with our_server(home, **env) as server, httpx.Client(base_url=server.url, timeout=120) as http:
            start = time.perf_counter()
            for _ in range(args.active):
                http.post(SUBMIT, json=EXAMPLE).raise_for_status()

            def running() -> bool:
                listed = get_json(http, "/api/cloud/jobs?status=running&limit=1")
                return bool(listed["total"] == args.active)

            wait_until(running, timeout=900, interval=1.0, what=f"{args.active} jobs running")
            ramp = time.perf_counter() - start
            time.sleep(defaults.log_poll_seconds)  # past the first round of log reads after `running`
            calls_of(box, clear=True)
            cpu = cpu_seconds(server.popen.pid)
            time.sleep(args.rate_seconds)
            seen = calls_of(box)
            cpu = cpu_seconds(server.popen.pid) - cpu
            still = get_json(http, "/api/cloud/jobs?status=running&limit=1")["total"]
    routes = by_route(seen["calls"])
    per_minute = sum(routes.values()) * 60 / args.rate_seconds
    naive = args.active * 60 / defaults.poll_seconds
    print(f"\n3. Replicate calls with {args.active} running jobs, no webhooks, defaults (poll "
          f"{defaults.poll_seconds:g} s, logs {defaults.log_poll_seconds:g} s, list from "
          f"{defaults.list_threshold} jobs, batch {defaults.worker_batch}); {args.rate_seconds:g} s window; "
          f"{args.active} submitted and running after {ramp:.0f} s, {still} still running at "
          "the end")  # fmt: skip
    print(f"{'route':44}{'per min':>9}")
    for route, count in sorted(routes.items()):
        print(f"{route:44}{count * 60 / args.rate_seconds:>9.1f}")
    print(f"{'total (ours)':44}{per_minute:>9.1f}")
    print(f"{'reference: one GET per job per poll':44}{naive:>9.1f}   ratio {per_minute / naive:.2f}")
    print(f"{'target: 30% of 3,000/min':44}{900:>9.1f}")
    print(f"server CPU in the window: {cpu:.1f} s ({cpu / args.rate_seconds:.0%} of one core)")
    RESULTS.append((f"calls/min with {args.active} silent jobs < 900 ({per_minute:.0f})", per_minute < 900))


# 4. Submit to queued against packaging plus a direct upload -----------------------------------------
def reference_once(settings: Any, box: Process, out: Path) -> float:
    """Package the example and upload the archive: the client is made before the clock starts (its
    connection is opened inside the timing), so this is the raw work."""
    from simpletuner_cloud.replicate.files import upload_file
    from simpletuner_cloud.services.datasets import EXAMPLE_NAME, package_dataset

    async def run() -> float:
        async with httpx.AsyncClient(
            base_url=box.url, headers=SANDBOX_AUTH, timeout=120, trust_env=False
        ) as http:
            start = time.perf_counter()
            package_dataset(settings, EXAMPLE_NAME, out)
            await upload_file(http, out, filename="dataset.zip")
            return time.perf_counter() - start

    return asyncio.run(run())


def floor_once(settings: Any, box: Process, out: Path, version: str, inputs: dict[str, Any]) -> float:
    """The reference plus the create the submit exists for (the same inputs as ours, the archive's
    new URL in `images`): the least any submit that reaches `queued` can do, with no check, no record
    and no worker. The prediction is canceled after the clock stops."""
    from simpletuner_cloud.replicate.files import upload_file
    from simpletuner_cloud.services.datasets import EXAMPLE_NAME, package_dataset

    async def run() -> float:
        async with httpx.AsyncClient(
            base_url=box.url, headers=SANDBOX_AUTH, timeout=120, trust_env=False
        ) as http:
            start = time.perf_counter()
            package_dataset(settings, EXAMPLE_NAME, out)
            uploaded = await upload_file(http, out, filename="dataset.zip")
            body = {"version": version, "input": {**inputs, "images": uploaded["urls"]["get"]}}
            created = await http.post("/v1/predictions", json=body)
            elapsed = time.perf_counter() - start
            created.raise_for_status()
            await http.post(f"/v1/predictions/{created.json()['id']}/cancel")
            return elapsed

    return asyncio.run(run())


STEPS = ("answered", "created", "packaging", "uploading", "submitting", "queued")


def ours_once(http: httpx.Client) -> tuple[float, dict[str, Any]]:
    """Seconds from sending the submit to the `queued` event, and when each step began (from the
    timeline's own times; this machine's clock on both sides)."""
    sent = datetime.now(UTC)
    response = http.post(SUBMIT, json=EXAMPLE)
    answered = datetime.now(UTC)
    response.raise_for_status()
    job_id = response.json()["job_id"]
    job = wait_job(http, job_id, lambda j: j["status"] not in PREPARING, timeout=120, interval=0.1)
    moments = {"answered": (answered - sent).total_seconds()}
    for event in job["timeline"]:
        if event["kind"] == "status" and event["to_status"] in STEPS:
            moments[event["to_status"]] = (datetime.fromisoformat(event["at"]) - sent).total_seconds()
    moments["prediction_id"] = job["prediction_id"]
    http.post(f"/api/cloud/jobs/{job_id}/cancel").raise_for_status()
    wait_job(http, job_id, cleaned_up, timeout=120)
    return moments["queued"], moments


JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def add_photos(folder: Path, mib: int) -> None:
    """`mib` MiB more of the example's kind of files: 1 MiB JPEGs (random bytes behind a JPEG header,
    incompressible like real ones) with the file name as the caption, as the example's are."""
    for index in range(mib):
        stem = f"sks_plushie_photo_number_{index:04d}"
        body = JPEG_START + os.urandom(2**20 - len(JPEG_START) - 2) + b"\xff\xd9"
        (folder / f"{stem}.jpg").write_bytes(body)
        (folder / f"{stem}.txt").write_text(stem.replace("_", " "))


def sandbox_prediction(box: Process, prediction_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{box.url}/v1/predictions/{prediction_id}", headers=SANDBOX_AUTH, timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


def submit_runs(
    settings: Any, box: Process, http: httpx.Client, image: Path, out: Path, runs: int
) -> tuple[list[float], list[float], list[dict[str, Any]], list[float]]:
    """Interleaved: the reference, ours and the floor, `runs` times after one uncounted warm-up."""
    ours: list[float] = []
    reference: list[float] = []
    floor: list[float] = []
    steps: list[dict[str, Any]] = []
    original = image.read_bytes()
    made: dict[str, Any] = {}
    for run in range(runs + 1):
        # New bytes each run (after the JPEG's end), so no run reuses an earlier run's upload.
        image.write_bytes(original + bytes([run]))
        ref = reference_once(settings, box, out)
        elapsed, moments = ours_once(http)
        made = made or sandbox_prediction(box, moments["prediction_id"])  # ours' version and inputs
        image.write_bytes(original + bytes([run, run]))
        least = floor_once(settings, box, out, made["version"], made["input"])
        if run:
            reference.append(ref)
            ours.append(elapsed)
            floor.append(least)
            steps.append(moments)
    image.write_bytes(original)
    return ours, reference, steps, floor


def step_medians(steps: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{name} {statistics.median(m[name] for m in steps if name in m) * 1000:.0f}"
        for name in STEPS
        if any(name in m for m in steps)
    )


def bench_submit(work: Path, args: argparse.Namespace) -> None:
    from simpletuner_cloud.services.datasets import EXAMPLE_NAME, install_example
    from simpletuner_cloud.settings import load_settings

    home = work / "submit" / "state"
    home.mkdir(parents=True)
    settings = load_settings(home=home)
    folder, _ = install_example(settings)
    photos = folder / "datasets" / "sks-plushie"
    image = sorted(photos.glob("*.jpg"))[0]
    long_run = {"step_seconds": 3600.0, "boot_seconds": 0.0}
    with child("sandbox", work, **long_run) as box:
        env = {"REPLICATE_API_TOKEN": DEFAULT_SANDBOX_TOKEN, "SIMPLETUNER_REPLICATE_BASE_URL": box.url,
               "SIMPLETUNER_STATUS_PAGE_URL": f"{box.url}/status"}  # fmt: skip
        with our_server(home, **env) as server, httpx.Client(base_url=server.url, timeout=120) as http:
            ours, reference, steps, floor = submit_runs(
                settings, box, http, image, work / "reference.zip", args.runs
            )
            larger = None
            if args.larger_mib:
                add_photos(photos, args.larger_mib)
                larger = submit_runs(settings, box, http, image, work / "reference.zip", args.runs)
    ours_median, ref_median = statistics.median(ours) * 1000, statistics.median(reference) * 1000
    overhead = ours_median / ref_median - 1
    print(f"\n4. Submit to queued, the example environment ({EXAMPLE_NAME}: 12 photos, 100 KiB), "
          f"median of {args.runs} runs, interleaved")  # fmt: skip
    print(f"{'':44}{'median':>10}{'min':>10}")
    print(f"{'ours: POST submit -> queued':44}{ours_median:>7.1f} ms{min(ours) * 1000:>7.1f} ms")
    ref_min = min(reference) * 1000
    print(f"{'reference: package_dataset + upload_file':44}{ref_median:>7.1f} ms{ref_min:>7.1f} ms")
    floor_median = statistics.median(floor) * 1000
    print(f"{'floor: the reference + the create call':44}{floor_median:>7.1f} ms{min(floor) * 1000:>7.1f} ms")
    print(f"{'ratio':44}{ours_median / ref_median:>10.2f}   overhead {overhead:.0%}, target < 20%")
    print(f"{'the floor against the reference':44}{floor_median / ref_median:>10.2f}   "
          f"overhead {floor_median / ref_median - 1:.0%}: what the create alone adds")  # fmt: skip
    print(f"ours, step by step (median ms after sending the submit): {step_medians(steps)}")
    RESULTS.append((f"submit-to-queued overhead < 20% ({overhead:.0%})", overhead < 0.2))
    if larger is not None:
        big_ours, big_ref, big_floor = (statistics.median(v) * 1000 for v in (*larger[:2], larger[3]))
        print(f"the same with {args.larger_mib} MiB more photos: ours {big_ours:.0f} ms, reference "
              f"{big_ref:.0f} ms, overhead {big_ours / big_ref - 1:.0%} (not a target), floor "
              f"{big_floor:.0f} ms; step by step: {step_medians(larger[2])}")  # fmt: skip


def main() -> None:
    # Run as a script, bench/ comes first on the path and bench/packaging.py would stand in for the
    # `packaging` library the official replicate client imports; every product import below is lazy.
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        serve_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="list,calls,rate,submit", help="comma-separated items to run")
    parser.add_argument("--postgres", metavar="URL", help="also time the list on this PostgreSQL server")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--rate-seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--larger-mib", type=int, default=50, help="item 4 again with this much more; 0: no")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        work = Path(tmp)
        if "list" in only:
            bench_list(work, args, "SQLite", None)
            if args.postgres:
                with postgres_databases(args.postgres, 2) as urls:
                    bench_list(work, args, "PostgreSQL", urls)
        if "calls" in only:
            bench_calls(work)
        if "rate" in only:
            bench_rate(work, args)
        if "submit" in only:
            bench_submit(work, args)
        shutil.rmtree(work, ignore_errors=True)
    print()
    for target, met in RESULTS:
        print(f"{'PASS' if met else 'MISS'}  {target}")


if __name__ == "__main__":
    main()
