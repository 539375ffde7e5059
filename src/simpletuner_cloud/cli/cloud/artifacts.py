"""`simpletuner cloud jobs artifacts ID` and `download ID [--to DIR]`: a job's deliveries and files
over the artifacts API, and every file (caches left out unless asked) fetched into a folder, each
written to a temporary name, checked against its sha256 when one is known, then renamed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import Any

import typer

from simpletuner_cloud.cli.api_client import ServerClient, api_path
from simpletuner_cloud.cli.cloud.job_watch import JOB_NOT_FOUND_HINT
from simpletuner_cloud.cli.output import console, fail, json_option, print_json, print_mapping, print_table

JOBS = "/api/cloud/jobs"
NOT_FOUND = {"job_not_found": JOB_NOT_FOUND_HINT, "not_found": JOB_NOT_FOUND_HINT}


def _size(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def _answer(ctx: typer.Context, job_id: str, caches: bool) -> Any:
    client = ServerClient((ctx.obj or {}).get("url"))
    params = {"caches": "true"} if caches else None
    return client, client.request("GET", api_path(JOBS, job_id, "artifacts"), params=params, hints=NOT_FOUND)


def artifacts(
    ctx: typer.Context,
    job_id: str = typer.Argument(...),
    caches: bool = typer.Option(False, "--caches", help="Also list the trainer's cache files."),
    as_json: bool = json_option(),
) -> None:
    """Where the job's trained model went: each delivery's state, its files, samples by step."""
    _, answer = _answer(ctx, job_id, caches)
    if as_json:
        print_json(answer)
        return
    console.print(answer["message"], highlight=False, markup=False, soft_wrap=True)
    for delivery in answer["deliveries"]:
        fields = {
            "state": delivery["state"],
            "where": ", ".join(f"{k}: {v}" for k, v in delivery["target"].items()),
            "files": f"{delivery['files']} ({_size(delivery['bytes'])})",
            "verified": delivery["verified_at"],
        }
        if delivery["reason"]:
            fields["reason"] = f"[{delivery['reason']['code']}] {delivery['reason']['message']}"
            fields["hint"] = delivery["reason"]["hint"]
        if delivery["next_check_at"]:
            fields["next check"] = delivery["next_check_at"]
        print_mapping(f"Delivery: {delivery['destination']}", {k: v for k, v in fields.items() if v})
    print_table(
        "Files",
        ["destination", "kind", "step", "size", "name", "sha256"],
        (
            [a["destination"], a["kind"], a["step"], _size(a["size"]), a["name"], (a["sha256"] or "")[:12]]
            for a in answer["artifacts"]
        ),
    )
    if answer["validation_samples"]:
        print_table(
            "Validation samples by step",
            ["step", "images"],
            ([g["step"], ", ".join(i["name"] for i in g["images"])] for g in answer["validation_samples"]),
        )
    if answer["caches"]["files"] and not caches:
        console.print(
            f"Also {answer['caches']['files']} cache files ({_size(answer['caches']['bytes'])}); "
            "--caches lists them.",
            highlight=False,
        )
    retention = answer["retention"]
    if retention["ends_at"] and not retention["passed"]:
        minutes = max(1, (retention["seconds_left"] or 0) // 60)
        console.print(f"Replicate keeps the prediction's data for {minutes} more min.", highlight=False)


def _target(folder: Path, name: str) -> Path:
    parts = PurePosixPath(name).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or name.startswith("/") or "\\" in name:
        fail(f"The server named a file {name!r} that would leave {folder}.", code="artifact_name_unsafe")
    return folder.joinpath(*parts)


def _fetch(client: ServerClient, artifact: dict[str, Any], target: Path) -> str:
    """Download into `target` (via a temporary file beside it); returns what was done."""
    if artifact["sha256"] and target.is_file():
        if hashlib.sha256(target.read_bytes()).hexdigest() == artifact["sha256"]:
            return "already here"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    with client.stream("GET", artifact["download_url"]) as response:
        if response.status_code != 200:
            response.read()
            ServerClient._decode(response)  # fails with the server's message and hint
        with partial.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
                digest.update(chunk)
    if artifact["sha256"] and digest.hexdigest() != artifact["sha256"]:
        partial.unlink(missing_ok=True)
        fail(
            f"{artifact['name']} arrived with another sha256 than the delivery recorded.",
            hint="Download it again; if it keeps differing, the file changed where it is stored.",
            code="artifact_checksum_mismatch",
        )
    os.replace(partial, target)
    return "downloaded"


def download(
    ctx: typer.Context,
    job_id: str = typer.Argument(...),
    to: Path | None = typer.Option(None, "--to", help="Folder to download into (default: ./<job id>)."),
    caches: bool = typer.Option(False, "--caches", help="Also download the trainer's cache files."),
) -> None:
    """Fetch the job's delivered files (weights, validation images, model card) into a folder."""
    client, answer = _answer(ctx, job_id, caches)
    folder = (to or Path(job_id)).expanduser()
    chosen: dict[str, dict[str, Any]] = {}
    for artifact in answer["artifacts"]:  # a name held by several deliveries: the first one listed
        chosen.setdefault(artifact["name"], artifact)
    if not chosen:
        fail(f"Job {job_id} has no delivered files yet.", hint=answer["message"], code="artifact_not_found")
    rows = []
    for name, artifact in sorted(chosen.items()):
        outcome = _fetch(client, artifact, _target(folder, name))
        rows.append([artifact["destination"], _size(artifact["size"]), name, outcome])
    print_table(f"Job {job_id} -> {folder}", ["from", "size", "file", "result"], rows)


def register(app: typer.Typer) -> None:
    app.command("artifacts")(artifacts)
    app.command("download")(download)
