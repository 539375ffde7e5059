"""The Hugging Face Hub through `huggingface_hub`, at the endpoint the publishing settings name
(`HF_ENDPOINT`; the sandbox's Hub routes in sandbox mode): check a token (whoami), list a model repo's
commits, read its files back at a revision (sizes and LFS sha256) and stream one file for a download.
Blocking: run in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx
from pydantic import BaseModel

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.replicate.factory import header_safe

CheckStatus = Literal["valid", "invalid", "unreachable", "missing"]
TIMEOUT = 15.0
# Hub tokens are 37 characters (`hf_` + 34); a longer value is a paste gone wrong, sent with every call.
MAX_TOKEN_LENGTH = 256
TOKEN_FORMAT_HINT = (
    "Copy the whole token (it starts with hf_) from https://huggingface.co/settings/tokens, without "  # noqa: S105
    "spaces or line breaks, and save it again (or fix HF_TOKEN)."
)


class HubCheckView(BaseModel):
    status: CheckStatus
    ok: bool
    user: str | None
    can_write: bool | None
    endpoint: str
    message: str
    hint: str


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    sha256: str | None  # LFS files only; small files are plain git blobs
    blob_id: str


@dataclass(frozen=True)
class HubCommit:
    commit_id: str
    created_at: datetime
    title: str


class HubUnavailable(Exception):
    """The Hub did not answer (network, DNS, 5xx): retry later."""


def token_format_problem(token: str) -> str | None:
    """Why this cannot be a Hub token, before it is sent: it travels in an Authorization header, which
    carries printable ASCII only (`é` or a line break failed every later check with a traceback)."""
    if len(token) > MAX_TOKEN_LENGTH:
        return (
            f"The Hugging Face token is {len(token)} characters long; at most {MAX_TOKEN_LENGTH} are "
            "accepted."
        )
    if not header_safe(token):
        return "The Hugging Face token must not contain spaces, line breaks, control or non-ASCII characters."
    return None


def token_format_error(problem: str) -> CloudError:
    return CloudError(
        problem,
        code="hf_token_invalid_format",
        hint=TOKEN_FORMAT_HINT,
        details={"fields": [{"field": "hub.token", "message": problem}]},
    )


def _api(endpoint: str, token: str | None) -> object:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token or False)


def check_token(endpoint: str, token: str | None) -> HubCheckView:
    from huggingface_hub.errors import HfHubHTTPError

    def view(status: CheckStatus, message: str, hint: str = "", **known: object) -> HubCheckView:
        return HubCheckView(
            status=status,
            ok=status == "valid",
            user=known.get("user"),  # type: ignore[arg-type]
            can_write=known.get("can_write"),  # type: ignore[arg-type]
            endpoint=endpoint,
            message=message,
            hint=hint,
        )

    if not token:
        return view(
            "missing",
            "No Hugging Face token: HF_TOKEN is not set and none is saved.",
            'Export it (export HF_TOKEN="hf_...") and restart the server, or save one in Publishing.',
        )
    problem = token_format_problem(token)
    if problem is not None:
        return view("invalid", problem, TOKEN_FORMAT_HINT)
    try:
        info = _api(endpoint, token).whoami(token=token)  # type: ignore[attr-defined]
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return view(
                "invalid",
                "Hugging Face refused the token (401 Invalid user token).",
                "Create a token with write access at https://huggingface.co/settings/tokens.",
            )
        return view(
            "unreachable",
            f"Hugging Face answered HTTP {status}; the token could not be checked.",
            "Try again later; the token is kept and used by the next jobs.",
        )
    except Exception as exc:  # connection refused, DNS, TLS, offline mode: all mean "not reachable now"
        return view(
            "unreachable",
            f"Hugging Face could not be reached at {endpoint} ({type(exc).__name__}); the token was not "
            "checked.",
            "This machine seems offline or behind a proxy. The token is kept; it is checked again when "
            "the Hub is reachable, and the trainer (on Replicate) reaches the Hub on its own.",
        )
    role = str(((info.get("auth") or {}).get("accessToken") or {}).get("role") or "")
    # Fine-grained tokens carry per-repo rights: whether this one may push depends on the repo.
    can_write: bool | None = None
    if role in ("write", "admin"):
        can_write = True
    elif role and role != "fineGrained":
        can_write = False
    user = str(info.get("name") or "") or None
    if can_write is False:
        return view(
            "valid",
            f"The token belongs to {user}, but it is a {role} token: the trainer cannot push with it.",
            "Create a token with write access at https://huggingface.co/settings/tokens.",
            user=user,
            can_write=False,
        )
    return view("valid", f"The token belongs to {user}.", user=user, can_write=can_write)


def _probe(endpoint: str, token: str | None) -> None:
    try:  # one plain request first: huggingface_hub retries a dead endpoint for ~15 s, our task retries later
        httpx.get(f"{endpoint.rstrip('/')}/api/whoami-v2", headers=_bearer(token), timeout=TIMEOUT)
    except httpx.TransportError as exc:
        raise HubUnavailable(f"{type(exc).__name__}: {exc}") from exc


def repo_commits(endpoint: str, token: str | None, repo_id: str) -> list[HubCommit] | None:
    """The commits of the repo's `main`, newest first, or None when this Hub does not list commits
    (a mirror, the sandbox's few routes: a plain 404). Raises like `repo_files`."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    _probe(endpoint, token)
    try:
        commits = _api(endpoint, token).list_repo_commits(repo_id)  # type: ignore[attr-defined]
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise _repo_missing(repo_id) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 405, 501):
            return None
        raise _hub_refused(repo_id, status) from exc
    except Exception as exc:
        raise HubUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return [HubCommit(str(c.commit_id), c.created_at, str(c.title or "")) for c in commits]


def _repo_missing(repo_id: str) -> CloudError:
    return CloudError(
        f"The Hub has no model repo {repo_id} that this token can read.",
        code="hub_repo_missing",
        hint="Check hub_model_id, and that this token may read the repo (a private repo needs "
        "its owner's token).",
    )


def _hub_refused(repo_id: str, status: int | None) -> Exception:
    if status in (401, 403):
        return CloudError(
            f"Hugging Face refused the token while reading {repo_id} (HTTP {status}).",
            code="hf_token_invalid",
            hint="Save a valid token in Publishing (or fix HF_TOKEN).",
        )
    return HubUnavailable(f"HTTP {status}")


def repo_files(endpoint: str, token: str | None, repo_id: str, revision: str = "main") -> list[HubFile]:
    """Every file of the model repo at `revision` (a commit id pins one push). Raises `CloudError`
    (`hub_repo_missing`, `hf_token_invalid`) for what retrying cannot fix and `HubUnavailable` for
    what it may."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    _probe(endpoint, token)
    api = _api(endpoint, token)
    try:
        entries = list(api.list_repo_tree(repo_id, recursive=True, revision=revision))  # type: ignore[attr-defined]
    except RepositoryNotFoundError as exc:
        raise _repo_missing(repo_id) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise _hub_refused(repo_id, status) from exc
    except Exception as exc:
        raise HubUnavailable(f"{type(exc).__name__}: {exc}") from exc
    files = []
    for entry in entries:
        if getattr(entry, "size", None) is None or not hasattr(entry, "blob_id"):
            continue  # a folder
        lfs = getattr(entry, "lfs", None)
        files.append(
            HubFile(
                path=str(entry.path),
                size=int(entry.size),
                sha256=str(lfs.sha256) if lfs is not None else None,
                blob_id=str(entry.blob_id),
            )
        )
    return files


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def web_url(endpoint: str, repo_id: str, path: str | None = None, revision: str = "main") -> str:
    base = f"{endpoint.rstrip('/')}/{repo_id}"
    return f"{base}/blob/{revision}/{path}" if path else base


def stream_file(
    endpoint: str, token: str | None, repo_id: str, path: str, revision: str = "main"
) -> Iterator[bytes]:
    """The file's bytes from `<endpoint>/<repo>/resolve/<revision>/<path>` (redirects followed)."""
    url = f"{endpoint.rstrip('/')}/{repo_id}/resolve/{revision}/{path}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with (
        httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code >= 400:
            raise CloudError(
                f"The Hub answered HTTP {response.status_code} for {path} in {repo_id}.",
                code="artifact_unavailable",
                hint="The file may have been removed from the repo, or the token cannot read it.",
            )
        yield from response.iter_bytes(1024 * 1024)
