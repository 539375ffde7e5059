"""Checking a delivery where it landed, once its job has ended: local files hashed again and compared
with what arrived, the user's S3 prefix listed with sizes, the Hub repo's files read back. Each check
answers `Landed` (the files, verified or not) or `Problem` (what is wrong, what to do, and whether
checking again later can help). Nothing here writes to the ledger; the delivery task does.

A Hub repo outlives its runs and several jobs may push to it, so what its `main` holds proves nothing
about one job: a Hub delivery is verified only with evidence of this job's own push (its log or its
success, and a commit made while it ran when the Hub lists commits), and read at that commit."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import anyio

from simpletuner_cloud.domain.artifacts import classify, is_weights_file
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services import hugging_face
from simpletuner_cloud.services.external_s3 import S3Target, explain, list_objects
from simpletuner_cloud.services.publishing import Publishing
from simpletuner_cloud.services.storage_access import KEY_GRACE
from simpletuner_cloud.settings import Settings
from simpletuner_cloud.storage.objects import ObjectStore
from simpletuner_cloud.store.tables import DeliveryArtifactRow, DeliveryRow, JobRow


@dataclass
class Landed:
    artifacts: list[dict[str, Any]] | None  # None: the rows already recorded (local) stand
    summary: str
    revision: str | None = None  # the Hub commit that holds this job's files, when the Hub names it


@dataclass
class Problem:
    code: str
    message: str
    hint: str
    retry: bool  # checking again later may help
    final_state: Literal["failed", "expired"] = "failed"
    artifacts: list[dict[str, Any]] | None = None  # what is there all the same (S3, Hub)


Outcome = Landed | Problem


@dataclass
class CheckContext:
    settings: Settings
    publishing: Publishing
    now: datetime
    rows: list[DeliveryArtifactRow] = field(default_factory=list)  # what was recorded so far
    log: str = ""  # the job's stored log (read for a Hub check only)


def _ended(job: JobRow) -> datetime:
    return job.completed_at or job.updated_at


def _weights(artifacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in artifacts if a["kind"] in ("weights", "checkpoint") and is_weights_file(a["name"])]


def _summary(artifacts: list[dict[str, Any]], where: str) -> str:
    weights = _weights(artifacts)
    steps = [a["step"] for a in weights if a.get("step") is not None]
    samples = sum(1 for a in artifacts if a["kind"] == "validation_image")
    size = sum(int(a["size"]) for a in artifacts)
    latest = f", latest checkpoint at step {max(steps)}" if steps else ""
    final = ", final weights" if any(a["kind"] == "weights" for a in weights) else ""
    return (
        f"{len(artifacts)} files ({size:,} bytes) in {where}: {len(weights)} weight files{final}{latest}, "
        f"{samples} validation images."
    )


def _nothing(job: JobRow, where: str) -> str:
    if job.status == "succeeded":
        return f"The training succeeded, but no file reached {where}."
    ended = "was canceled" if job.status == "canceled" else job.status
    return f"The training {ended} before its first validation run, so nothing was published to {where}."


# Local download -------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _changed_files(folder: Path, rows: list[DeliveryArtifactRow]) -> list[str]:
    """Each recorded file that is no longer where and as it arrived (same size and sha256)."""
    problems = []
    for row in rows:
        path = Path(row.location)
        if not path.is_relative_to(folder):
            problems.append(f"{row.name} (outside the job's folder)")
        elif not path.is_file() or path.is_symlink():
            problems.append(f"{row.name} (missing)")
        elif path.stat().st_size != row.size or _sha256(path) != row.sha256:
            problems.append(f"{row.name} (changed)")
    return problems


async def check_local(context: CheckContext, delivery: DeliveryRow, job: JobRow) -> Outcome:
    folder = context.settings.outputs_dir / job.id
    rows = context.rows
    grace_left = _ended(job) + KEY_GRACE > context.now
    if not rows:
        if job.status != "succeeded":
            return Problem(
                "nothing_published",
                _nothing(job, str(folder)),
                "The job's logs (kept here) say how far it got.",
                retry=False,
            )
        return Problem(
            "nothing_arrived",
            _nothing(job, str(folder)) + " The trainer uploads after each validation run, through the "
            "public URL.",
            "Check that the public URL reaches this server from the internet (POST "
            "/api/cloud/providers/replicate/test-webhook tests it) and that the tunnel stayed up; the "
            "weights were lost with Replicate's machine.",
            retry=grace_left,
            final_state="failed" if grace_left else "expired",
        )
    problems = await anyio.to_thread.run_sync(_changed_files, folder, rows)
    if problems:
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        return Problem(
            "files_changed",
            f"{len(problems)} of {len(rows)} delivered files are no longer as they arrived: {shown}.",
            f"They were changed or removed in {folder} after they arrived. Restore them from a backup, or "
            "train again.",
            retry=False,
        )
    artifacts = [{"name": r.name, "kind": r.kind, "step": r.step, "size": r.size} for r in rows]
    if job.status == "succeeded" and not _weights(artifacts):
        return Problem(
            "weights_missing",
            f"{len(rows)} files arrived in {folder}, but no weights (.safetensors) among them.",
            "The trainer publishes the whole output folder after each validation run; check its logs "
            "for upload errors.",
            retry=grace_left,
        )
    return Landed(None, _summary(artifacts, str(folder)))


def write_model_card(settings: Settings, job: JobRow, rows: list[DeliveryArtifactRow]) -> Any:
    """`cloud_outputs/<job>/README.md`: what this folder is, where its files came from, and their
    sha256, written atomically like an upload. Returns the stored object."""
    store = ObjectStore(settings.outputs_dir)
    weights = [r for r in rows if r.kind in ("weights", "checkpoint") and is_weights_file(r.name)]
    latest = max(weights, key=lambda r: r.step or 0, default=None)
    lines = [
        f"# {job.config_name}: trained on Replicate ({job.id})",
        "",
        "Delivered by simpletuner-cloud (local download). The trainer uploaded these files to this server "
        "after its validation runs; each was checked against its sha256 when it arrived.",
        "",
        f"- Job: {job.id} (prediction {job.prediction_id or 'unknown'}), status {job.status}",
        f"- Trainer: {job.model}" + (f":{job.version}" if job.version else ""),
        f"- Hardware: {job.hardware}",
    ]
    if latest is not None:
        lines.append(f"- Weights: `{latest.name}`" + (f" (step {latest.step})" if latest.step else ""))
    lines += ["", "| File | Bytes | sha256 |", "|---|---:|---|"]
    for row in rows:
        if row.kind != "cache":
            lines.append(f"| `{row.name}` | {row.size:,} | `{row.sha256}` |")
    caches = [r for r in rows if r.kind == "cache"]
    if caches:
        lines += ["", f"Also {len(caches)} cache files (latents, text embeddings) the trainer re-sends."]
    data = ("\n".join(lines) + "\n").encode()
    incoming = store.begin()
    try:
        incoming.write(data)
        return store.commit(incoming, f"{job.id}/README.md")
    except BaseException:
        incoming.discard()
        raise


# External S3 ----------------------------------------------------------------------------------------
async def check_s3(context: CheckContext, delivery: DeliveryRow, job: JobRow) -> Outcome:
    target_info = delivery.target
    publishing = context.publishing
    target = S3Target(
        bucket=str(target_info["bucket"]),
        region=str(target_info.get("region") or "us-east-1"),
        prefix=str(target_info["prefix"]),
        access_key=publishing.s3_access_key,
        secret_key=publishing.s3_secret_key,
        endpoint_url=target_info.get("endpoint_url"),
        public_base_url=target_info.get("public_base_url"),
    )
    where = target.object_url(target.prefix + "/")
    if not target.access_key or not target.secret_key:
        return Problem(
            "s3_keys_missing",
            f"The S3 keys are no longer saved, so {where} cannot be listed.",
            "Save the bucket's keys in Publishing, then retry the check.",
            retry=False,
        )
    try:
        listed = await anyio.to_thread.run_sync(list_objects, target, target.prefix + "/")
    except Exception as exc:  # boto3 raises many types; explain() names each
        message, hint = explain(exc, target)
        reachable = "Could not reach" not in message and "TLS" not in message
        return Problem(
            "s3_refused" if reachable else "s3_unreachable",
            f"Listing {where} failed: {message}",
            hint + " Then retry the check.",
            retry=not reachable,
        )
    artifacts = []
    for item in listed:
        name = item.key[len(target.prefix) + 1 :]
        kind, step = classify(name)
        artifacts.append(
            {
                "name": name,
                "kind": kind,
                "step": step,
                "size": item.size,
                "etag": item.etag[:80] or None,
                "sha256": None,
                "location": target.object_url(item.key),
            }
        )
    return _landed_remotely(artifacts, job, where, retry_empty=job.status == "succeeded")


def _landed_remotely(
    artifacts: list[dict[str, Any]], job: JobRow, where: str, *, retry_empty: bool
) -> Outcome:
    if not artifacts:
        return Problem(
            "nothing_published",
            _nothing(job, where),
            "The trainer publishes after each validation run; its logs name any upload error.",
            retry=retry_empty,
        )
    weights = _weights(artifacts)
    if not weights or any(int(w["size"]) == 0 for w in weights):
        return Problem(
            "weights_missing",
            f"{len(artifacts)} files are in {where}, but no complete weights (.safetensors) among them.",
            "Check the trainer's logs for upload errors; the weights may still be arriving.",
            retry=job.status == "succeeded",
            artifacts=artifacts,
        )
    return Landed(artifacts, _summary(artifacts, where))


# The Hugging Face Hub -------------------------------------------------------------------------------
# What the trainer prints when it pushes (trainer-contract 1.3): the final upload's status lines, and
# each saved checkpoint, pushed too since `hub_model_id` forces `push_checkpoints_to_hub` (2.3).
HUB_PUSH_LINES = re.compile(
    r"^\[TRAINING\] Status: (uploading_model|model_available|uploading_validation_samples)\b"
    r"|^\[CHECKPOINT\] ",
    re.MULTILINE,
)
# Clocks differ (Replicate's, the Hub's); a push ends before the prediction does.
COMMIT_SLACK = timedelta(minutes=5)


def pushed_to_hub(job: JobRow, log: str) -> bool:
    """Whether this job says it pushed: it succeeded (the final push comes before the end) or its log
    shows a push."""
    return job.status == "succeeded" or HUB_PUSH_LINES.search(log) is not None


def job_commit(job: JobRow, commits: list[hugging_face.HubCommit]) -> hugging_face.HubCommit | None:
    """The newest commit made while the job ran: the revision holding its last push."""
    begun = job.started_at or job.submitted_at or job.created_at
    ended = _ended(job) + COMMIT_SLACK
    during = [c for c in commits if begun <= _like(c.created_at, begun) <= ended]
    return max(during, key=lambda c: c.created_at, default=None)


def _like(moment: datetime, other: datetime) -> datetime:
    """The Hub's (aware) timestamp comparable with the database's (naive on SQLite, meaning UTC)."""
    if other.tzinfo is None and moment.tzinfo is not None:
        return moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta(0))
    return moment


def _not_pushed(job: JobRow, where: str, detail: str) -> Problem:
    """No push of this job reached the repo: whatever is there belongs to other runs, so nothing is
    recorded for this job (`artifacts=[]` clears an earlier, wrong listing)."""
    succeeded = job.status == "succeeded"
    ended = "was canceled" if job.status == "canceled" else job.status
    message = (
        f"The training succeeded, but {detail}."
        if succeeded
        else f"The training {ended} before pushing anything to {where} ({detail})."
    )
    return Problem(
        "nothing_published",
        message + " The files there now come from other runs.",
        "The job's logs (kept here) say how far it got and name any upload error.",
        retry=succeeded,
        artifacts=[],
    )


async def check_hub(context: CheckContext, delivery: DeliveryRow, job: JobRow) -> Outcome:
    repo_id = str(delivery.target["repo_id"])
    endpoint = str(delivery.target.get("endpoint") or context.publishing.hub_endpoint)
    where = hugging_face.web_url(endpoint, repo_id)
    token = context.publishing.hf_token
    succeeded = job.status == "succeeded"
    if not pushed_to_hub(job, context.log):
        return _not_pushed(job, where, "its log shows no Hub upload and no checkpoint")
    if not token:
        return Problem(
            "hf_token_missing",
            f"No Hugging Face token is set, so {where} cannot be read back.",
            'Export HF_TOKEN="hf_..." (or save a token in Publishing), then retry the check.',
            retry=False,
        )
    unusable = hugging_face.token_format_problem(token)
    if unusable is not None:  # e.g. HF_TOKEN with a line break: no request can carry it, now or later
        return Problem(
            "hf_token_invalid_format",
            f"{unusable} {where} cannot be read back with it.",
            hugging_face.TOKEN_FORMAT_HINT,
            retry=False,
        )
    revision: str | None = None
    try:
        commits = await anyio.to_thread.run_sync(hugging_face.repo_commits, endpoint, token, repo_id)
        if commits is not None:  # the Hub says when each push landed: one made while the job ran
            commit = job_commit(job, commits)
            if commit is None:
                return _not_pushed(job, where, f"no commit reached {where} while it ran")
            revision = commit.commit_id
        files = await anyio.to_thread.run_sync(
            hugging_face.repo_files, endpoint, token, repo_id, revision or "main"
        )
    except hugging_face.HubUnavailable as exc:
        return Problem(
            "hub_unreachable",
            f"The Hub could not be read at {endpoint} ({exc}).",
            "It is checked again later; the trainer pushes to the Hub on its own.",
            retry=True,
        )
    except CloudError as exc:
        # A repo not there yet after a success may still appear; after a failure it will not.
        return Problem(exc.code, exc.message, exc.hint, retry=exc.code == "hub_repo_missing" and succeeded)
    artifacts = []
    for item in files:
        kind, step = classify(item.path)
        artifacts.append(
            {
                "name": item.path,
                "kind": kind,
                "step": step,
                "size": item.size,
                "sha256": item.sha256,
                "etag": item.blob_id[:80],
                "location": hugging_face.web_url(endpoint, repo_id, item.path, revision or "main"),
            }
        )
    outcome = _landed_remotely(artifacts, job, where, retry_empty=succeeded)
    if isinstance(outcome, Landed):
        outcome.revision = revision
    return outcome


CHECKS = {"local": check_local, "s3": check_s3, "hub": check_hub}
RETENTION = timedelta(hours=1)  # Replicate removes an API prediction's data an hour after it ends
