"""The few Hugging Face Hub routes `huggingface_hub` needs to check a token and read a model repo
back, served under `/hub` (point `HF_ENDPOINT` at `<sandbox>/hub`), so Hub delivery is tested
offline. The repos hold what the simulated trainer pushed (`sandbox.hub_pushes`) the way the real
trainer lays it out: each push, checkpoint or final, writes `pytorch_lora_weights.safetensors` and
`README.md` at the repo's root (SimpleTuner's `upload_model`), so the last push is what stays.

Tokens: any `hf_` token of at least 30 characters is valid (one containing `read` is a read-only
token); others get the Hub's 401. Every route needs a valid token, even for reading (stricter than
the Hub's public repos)."""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

if TYPE_CHECKING:
    from simpletuner_cloud.sandbox.runtime import Sandbox

router = APIRouter(prefix="/hub")
_TOKEN = re.compile(r"^hf_[A-Za-z0-9]{27,}$")
# Which pushed files the real trainer uploads, and to which path in the repo.
REPO_PATHS = {
    "pytorch_lora_weights.safetensors": "pytorch_lora_weights.safetensors",
    "README.md": "README.md",
}


@dataclass(frozen=True)
class Blob:
    path: Path
    size: int
    sha256: str
    git_oid: str


class SandboxHub:
    """Repos built from the recorded pushes, each file copied (by content) when first seen, so a
    checkpoint folder pruned or a run folder removed by retention later does not change the repo."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.folder = sandbox.data_dir / "hub"
        self.repos: dict[str, dict[str, Blob]] = {}
        self._seen: tuple[int, int] = (0, 0)  # (id of the push list, pushes taken from it)

    def sync(self) -> None:
        pushes: list[dict[str, Any]] = self.sandbox.hub_pushes
        if self._seen[0] != id(pushes):  # the sandbox was reset
            self.repos, self._seen = {}, (id(pushes), 0)
            shutil.rmtree(self.folder, ignore_errors=True)
        for push in pushes[self._seen[1] :]:
            repo = self.repos.setdefault(str(push["repo_id"]), {})
            for name in push.get("files") or []:
                target = REPO_PATHS.get(str(name).rsplit("/", 1)[-1])
                source = self._find(str(push["job_id"]), str(name))
                if target is not None and source is not None:
                    repo[target] = self._keep(source)
        self._seen = (id(pushes), len(pushes))

    def _find(self, job_id: str, name: str) -> Path | None:
        for folder in sorted((self.sandbox.outputs_dir / job_id).glob("*")):
            if (folder / name).is_file():
                return folder / name
        return None

    def _keep(self, source: Path) -> Blob:
        data = source.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 (git's object id)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / sha256
        if not path.exists():
            path.write_bytes(data)
        return Blob(path, len(data), sha256, git_oid)


def hub_of(request: Request) -> SandboxHub:
    state = request.app.state
    hub: SandboxHub | None = getattr(state, "sandbox_hub", None)
    if hub is None:
        hub = state.sandbox_hub = SandboxHub(state.sandbox)
    hub.sync()
    return hub


def _token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and _TOKEN.match(value) else None


def _unauthorized() -> JSONResponse:
    return JSONResponse({"error": "Invalid credentials in Authorization header"}, status_code=401)


def _readable_repo(request: Request, namespace: str, name: str) -> dict[str, Blob] | JSONResponse:
    """The repository's files, or the Hub's answer when the caller has no token (401) or there is no
    such repository (404), in that order, as the Hub checks them."""
    if _token(request) is None:
        return _unauthorized()
    repo_id = f"{namespace}/{name}"
    repo = hub_of(request).repos.get(repo_id)
    return _repo_missing(repo_id) if repo is None else repo


def _repo_missing(repo_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": "Repository not found"},
        status_code=404,
        headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": f"Repository {repo_id} not found"},
    )


@router.get("/api/whoami-v2", response_model=None)
async def whoami(request: Request) -> JSONResponse:
    token = _token(request)
    if token is None:
        return _unauthorized()
    role = "read" if "read" in token.lower() else "write"
    return JSONResponse(
        {
            "type": "user",
            "name": "sandbox-user",
            "fullname": "Sandbox User (simpletuner-cloud sandbox: no real Hub)",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "sandbox", "role": role}},
        }
    )


@router.get("/api/models/{namespace}/{name}/tree/{revision}", response_model=None)
@router.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}", response_model=None)
async def tree(request: Request, namespace: str, name: str, revision: str, path: str = "") -> JSONResponse:
    repo = _readable_repo(request, namespace, name)
    if isinstance(repo, JSONResponse):
        return repo
    if revision != "main":
        return JSONResponse(
            {"error": f"Invalid rev id: {revision}"},
            status_code=404,
            headers={"X-Error-Code": "RevisionNotFound"},
        )
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    entries = []
    for repo_path, blob in sorted(repo.items()):
        if not repo_path.startswith(prefix):
            continue
        entry: dict[str, Any] = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": repo_path}
        if repo_path.endswith(".safetensors"):
            entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
        entries.append(entry)
    return JSONResponse(entries)


@router.get("/{namespace}/{name}/resolve/{revision}/{path:path}", response_model=None)
async def resolve(request: Request, namespace: str, name: str, revision: str, path: str) -> Any:
    repo = _readable_repo(request, namespace, name)
    if isinstance(repo, JSONResponse):
        return repo
    blob = repo.get(path)
    if blob is None or revision != "main":
        return JSONResponse(
            {"error": "Entry not found"}, status_code=404, headers={"X-Error-Code": "EntryNotFound"}
        )
    return FileResponse(
        blob.path, media_type="application/octet-stream", headers={"X-Repo-Commit": "sandbox"}
    )
