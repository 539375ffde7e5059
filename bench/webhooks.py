"""Webhook receiver benchmark: signed deliveries with durable apply to existing jobs, under `wrk` with
32 concurrent connections on loopback (a separate load process), side by side in one run with a bare
uvicorn endpoint that answers 204 (same uvicorn settings as `simpletuner server`).

Each delivery is a Replicate `logs` event for one of many running jobs: a new `webhook-id`, a valid
signature, the job's whole log so far (one more step line each time), so every request verifies,
claims its id, appends a log chunk, parses progress and loss, and commits before it is answered.
Targets: at least 0.5x the bare throughput, p99 under 50 ms, on SQLite and on PostgreSQL. For scale,
the same server's cheapest route (`GET /healthz`) is measured too, in the SQLite run, and so is the
floor of any receiver: the bare app checking each signature with the `standardwebhooks` package, and
then also committing one row a delivery to SQLite (no framework, nothing applied to a job).

Usage: .venv/bin/python bench/webhooks.py [--duration 10] [--connections 32] [--postgres URL]
                                          [--profile DIR]  (py-spy profiles of every server)
(PostgreSQL: `--postgres` or SIMPLETUNER_TEST_DATABASE_URL; a scratch database is created and dropped.)"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from simpletuner_cloud.replicate.webhooks import signed_headers
from simpletuner_cloud.store.database import Database
from simpletuner_cloud.store.jobs import apply_status, create_job, record_prediction_id
from simpletuner_cloud.store.tables import WebhookDeliveryRow

TOKEN = "r8_benchSandboxToken000000000000000000000"  # noqa: S105 (the bench's own sandbox)
PLAIN: list[dict[str, Any]] = []  # the server's own cheapest route, measured in the SQLite run
MAX_RATE = 3000  # requests per second the pre-signed set covers without repeating (more are duplicates)
BARE_APP = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            proxy_headers=False, server_header=False, timeout_keep_alive=5, limit_concurrency=256)
"""
SIGNED_APP = """
import asyncio, os, sqlite3, sys, uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
hook = Webhook(os.environ["BENCH_WEBHOOK_SECRET"])
KEEP
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
    try:
        hook.verify(body, headers)  # the HMAC and the JSON parse
    except WebhookVerificationError:
        status = 401
    else:
        await keep(headers["webhook-id"], body)
        status = 204
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            proxy_headers=False, server_header=False, timeout_keep_alive=5, limit_concurrency=256)
"""
NOTHING_KEPT = """
async def keep(webhook_id, body):
    pass  # nothing stored
"""
ONE_ROW_KEPT = """
db = sqlite3.connect(sys.argv[2], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS deliveries (webhook_id TEXT PRIMARY KEY, body BLOB NOT NULL)")
pending = []
writing = False
async def write():
    global writing, pending
    writing = True
    while pending:
        await asyncio.sleep(0)  # the deliveries that arrive meanwhile go in the same commit
        batch, pending = pending, []
        db.execute("BEGIN")
        db.executemany("INSERT INTO deliveries VALUES (?, ?) ON CONFLICT DO NOTHING",
                       [(webhook_id, body) for webhook_id, body, _ in batch])
        db.execute("COMMIT")
        for _, _, done in batch:
            done.set_result(None)
    writing = False
async def keep(webhook_id, body):  # one row a delivery, committed before the answer: nothing applied
    done = asyncio.get_running_loop().create_future()
    pending.append((webhook_id, body, done))
    if not writing:
        asyncio.create_task(write())
    await done
"""
FLOOR_APP = SIGNED_APP.replace("KEEP", NOTHING_KEPT)
DURABLE_APP = SIGNED_APP.replace("KEEP", ONE_ROW_KEPT)
DONE = r"""
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""
GET_SCRIPT = DONE  # a plain GET: only the summary
WRK_SCRIPT = (
    r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local threads = tonumber(args[1])
  requests = {}
  local n = 0
  for line in io.lines(args[2]) do
    if n % threads == id then
      local msg, ts, sig, body = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
      local headers = {["Content-Type"] = "application/json", ["webhook-id"] = msg,
                       ["webhook-timestamp"] = ts, ["webhook-signature"] = sig}
      requests[#requests + 1] = wrk.format("POST", "/api/webhooks/replicate", headers, body)
    end
    n = n + 1
  end
  i = 0
end

function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"""
    + DONE
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def prediction_body(prediction_id: str, step: int, total: int) -> bytes:
    logs = "".join(f"Step {s} of {total}: loss {1.0 / s:.4f}, lr 0.0001\n" for s in range(1, step + 1))
    body = {
        "id": prediction_id,
        "model": "simpletuner/advanced-trainer",
        "version": "0" * 64,
        "input": {"config_json": "{}"},
        "logs": logs,
        "output": None,
        "error": None,
        "status": "processing",
        "created_at": "2026-12-01T10:00:00.000Z",
        "started_at": "2026-12-01T10:00:01.000Z",
        "metrics": {},
    }
    return json.dumps(body).encode()


def write_requests(path: Path, secret: str, jobs: int, count: int) -> None:
    """`count` signed deliveries round-robin over the jobs, each job's log one step longer each time."""
    steps = -(-count // jobs)
    now = int(time.time())
    with path.open("w") as out:
        for index in range(count):
            job, step = index % jobs, index // jobs + 1
            body = prediction_body(f"pbench{job:05d}", step, steps)
            msg_id = f"msg_bench_{index:08d}"
            signature = signed_headers(secret, msg_id, now, body)["webhook-signature"]
            out.write(f"{msg_id}\t{now}\t{signature}\t{body.decode()}\n")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, args: list[str], options: argparse.Namespace) -> dict[str, Any]:
    command = ["wrk", f"-t{options.threads}", f"-c{options.connections}", f"-d{options.duration}s"]
    command += ["--timeout", "10s", "-s", str(script), url, "--", str(options.threads), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = [text for text in done.stdout.splitlines() if text.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


async def make_jobs(url: str, count: int) -> None:
    database = Database(url)
    try:
        async with database.session() as session:
            later = datetime.now(UTC) + timedelta(days=1)
            for index in range(count):
                job, _ = await create_job(
                    session, config_name="bench", hardware="l40s", model="simpletuner/advanced-trainer"
                )
                await record_prediction_id(session, job.id, f"pbench{index:05d}")
                await apply_status(session, job.id, "running", next_poll_at=later)
            await session.commit()
    finally:
        await database.dispose()


async def outcomes(url: str) -> dict[str, int]:
    database = Database(url)
    try:
        async with database.session() as session:
            query = select(WebhookDeliveryRow.outcome, func.count()).group_by(WebhookDeliveryRow.outcome)
            return {str(outcome): int(n) for outcome, n in (await session.execute(query)).all()}
    finally:
        await database.dispose()


async def scratch_database(url: str) -> str:
    import asyncpg

    parsed = make_url(url)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(
        parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str, scratch: str) -> None:
    import asyncpg

    parsed = make_url(url)
    connection = await asyncpg.connect(
        parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(scratch).database}" WITH (FORCE)')
    finally:
        await connection.close()


def profile(pid: int, label: str, options: argparse.Namespace) -> subprocess.Popen[bytes] | None:
    """`--profile DIR`: py-spy samples the server during the run (raw folded stacks, one file a store)."""
    if not options.profile:
        return None
    target = Path(options.profile) / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".txt")
    target.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    seconds = str(max(options.duration - 1, 1))
    command = [str(spy) if spy.exists() else "py-spy", "record", "-p", str(pid), "-d", seconds, "-r", "250"]
    command += ["-f", "raw", "-o", str(target), "--gil"]  # only the thread holding the GIL: CPU, not waits
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_server(label: str, database_url: str | None, options: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {
            **os.environ,
            "SIMPLETUNER_HOME": home,
            "SIMPLETUNER_SANDBOX_TOKEN": TOKEN,
            "SIMPLETUNER_LOG_LEVEL": "WARNING",
        }
        env.pop("SIMPLETUNER_DATABASE_URL", None)
        if database_url:
            env["SIMPLETUNER_DATABASE_URL"] = database_url
        url = database_url or f"sqlite+aiosqlite:///{home}/cloud/jobs.db"
        command = [
            str(Path(sys.executable).with_name("simpletuner")),
            "server",
            "--sandbox",
            "--port",
            str(port),
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(port, process)
            asyncio.run(make_jobs(url, options.jobs))
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/sandbox/v1/webhooks/default/secret",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                secret = json.loads(answer.read())["key"]
            requests = Path(home) / "requests.tsv"
            write_requests(requests, secret, options.jobs, MAX_RATE * options.duration)
            script = Path(home) / "deliveries.lua"
            script.write_text(WRK_SCRIPT)
            if label.endswith("SQLite"):  # the same server's cheapest route: what the framework costs
                probe = Path(home) / "get.lua"
                probe.write_text(GET_SCRIPT)
                before = cpu_seconds(process.pid)
                plain = run_wrk(f"http://127.0.0.1:{port}/healthz", probe, [], options)
                plain["cpu_ms"] = (cpu_seconds(process.pid) - before) * 1000 / max(plain["requests"], 1)
                plain["label"] = "same server, GET /healthz"
                PLAIN.append(plain)
            cpu_before = cpu_seconds(process.pid)
            profiler = profile(process.pid, label, options)
            result = run_wrk(f"http://127.0.0.1:{port}", script, [str(requests)], options)
            if profiler is not None:
                profiler.wait()
            result["cpu_ms"] = (cpu_seconds(process.pid) - cpu_before) * 1000 / max(result["requests"], 1)
            result["outcomes"] = asyncio.run(outcomes(url))
        finally:
            stop(process)
    result["label"] = label
    return result


def bench_app(label: str, source: str, options: argparse.Namespace) -> dict[str, Any]:
    """A reference app in its own uvicorn process, under the same load: the bare endpoint, or the
    least any receiver can do at each stage (the signature check; that and one committed row)."""
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = {**os.environ, "BENCH_WEBHOOK_SECRET": secret}
        command = [sys.executable, "-c", source, str(port), str(Path(home) / "deliveries.db")]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_for(port, process, "/")
            requests = Path(home) / "requests.tsv"
            write_requests(requests, secret, options.jobs, MAX_RATE * options.duration)
            script = Path(home) / "deliveries.lua"
            script.write_text(WRK_SCRIPT)
            cpu_before = cpu_seconds(process.pid)
            profiler = profile(process.pid, label, options)
            result = run_wrk(f"http://127.0.0.1:{port}", script, [str(requests)], options)
            if profiler is not None:
                profiler.wait()
            result["cpu_ms"] = (cpu_seconds(process.pid) - cpu_before) * 1000 / max(result["requests"], 1)
        finally:
            stop(process)
    result["label"] = label
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--jobs", type=int, default=500, help="running jobs the deliveries are about")
    parser.add_argument("--postgres", default=os.environ.get("SIMPLETUNER_TEST_DATABASE_URL"))
    parser.add_argument(
        "--profile", metavar="DIR", help="sample each server with py-spy into DIR (pip install py-spy)"
    )
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    runs = [
        bench_app("bare uvicorn (204)", BARE_APP, options),
        bench_app("bare + signature check", FLOOR_APP, options),
        bench_app("  + one row committed", DURABLE_APP, options),
        bench_server("webhooks, SQLite", None, options),
    ]
    if options.postgres:
        scratch = asyncio.run(scratch_database(options.postgres))
        try:
            runs.append(bench_server("webhooks, PostgreSQL", scratch, options))
        finally:
            asyncio.run(drop_database(options.postgres, scratch))
    runs[3:3] = PLAIN
    bare = runs[0]["rps"]
    print(f"{options.connections} connections, {options.duration} s each, wrk -t{options.threads}, loopback")
    columns = ("sent", "req/s", "x bare", "p50 ms", "p99 ms", "max ms", "non-2xx", "cpu ms")
    print(f"{'':24}" + "".join(f"{name:>9}" for name in columns) + "  recorded")
    for run in runs:
        recorded = ", ".join(f"{k} {v}" for k, v in sorted(run.get("outcomes", {}).items())) or "-"
        cells = (
            f"{run['requests']}",
            f"{run['rps']:.0f}",
            f"{run['rps'] / bare:.3f}",
            f"{run['p50_us'] / 1000:.1f}",
            f"{run['p99_us'] / 1000:.1f}",
            f"{run['max_us'] / 1000:.1f}",
            f"{run['status_errors'] + run['socket_errors']}",
            f"{run['cpu_ms']:.3f}",
        )
        print(f"{run['label']:24}" + "".join(f"{cell:>9}" for cell in cells) + f"  {recorded}")
    print("cpu ms: the server process's CPU time per answered request (one process, one core at most)")
    print("same server, GET /healthz: simpletuner server's cheapest route (FastAPI and its middleware,")
    print("  no database): what any request costs before the receiver's own work")
    print("bare + signature check: the bare app verifying each delivery with the standardwebhooks package")
    print("  (Webhook.verify: HMAC-SHA256 and the JSON parse), nothing stored: the ceiling of any receiver")
    print("  that checks signatures as the issue asks, before it writes anything")
    print("  + one row committed: that, plus each delivery's id and body inserted in SQLite (WAL,")
    print("  synchronous=NORMAL, group commit, stdlib sqlite3 on the event loop) before the answer:")
    print("  the ceiling of any durable receiver, before it applies anything to a job")
    print("targets: >= 0.50x bare, p99 < 50 ms")


if __name__ == "__main__":
    main()
