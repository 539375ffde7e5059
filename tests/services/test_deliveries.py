"""The delivery task on a real database and real destinations (files on disk, a moto server process,
the sandbox's Hub routes): verified where the files landed; each failure with its reason and hint,
checked again later only while that can help, expired when the window closes; a training's status
never touched; the README written for a local download; a check on demand after a fix."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.artifacts import open_artifact
from simpletuner_cloud.services.deliveries import DeliveryTracker, retry_delivery
from simpletuner_cloud.services.event_bus import EventBus
from simpletuner_cloud.services.publishing import load_publishing, update_publishing
from simpletuner_cloud.settings import Settings, load_settings
from simpletuner_cloud.storage.objects import ObjectStore
from simpletuner_cloud.store import Database
from simpletuner_cloud.store import deliveries as ledger
from simpletuner_cloud.store.jobs import append_logs, apply_status, create_job, list_events, require_job
from simpletuner_cloud.store.tables import DeliveryRow
from tests.support.live_server import free_port, live_server
from tests.support.provider_sandbox import RunningSandbox, standalone_sandbox
from tests.support.s3_servers import MOTO_KEYS, MotoServer, moto_server

TOKEN = "hf_trackerTestToken0000000000000000000"
WEIGHTS = "cog-run/checkpoint-100/pytorch_lora_weights.safetensors"


class Clock:
    """The task's clock: set to the real time plus `ahead` at each check, and still during it."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings() -> Settings:
    return load_settings(poll_seconds=0.1)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.effective_database_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(settings: Settings, db: Database, clock: Clock) -> DeliveryTracker:
    return DeliveryTracker(settings, db, EventBus(), environ=lambda: {"HF_TOKEN": TOKEN}, clock=clock)


async def make_job(db: Database, destination: str, target: dict[str, Any]) -> str:
    async with db.session() as session:
        job, _ = await create_job(
            session, config_name="flux-lora", hardware="l40s", model="m", delivery=destination
        )
        await apply_status(session, job.id, "running", next_poll_at=datetime.now(UTC) + timedelta(days=1))
        await ledger.create_deliveries(session, job.id, [(destination, target)])
        await session.commit()
        return job.id


async def end(db: Database, job_id: str, status: str = "succeeded", at: datetime | None = None) -> None:
    async with db.session() as session:
        at = at or datetime.now(UTC)
        await apply_status(session, job_id, status, at=at, completed_at=at)
        await session.commit()


async def check(tracker: DeliveryTracker) -> None:
    clock = tracker.clock
    assert isinstance(clock, Clock)
    clock.now = datetime.now(UTC) + clock.ahead
    await tracker.run_pass()
    await tracker.drain()


async def delivery(db: Database, job_id: str) -> DeliveryRow:
    async with db.session() as session:
        [row] = await ledger.list_deliveries(session, job_id)
        return row


async def arrived(settings: Settings, db: Database, job_id: str, name: str, data: bytes) -> Path:
    """A file as the storage ingress leaves it: on disk under the job's folder, and recorded."""
    store = ObjectStore(settings.outputs_dir)
    incoming = store.begin()
    incoming.write(data)
    stored = store.commit(incoming, f"{job_id}/{name}")
    async with db.session() as session:
        row = await delivery(db, job_id)
        kind = "checkpoint" if "checkpoint-" in name else "validation_image"
        await ledger.record_artifact(
            session, row.id, job_id, name, kind=kind, step=100, size=stored.size, sha256=stored.sha256,
            etag=stored.etag, location=str(stored.path),
        )  # fmt: skip
        await session.commit()
    return stored.path


async def local_job(settings: Settings, db: Database) -> str:
    job_id = await make_job(db, "local", {"bucket": "cloud-outputs"})
    return job_id


# Local download ------------------------------------------------------------------------------------
async def test_a_local_delivery_is_verified_after_the_job_ends_and_gets_its_readme(
    settings: Settings, db: Database, tracker: DeliveryTracker
) -> None:
    job_id = await local_job(settings, db)
    await arrived(settings, db, job_id, WEIGHTS, b"weights")
    await arrived(settings, db, job_id, "cog-run/validation_images/step_100_x.png", b"png")
    await check(tracker)
    assert (await delivery(db, job_id)).next_check_at is None  # waits for the job's end, unclaimed
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("verified", None, None)
    card = settings.outputs_dir / job_id / "README.md"
    assert WEIGHTS in card.read_text() and hashlib.sha256(b"weights").hexdigest() in card.read_text()
    async with db.session() as session:
        artifacts = {a.name: a for a in await ledger.list_artifacts(session, job_id=job_id)}
        events = [(e.kind, (e.data or {}).get("state")) for e in await list_events(session, job_id)]
        job = await require_job(session, job_id)
    assert set(artifacts) == {WEIGHTS, "cog-run/validation_images/step_100_x.png", "README.md"}
    assert all(a.verified_at is not None for a in artifacts.values())
    assert artifacts["README.md"].sha256 == hashlib.sha256(card.read_bytes()).hexdigest()
    assert [state for kind, state in events if kind == "delivery"] == ["delivered", "verified"]
    assert job.status == "succeeded"


async def test_a_file_changed_after_it_arrived_fails_without_retry_until_asked(
    settings: Settings, db: Database, tracker: DeliveryTracker
) -> None:
    job_id = await local_job(settings, db)
    path = await arrived(settings, db, job_id, WEIGHTS, b"weights")
    path.write_bytes(b"tampered")
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "files_changed", None)
    assert row.reason == f"1 of 1 delivered files are no longer as they arrived: {WEIGHTS} (changed)."
    path.write_bytes(b"weights")  # restored from a backup
    await retry_delivery(db, job_id, "local")
    await check(tracker)
    assert (await delivery(db, job_id)).state == "verified"
    async with db.session() as session:
        assert (await require_job(session, job_id)).status == "succeeded"


async def test_a_retry_asked_while_a_check_runs_is_not_overwritten_by_that_check(
    settings: Settings, db: Database
) -> None:
    """The running check's result (attempts + 1, a backoff of up to an hour) landed over the retry:
    the user fixed the token, pressed Retry, and nothing happened."""
    job_id = await local_job(settings, db)
    await end(db, job_id)
    async with db.session() as session:  # an earlier check failed it; the next one is due now
        row = await delivery(db, job_id)
        await ledger.update_delivery(
            session, row.id, state="failed", attempts=2, next_check_at=datetime.now(UTC)
        )
        await session.commit()
        [claimed] = await ledger.claim_due_deliveries(session, "checker", limit=1, lease_seconds=60)
        await session.commit()
    await retry_delivery(db, job_id, "local")  # while "checker" is checking it
    later = datetime.now(UTC) + timedelta(hours=1)
    async with db.session() as session:
        assert not await ledger.update_delivery(
            session, claimed.id, fence="checker", state="failed", attempts=1, next_check_at=later
        )
        await session.commit()
    row = await delivery(db, job_id)
    assert (row.attempts, row.lock_token) == (0, None)
    assert row.next_check_at is not None and row.next_check_at < later


async def test_nothing_arrived_is_retried_until_the_key_expires_then_expired(
    settings: Settings, db: Database, tracker: DeliveryTracker, clock: Clock
) -> None:
    job_id = await local_job(settings, db)
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.attempts) == ("failed", "nothing_arrived", 1)
    assert row.next_check_at == clock.now + timedelta(seconds=0.3)
    clock.ahead = timedelta(minutes=31)
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("expired", "nothing_arrived", None)
    async with db.session() as session:
        assert (await require_job(session, job_id)).status == "succeeded"


async def test_a_training_that_failed_before_publishing_says_so(
    settings: Settings, db: Database, tracker: DeliveryTracker
) -> None:
    job_id = await local_job(settings, db)
    await end(db, job_id, "failed")
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "nothing_published", None)
    assert row.reason == (
        f"The training failed before its first validation run, so nothing was published to "
        f"{settings.outputs_dir / job_id}."
    )


async def test_checkpoints_of_a_failed_training_are_still_verified(
    settings: Settings, db: Database, tracker: DeliveryTracker
) -> None:
    job_id = await local_job(settings, db)
    await arrived(settings, db, job_id, WEIGHTS, b"weights")
    await end(db, job_id, "failed")
    await check(tracker)
    row = await delivery(db, job_id)
    assert row.state == "verified" and not (settings.outputs_dir / job_id / "README.md").exists()
    async with db.session() as session:
        assert (await require_job(session, job_id)).status == "failed"


# External S3 -----------------------------------------------------------------------------------------
@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    with moto_server(tmp_path / "moto") as server:
        server.bucket("my-loras")
        yield server


async def s3_job(db: Database, settings: Settings, endpoint: str) -> str:
    async with db.session() as session:
        keys = {
            "access_key": MOTO_KEYS["aws_access_key_id"],
            "secret_key": MOTO_KEYS["aws_secret_access_key"],
        }
        await update_publishing(session, settings, {"s3": keys})
    return await make_job(
        db,
        "s3",
        {"bucket": "my-loras", "region": "us-east-1", "prefix": "loras/job", "endpoint_url": endpoint},
    )


async def test_an_s3_delivery_is_listed_while_running_and_verified_with_sizes(
    settings: Settings, db: Database, tracker: DeliveryTracker, moto: MotoServer
) -> None:
    job_id = await s3_job(db, settings, moto.url)
    s3 = moto.client()
    s3.put_object(Bucket="my-loras", Key="loras/job/cog-run/validation_images/step_50_v.png", Body=b"png")
    async with db.session() as session:
        await apply_status(session, job_id, "running")
        await session.commit()
    await check(tracker)
    row = await delivery(db, job_id)
    assert row.state == "receiving" and row.next_check_at is not None
    s3.put_object(Bucket="my-loras", Key=f"loras/job/{WEIGHTS}", Body=b"weights!")
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert row.state == "verified", row.reason
    async with db.session() as session:
        listed = {
            a.name: (a.kind, a.step, a.size, a.location)
            for a in await ledger.list_artifacts(session, job_id=job_id)
        }
    assert listed == {
        WEIGHTS: ("checkpoint", 100, 8, f"{moto.url}/my-loras/loras/job/{WEIGHTS}"),
        "cog-run/validation_images/step_50_v.png": (
            "validation_image",
            50,
            3,
            f"{moto.url}/my-loras/loras/job/cog-run/validation_images/step_50_v.png",
        ),
    }


async def test_an_empty_s3_prefix_and_an_unreachable_endpoint_are_retried(
    settings: Settings, db: Database, tracker: DeliveryTracker, moto: MotoServer, clock: Clock
) -> None:
    empty = await s3_job(db, settings, moto.url)
    await end(db, empty)
    await check(tracker)
    row = await delivery(db, empty)
    assert (row.state, row.reason_code) == ("failed", "nothing_published") and row.next_check_at is not None
    closed = await s3_job(db, settings, f"http://127.0.0.1:{free_port()}")
    await end(db, closed)
    await check(tracker)
    row = await delivery(db, closed)
    assert (row.state, row.reason_code) == ("failed", "s3_unreachable") and row.next_check_at is not None
    assert row.reason is not None and row.reason.startswith("Listing http://127.0.0.1:")
    clock.ahead = timedelta(seconds=1)  # past the first retry's time
    await check(tracker)
    row = await delivery(db, closed)
    assert row.attempts == 2 and row.next_check_at == clock.now + timedelta(seconds=0.6)  # backoff doubles


# The Hub ---------------------------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RunningSandbox]:
    with standalone_sandbox(tmp_path / "sandbox") as sandbox:
        yield sandbox


def pushed(
    hub: RunningSandbox, repo_id: str, data: bytes, readme: str = "# card\n", run: str = "prediction-1"
) -> None:
    sandbox = hub.app.state.sandbox
    folder = sandbox.outputs_dir / run / "cog-run"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(data)
    (folder / "README.md").write_text(readme)
    files = ["pytorch_lora_weights.safetensors", "README.md"]
    push = {"repo_id": repo_id, "job_id": run, "run": "cog-run", "kind": "final", "step": None}
    sandbox.hub_pushes.append({**push, "files": files})


async def logged(db: Database, job_id: str, text: str) -> None:
    """The trainer's log as the job runner stores it."""
    async with db.session() as session:
        await append_logs(session, job_id, text)
        await session.commit()


async def hub_artifacts(db: Database, job_id: str) -> dict[str, tuple[int, str | None]]:
    async with db.session() as session:
        return {a.name: (a.size, a.sha256) for a in await ledger.list_artifacts(session, job_id=job_id)}


async def download(settings: Settings, db: Database, job_id: str, name: str) -> bytes:
    async with db.session() as session:
        publishing = await load_publishing(session, settings, {"HF_TOKEN": TOKEN})
        found = await open_artifact(session, settings, publishing, job_id, name, "hub")
    assert found.chunks is not None
    return b"".join(found.chunks)


async def test_a_hub_delivery_is_read_back_with_sizes_and_sha256(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    pushed(hub, "ana/lora", b"final weights")
    job_id = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"{hub.url}/hub"})
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert row.state == "verified", row.reason
    async with db.session() as session:
        listed = {
            a.name: (a.kind, a.size, a.sha256) for a in await ledger.list_artifacts(session, job_id=job_id)
        }
    assert listed == {
        "README.md": ("model_card", 7, None),
        "pytorch_lora_weights.safetensors": ("weights", 13, hashlib.sha256(b"final weights").hexdigest()),
    }


async def test_a_missing_repo_and_an_unreachable_hub_are_retried(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    missing = await make_job(db, "hub", {"repo_id": "ana/none", "endpoint": f"{hub.url}/hub"})
    offline = await make_job(db, "hub", {"repo_id": "ana/x", "endpoint": f"http://127.0.0.1:{free_port()}"})
    await end(db, missing)
    await end(db, offline)
    await check(tracker)
    gone, away = await delivery(db, missing), await delivery(db, offline)
    assert (gone.state, gone.reason_code) == ("failed", "hub_repo_missing") and gone.next_check_at is not None
    assert gone.reason == "The Hub has no model repo ana/none that this token can read."
    assert (away.state, away.reason_code) == ("failed", "hub_unreachable") and away.next_check_at is not None
    pushed(hub, "ana/none", b"late weights")  # the Hub caught up
    await retry_delivery(db, missing, "hub")
    await check(tracker)
    assert (await delivery(db, missing)).state == "verified"


async def test_a_check_on_demand_waits_for_the_job_to_end(db: Database) -> None:
    job_id = await make_job(db, "hub", {"repo_id": "ana/x"})
    with pytest.raises(CloudError) as waiting:
        await retry_delivery(db, job_id, "hub")
    assert (waiting.value.code, waiting.value.message) == (
        "delivery_not_retryable",
        "The hub delivery is still pending: it is checked when the job ends.",
    )
    with pytest.raises(CloudError) as unknown:
        await retry_delivery(db, job_id, "s3")
    assert (unknown.value.code, unknown.value.message) == (
        "job_delivery_not_found",
        f"Job {job_id} has no s3 delivery.",
    )


async def test_a_canceled_hub_job_without_a_repo_is_not_retried(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    job_id = await make_job(db, "hub", {"repo_id": "ana/never", "endpoint": f"{hub.url}/hub"})
    await logged(db, job_id, "[CHECKPOINT] Checkpoint saved\n")  # a checkpoint was pushed, or tried
    await end(db, job_id, "canceled")
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "hub_repo_missing", None)
    local = await local_job(settings, db)
    await end(db, local, "canceled")
    await check(tracker)
    assert (await delivery(db, local)).reason == (
        f"The training was canceled before its first validation run, so nothing was published to "
        f"{settings.outputs_dir / local}."
    )


async def test_a_failed_hub_job_that_pushed_nothing_is_not_verified_with_an_earlier_runs_files(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    """The repo outlives its runs: an earlier job's push on `main` made a failed job with no push of
    its own read `verified, 2 files`, and its download fetched the earlier run's weights."""
    pushed(hub, "ana/lora", b"the earlier run's weights")
    earlier = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"{hub.url}/hub"})
    await end(db, earlier)
    failed = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"{hub.url}/hub"})
    await logged(db, failed, "[STAGE] ⏳ Loading base model\n[ERROR] Training failed: RuntimeError: boom\n")
    await end(db, failed, "failed")
    await check(tracker)
    assert (await delivery(db, earlier)).state == "verified"
    row = await delivery(db, failed)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "nothing_published", None)
    assert row.reason == (
        f"The training failed before pushing anything to {hub.url}/hub/ana/lora (its log shows no Hub "
        "upload and no checkpoint). The files there now come from other runs."
    )
    assert await hub_artifacts(db, failed) == {}
    with pytest.raises(CloudError) as refused:
        await download(settings, db, failed, "pytorch_lora_weights.safetensors")
    assert refused.value.code == "artifact_not_found"


async def test_a_failed_hub_job_whose_log_shows_a_checkpoint_is_read_back(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    pushed(hub, "ana/lora", b"checkpoint weights")
    job_id = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"{hub.url}/hub"})
    await logged(db, job_id, "[CHECKPOINT] Checkpoint saved\n[ERROR] Training failed: RuntimeError: boom\n")
    await end(db, job_id, "failed")
    await check(tracker)
    assert (await delivery(db, job_id)).state == "verified"


async def test_a_hub_file_is_not_served_once_a_later_push_replaced_it(
    settings: Settings, db: Database, tracker: DeliveryTracker, hub: RunningSandbox
) -> None:
    """The sandbox's Hub lists no commits, so a delivery reads `main`; a later run's push to the
    same repo made the older job's README download serve the newer run's README."""
    pushed(hub, "ana/lora", b"older weights", readme="# older run\n")
    older = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"{hub.url}/hub"})
    await end(db, older)
    await check(tracker)
    assert (await delivery(db, older)).state == "verified"
    assert await download(settings, db, older, "README.md") == b"# older run\n"
    pushed(hub, "ana/lora", b"newer weights", readme="# newer run\n", run="prediction-2")
    for name in ("README.md", "pytorch_lora_weights.safetensors"):
        with pytest.raises(CloudError) as refused:
            await download(settings, db, older, name)
        assert refused.value.code == "artifact_unavailable"
        assert refused.value.message.startswith(
            f"{name} in ana/lora is no longer the file job {older} delivered: a later push replaced it on "
            "main (recorded "
        )
        assert (
            refused.value.hint
            == f"The repo's history keeps this job's version: {hub.url}/hub/ana/lora/commits/main."
        )


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 (git's object id)


class CommitHub:
    """A Hub that lists commits, as huggingface.co does (the sandbox's few routes do not): each commit
    holds the repo's whole tree, `main` is the newest, and every route answers at any revision."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, datetime, dict[str, bytes]]] = []  # oldest first

    def push(self, at: datetime, files: dict[str, bytes]) -> str:
        commit_id = hashlib.sha1(f"{len(self.commits)}{at}".encode()).hexdigest()  # noqa: S324
        self.commits.append((commit_id, at, files))
        return commit_id

    def at(self, revision: str) -> dict[str, bytes] | None:
        if revision == "main":
            return self.commits[-1][2] if self.commits else None
        return next((files for commit_id, _, files in self.commits if commit_id == revision), None)

    def app(self) -> Starlette:
        async def whoami(request: StarletteRequest) -> JSONResponse:
            return JSONResponse({"name": "ana", "auth": {"accessToken": {"role": "write"}}})

        async def commits(request: StarletteRequest) -> JSONResponse:
            listed = [
                {
                    "id": c,
                    "authors": [{"user": "ana"}],
                    "date": f"{at:%Y-%m-%dT%H:%M:%S.%f}Z",
                    "title": "Upload",
                    "message": "",
                }
                for c, at, _ in reversed(self.commits)
            ]
            return JSONResponse(listed)

        async def tree(request: StarletteRequest) -> JSONResponse:
            files = self.at(request.path_params["revision"])
            if files is None:
                return JSONResponse({"error": "no"}, 404, headers={"X-Error-Code": "RevisionNotFound"})
            entries = []
            for path, data in sorted(files.items()):
                entry: dict[str, Any] = {
                    "type": "file",
                    "oid": git_oid(data),
                    "size": len(data),
                    "path": path,
                }
                if path.endswith(".safetensors"):
                    entry["lfs"] = {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "pointerSize": 134,
                    }
                entries.append(entry)
            return JSONResponse(entries)

        async def resolve(request: StarletteRequest) -> Response:
            files = self.at(request.path_params["revision"]) or {}
            data = files.get(request.path_params["path"])
            return Response(data, 200) if data is not None else JSONResponse({"error": "no"}, 404)

        return Starlette(
            routes=[
                Route("/api/whoami-v2", whoami),
                Route("/api/models/ana/lora/commits/{revision}", commits),
                Route("/api/models/ana/lora/tree/{revision}", tree),
                Route("/ana/lora/resolve/{revision}/{path:path}", resolve),
            ]
        )


@pytest.fixture
def commit_hub() -> Iterator[tuple[CommitHub, str]]:
    hub = CommitHub()
    with live_server(hub.app()) as url:
        yield hub, url


async def test_a_hub_delivery_is_read_at_the_commit_its_job_made_and_served_from_it(
    settings: Settings, db: Database, tracker: DeliveryTracker, commit_hub: tuple[CommitHub, str]
) -> None:
    """Where the Hub lists commits, the job's push is the newest commit made while it ran: its files
    are read (and later served) at that commit, whatever `main` holds by then."""
    hub, url = commit_hub
    now = datetime.now(UTC)
    hub.push(now - timedelta(days=1), {"pytorch_lora_weights.safetensors": b"old", "README.md": b"# old"})
    job_id = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": url})
    ours = hub.push(
        now + timedelta(seconds=1), {"pytorch_lora_weights.safetensors": b"ours", "README.md": b"# ours"}
    )
    await end(db, job_id, at=now + timedelta(seconds=2))
    hub.push(
        now + timedelta(hours=1), {"pytorch_lora_weights.safetensors": b"later", "README.md": b"# later"}
    )
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.target["revision"]) == ("verified", ours), row.reason
    assert await hub_artifacts(db, job_id) == {
        "README.md": (6, None),
        "pytorch_lora_weights.safetensors": (4, hashlib.sha256(b"ours").hexdigest()),
    }
    async with db.session() as session:
        [weights] = [a for a in await ledger.list_artifacts(session, job_id=job_id) if a.kind == "weights"]
    assert weights.location == f"{url}/ana/lora/blob/{ours}/pytorch_lora_weights.safetensors"
    assert await download(settings, db, job_id, "README.md") == b"# ours"
    assert await download(settings, db, job_id, "pytorch_lora_weights.safetensors") == b"ours"


async def test_a_hub_job_with_no_commit_while_it_ran_has_published_nothing(
    settings: Settings, db: Database, tracker: DeliveryTracker, commit_hub: tuple[CommitHub, str]
) -> None:
    """Its log says a checkpoint was saved (and so pushed), but no commit reached the repo: the push
    failed, and the repo's files are another run's."""
    hub, url = commit_hub
    hub.push(datetime.now(UTC) - timedelta(days=1), {"pytorch_lora_weights.safetensors": b"old"})
    job_id = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": url})
    await logged(db, job_id, "[CHECKPOINT] Checkpoint saved\n")
    await end(db, job_id, "failed")
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "nothing_published", None)
    assert row.reason == (
        f"The training failed before pushing anything to {url}/ana/lora (no commit reached {url}/ana/lora "
        "while it ran). The files there now come from other runs."
    )
    assert await hub_artifacts(db, job_id) == {}


@pytest.mark.parametrize("token", ["é", "hf_\nbad", "hf_\x00x", "hf_ x"])
async def test_an_unusable_hub_token_fails_the_check_at_once_with_a_reason(
    settings: Settings, db: Database, clock: Clock, token: str
) -> None:
    """Such a token (here from HF_TOKEN; PUT refuses it) cannot travel in a header: the check said
    so with a traceback every 5 s and the delivery stayed pending."""
    tracker = DeliveryTracker(settings, db, EventBus(), environ=lambda: {"HF_TOKEN": token}, clock=clock)
    job_id = await make_job(db, "hub", {"repo_id": "ana/lora", "endpoint": f"http://127.0.0.1:{free_port()}"})
    await end(db, job_id)
    await check(tracker)
    row = await delivery(db, job_id)
    assert (row.state, row.reason_code, row.next_check_at) == ("failed", "hf_token_invalid_format", None)
    assert "must not contain spaces, line breaks, control or non-ASCII characters" in (row.reason or "")
