"""`simpletuner cloud data ...`: `preview` asks the server what a job would upload; `package` writes,
locally and without a server, exactly the archive a job would upload, so it can be inspected; `upload`
has the server package and upload it, following its byte progress (Server-Sent Events) with a bar."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

from simpletuner_cloud.cli.api_client import ServerClient
from simpletuner_cloud.cli.output import console, fail, json_option, print_json, print_table
from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.datasets import manifest_document, package_dataset
from simpletuner_cloud.settings import load_settings

app = typer.Typer(help="See, package and upload the training data a job would use.", no_args_is_help=True)


def _reference(value: str) -> str:
    """A path that exists here is sent absolute (the server's working dir is not ours), unless an
    environment of that name exists: the server prefers environments too."""
    path = Path(value).expanduser()
    environment = load_settings().effective_configs_dir / value / "config.json"
    return str(path.resolve()) if path.exists() and not environment.is_file() else value


def _not_empty(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter(
            "the config is empty: give an environment name, or a folder / config.json path."
        )
    return value


def config_argument() -> Any:
    """The CONFIG argument of every command that reads one. An empty one is refused: as a path it
    would be the current folder."""
    return typer.Argument(..., help="Environment name, or a folder / config.json path.", callback=_not_empty)


def consent_hint(config: str) -> str:
    """The hint for `consent_required`, in the words of a command given `config` (the server's names
    the preview without its argument and the API's `consent` field)."""
    return (
        f"Review what would be sent with `simpletuner cloud data preview {shlex.quote(config)}`, then run "
        "the command again with `--consent`."
    )


MERGE_HELP = (
    "Agree to merge several local datasets (same resolution) into one set, losing per-set repeats, size "
    "filters, crops and caption strategy differences. Without it they are refused."
)
RENAME_HELP = (
    "Agree to name each image of a textfile-captioned dataset after its caption inside the archive (the "
    "trainer captions uploads by file name; the files on disk keep their names). Without it, captions "
    "that differ from the file names are refused."
)


@app.command("preview")
def preview(
    ctx: typer.Context,
    config: str = config_argument(),
    as_json: bool = json_option(),
    merge: bool = typer.Option(False, "--merge", help=MERGE_HELP),
    rename: bool = typer.Option(False, "--rename-to-captions", help=RENAME_HELP),
    files: bool = typer.Option(False, "--files", help="Also list every archive entry and its source file."),
) -> None:
    """List the datasets, the files that would be uploaded or skipped (with reasons), the captions that
    change, and the archive size."""
    url = (ctx.obj or {}).get("url")
    body = {"config": _reference(config), "merge_local_datasets": merge, "rename_to_captions": rename}
    result = ServerClient(url).post("/api/cloud/data-consent/preview", body)
    if as_json:
        print_json(result)
        return
    show_preview(result, files)


def show_preview(result: dict[str, Any], files: bool = False) -> None:
    print_table(
        f"Datasets of {result.get('config') or 'the config'} ({result['mode']} mode)",
        ["dataset", "action", "files", "images", "bytes", "why"],
        ([d["id"], d["action"], d.get("files"), d.get("images"), _size(d.get("bytes")), d["reason"]]
         for d in result["datasets"]),
    )  # fmt: skip
    skipped = [
        (d["id"], s["path"], s["explanation"]) for d in result["datasets"] for s in d.get("skipped", [])
    ]
    if skipped:
        print_table("Skipped files (never uploaded)", ["dataset", "file", "reason"], skipped)
    for dataset in result["datasets"]:
        unlisted = (dataset.get("skipped_count") or 0) - len(dataset.get("skipped", []))
        if unlisted > 0:
            reasons = ", ".join(f"{n} {reason}" for reason, n in dataset["skipped_reasons"].items())
            console.print(
                escape(f"`{dataset['id']}`: {unlisted} more skipped files not listed ({reasons} in all)."),
                soft_wrap=True,
            )
    renamed = [
        (
            c["path"],
            c["archive_name"],
            c["trainer_caption"],
            "; ".join(x["explanation"] for x in c["changes"]),
        )
        for d in result["datasets"]
        for c in d.get("caption_changes", [])
    ]
    if renamed:
        print_table("Captions that change", ["file", "archive name", "the trainer reads", "why"], renamed)
    if files:
        print_table(
            "Archive contents",
            ["dataset", "file", "archive name"],
            (
                (d["id"], f["path"], f["archive_name"])
                for d in result["datasets"]
                for f in d.get("archive_files", [])
            ),
        )
    for warning in result.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if not result["needs_upload"]:
        console.print("Nothing is uploaded: the trainer reads these datasets itself.")
        return
    console.print(
        f"Archive: {result['archive_bytes']:,} bytes ({_size(result['archive_bytes'])}); "
        f"upload limit {result['limit_bytes']:,} bytes ({_size(result['limit_bytes'])})."
    )
    error = result.get("error")
    if error:
        fail(error["message"], error.get("hint", ""), error.get("code", ""))


@app.command("package")
def package(
    config: str = config_argument(),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the zip."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Also write the manifest (JSON) here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    merge: bool = typer.Option(False, "--merge", help=MERGE_HELP),
    rename: bool = typer.Option(False, "--rename-to-captions", help=RENAME_HELP),
) -> None:
    """Write exactly the archive a job would upload (deterministic: same files, same sha256)."""
    named = Path(config)
    name = (named.parent if named.name == "config.json" else named).resolve().name or "data"
    _writable_file(out, "-o", f"{name}.zip")
    if manifest is not None:
        _writable_file(manifest, "--manifest", "manifest.json")
    try:
        with _progress(quiet) as bar:
            task = bar.add_task("packaging", total=None)
            preflight, result = package_dataset(
                load_settings(),
                config,
                out,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                merge_local=merge,
                rename_to_captions=rename,
            )
    except CloudError as exc:
        fail(exc.message, exc.hint, exc.code)
    except OSError as exc:  # a disk that filled up, a folder that went away meanwhile
        fail(f"Could not write {out}: {exc.strerror or exc}.", code="output_unwritable")
    for warning in preflight.plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if manifest is not None:
        manifest.write_text(json.dumps(manifest_document(result), indent=2) + "\n")
    console.print(
        f"Wrote {out} ({result.size:,} bytes, {len(result.manifest)} files), sha256 {result.sha256}"
    )


def _writable_file(path: Path, option: str, name: str) -> None:
    """Refuse, before any work, an output path that names a folder or lies in a folder that does not
    exist (the archive is written beside it first, then renamed)."""
    if path.expanduser().is_dir():
        fail(
            f"{path} is a folder; {option} names the file to write.",
            hint=f"Give a file name in it, e.g. {option} {shlex.quote(str(path / name))}",
            code="output_is_folder",
        )
    folder = path.expanduser().absolute().parent
    if not folder.is_dir():
        fail(
            f"There is no folder {folder} to write {path.name} in.",
            hint=f"Create it first (`mkdir -p {shlex.quote(str(folder))}`), or choose another path.",
            code="output_folder_missing",
        )


@app.command("upload")
def upload(
    ctx: typer.Context,
    config: str = config_argument(),
    consent: bool = typer.Option(
        False, "--consent", help="Agree to send the images to Replicate (needed when data consent is `ask`)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = json_option("Print the final state as JSON."),
    merge: bool = typer.Option(False, "--merge", help=MERGE_HELP),
    rename: bool = typer.Option(False, "--rename-to-captions", help=RENAME_HELP),
) -> None:
    """Package the dataset and upload it to Replicate through the server (a live upload of the same
    archive is reused). The server checks data consent and the trainer version first."""
    client = ServerClient((ctx.obj or {}).get("url"))
    body = {
        "config": _reference(config),
        "consent": consent,
        "merge_local_datasets": merge,
        "rename_to_captions": rename,
    }
    started = client.post("/api/cloud/data/uploads", body, hints={"consent_required": consent_hint(config)})
    for warning in started.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    final = started
    with _progress(quiet or as_json) as bar:
        tasks = {
            phase: bar.add_task(phase, total=started["archive_bytes"]) for phase in ("packaging", "uploading")
        }
        for state in _follow(client, started["events_url"]):
            final = state
            phase = state["state"] if state["state"] in tasks else "uploading"
            if phase == "uploading":
                bar.update(tasks["packaging"], completed=state["archive_bytes"])
            bar.update(tasks[phase], completed=state["bytes_done"], total=state["bytes_total"])
    if final["state"] not in ("succeeded", "failed"):
        fail("The server stopped reporting before the upload finished.", code="upload_interrupted")
    if as_json:  # the final state, its error included: one JSON document, exit 1 if it failed
        print_json(final)
        if final["state"] == "failed":
            raise typer.Exit(code=1)
        return
    if final["state"] == "failed":
        error = final["error"] or {}
        fail(error.get("message", "The upload failed."), error.get("hint", ""), error.get("code", ""))
    show_upload(final["result"])


def show_upload(result: dict[str, Any]) -> None:
    action = "Reused the live upload of this archive (nothing sent)" if result["reused"] else "Uploaded"
    console.print(
        f"{action}: {result['size']:,} bytes, {result['files']} files, sha256 {result['sha256']}\n"
        f"file {result['file_id']} ({result['url']}), expires {result['expires_at'] or 'unknown'}; "
        f"reused: {str(result['reused']).lower()}",
        soft_wrap=True,  # a digest or URL broken over lines cannot be copied
        highlight=False,
    )


def _follow(client: ServerClient, events_url: str) -> Iterator[dict[str, Any]]:
    """The upload's states from its Server-Sent Events, until `succeeded` or `failed`."""
    with client.stream("GET", events_url, headers={"Accept": "text/event-stream"}) as response:
        if not response.is_success:
            response.read()
            ServerClient._decode(response)  # fails with the server's error message
        event, data = "message", []
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                if event in ("progress", "succeeded", "failed"):
                    yield json.loads("\n".join(data))
                if event in ("succeeded", "failed"):
                    return
                event, data = "message", []


def _progress(quiet: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )


def _size(value: int | None) -> str:
    if value is None:
        return ""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"
