"""What the app's lifespan does around the requests: clean up after a crash, drain on shutdown."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.services.provider_runtime import ProviderRuntime
from simpletuner_cloud.services.provider_settings import ReplicateSettings
from simpletuner_cloud.services.upload_tasks import UploadTasks
from simpletuner_cloud.services.uploads import uploads_dir
from simpletuner_cloud.settings import load_settings


async def test_start_removes_archives_left_by_a_crash() -> None:
    settings = load_settings()
    leftover = uploads_dir(settings) / "dsu_crashed.zip.partial"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half an archive")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))  # written by a server that has since died
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert not leftover.exists()
        assert isinstance(app.state.upload_tasks, UploadTasks)


async def test_shutdown_stops_running_uploads() -> None:
    app = create_app(load_settings(shutdown_drain_seconds=0.01))
    async with app.router.lifespan_context(app):
        tasks: UploadTasks = app.state.upload_tasks
        task = tasks.create("env", archive_bytes=10, files=1)
        tasks.run(task, asyncio.sleep(3600))
    assert task.state == "failed"
    assert task.error is not None and task.error["code"] == "server_stopping"


async def test_start_makes_an_older_installations_state_private(state_root: Path) -> None:
    """Folders an older version left 0755 and a database left 0644 (its WAL once held a proxy password
    in clear text) are owner-only once the server has started, and the files it makes are too."""
    cloud = state_root / "cloud"
    (cloud / "uploads").mkdir(parents=True)
    for folder in (state_root, cloud, cloud / "uploads"):
        folder.chmod(0o755)
    for name in ("jobs.db-wal", "admin_token"):
        (cloud / name).write_bytes(b"")
        (cloud / name).chmod(0o644)
    app = create_app(load_settings())
    async with app.router.lifespan_context(app):
        found = {
            str(p.relative_to(state_root)): stat.S_IMODE(p.stat().st_mode) for p in state_root.rglob("*")
        }
    assert found | {".": stat.S_IMODE(state_root.stat().st_mode)} == {
        ".": 0o700,
        "cloud": 0o700,
        "cloud/uploads": 0o700,
        "cloud/admin_token": 0o600,
        "cloud/jobs.db": 0o600,
        "cloud/jobs.db-shm": 0o600,
        "cloud/jobs.db-wal": 0o600,
        "cloud_outputs": 0o700,
    }


async def test_shutdown_closes_the_pooled_provider_clients() -> None:
    settings = load_settings(sandbox=True)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: ProviderRuntime = app.state.provider_runtime
        async with runtime.client(settings, ReplicateSettings()) as saved:
            pass
        async with runtime.client(settings, ReplicateSettings(http_timeout=5.0)) as quick:
            pass
        assert not saved.http.is_closed and not quick.http.is_closed
    assert saved.http.is_closed and quick.http.is_closed
    assert runtime.pool.clients() == []
