"""Textfile captions the published trainer can read: with the user's agreement (`rename_to_captions`),
each image is named in the archive after its own caption, because the trainer captions an uploaded image
by its file stem with `_` read as a space (trainer-contract §2.2, §2.7). Nothing on disk is renamed.

The archive is flat per dataset (the trainer ignores sub-folders). A name cannot hold everything a
caption can, so: the first non-empty line is used; `/`, `\\`, NUL and
other control characters become spaces; whitespace runs become one space; leading dots (a hidden file)
are dropped; a name over 255 UTF-8 bytes (extension included) is cut at a word boundary. Two images with
the same caption go into separate sub-folders (`same-caption-2/`, ...), since a suffix would become part
of the caption. Every caption that comes out different is reported."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Literal

from simpletuner_cloud.datasets.selection import SelectedFile, Selection
from simpletuner_cloud.errors import CloudError

NAME_LIMIT = 255  # bytes in one file name on the trainer's Linux file systems
CAPTION_READ_LIMIT = 64 * 1024  # a caption is one line; never read a huge "caption" file whole
SAME_CAPTION_FOLDER = "same-caption-{}"

Change = Literal["first_line", "replaced", "spaces", "underscore", "cut"]
CHANGES: dict[Change, str] = {
    "first_line": "the caption file has several lines; only the first is used",
    "replaced": "characters that cannot be in a file name (/, \\, control characters) became spaces",
    "spaces": "runs of spaces were made single and leading dots dropped",
    "underscore": "`_` in the caption reads as a space (the trainer turns every `_` of a name into one)",
    "cut": f"the name would pass {NAME_LIMIT} bytes, so the caption was cut at a word boundary",
}
_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class CaptionChange:
    path: str  # the image, relative to its dataset folder
    archive_name: str
    caption: str  # the first line of its caption file, as written
    trainer_caption: str  # what the trainer derives from the archive name
    changes: tuple[Change, ...]


def trainer_caption(name: str) -> str:
    """The caption the trainer derives from a file name: its stem, `_` as spaces."""
    return PurePosixPath(name).stem.replace("_", " ")


def caption_stem(caption: str, extension: str) -> tuple[str, list[Change]]:
    """The file stem that carries `caption` (one line) for a file with `extension`; '' if nothing is left."""
    changes: list[Change] = []
    text = _UNSAFE.sub(" ", caption)
    if text != caption:
        changes.append("replaced")
    tidy = " ".join(text.split()).lstrip(".").strip()
    if re.search(r"\s\s", caption) or caption.lstrip().startswith("."):
        changes.append("spaces")
    if "_" in tidy:
        changes.append("underscore")
    budget = NAME_LIMIT - len(f".{extension}".encode())
    if len(tidy.replace(" ", "_").encode()) > budget:
        tidy = _cut(tidy, budget)
        changes.append("cut")
    return tidy.replace(" ", "_"), changes


def _cut(text: str, budget: int) -> str:
    """The longest run of whole words within `budget` bytes; a first word too long is cut by characters."""
    kept = ""
    for word in text.split(" "):
        candidate = f"{kept} {word}" if kept else word
        if len(candidate.encode()) > budget:
            break
        kept = candidate
    if kept:
        return kept
    return text.encode()[:budget].decode("utf-8", "ignore")  # never half a character


def first_line(text: str) -> tuple[str, bool]:
    """The first non-empty line (BOM and surrounding whitespace removed), and whether more lines follow."""
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    filled = [line for line in lines if line]
    return (filled[0] if filled else ""), len(filled) > 1


def read_caption(item: SelectedFile) -> str:
    with open(item.source, "rb") as handle:
        return handle.read(CAPTION_READ_LIMIT).decode("utf-8", "replace")


def name_after_captions(selection: Selection) -> list[CaptionChange]:
    """Give each sample of a `textfile` set the archive name its caption implies, its caption file the
    same stem beside it, and a `same-caption-N/` sub-folder when the name is taken. Refuses
    (`dataset_unsupported`) samples without a caption file or with an empty one. Returns the captions
    that changed; `selection.files` is replaced."""
    captions = {_stem(item.arcname): item for item in selection.files if item.extension == "txt"}
    prefix = PurePosixPath(selection.prefix) if selection.prefix else None
    taken: dict[str, set[str]] = {}
    files: list[SelectedFile] = []
    changes: list[CaptionChange] = []
    uncaptioned: list[str] = []
    for item in sorted(_media(selection.files), key=lambda f: f.arcname.encode("utf-8")):
        caption_file = captions.get(_stem(item.arcname))
        line, more = first_line(read_caption(caption_file)) if caption_file else ("", False)
        extension = PurePosixPath(item.arcname).suffix.lstrip(".")
        stem, notes = caption_stem(line, extension)
        if caption_file is None or not stem:
            uncaptioned.append(f"{item.path} ({'no .txt' if caption_file is None else 'empty caption'})")
            continue
        if more:
            notes.insert(0, "first_line")
        folder = _free_folder(prefix, stem, taken)
        name = f"{folder}/{stem}" if folder else stem
        files.append(replace(item, arcname=f"{name}.{extension}" if extension else name))
        files.append(replace(caption_file, arcname=f"{name}.txt"))
        derived = trainer_caption(files[-2].arcname)
        if notes or derived != line:
            changes.append(CaptionChange(item.path, files[-2].arcname, line, derived, tuple(notes)))
    if uncaptioned:
        raise _uncaptioned(selection.dataset_id, uncaptioned)
    selection.files = sorted(files, key=lambda f: f.arcname.encode("utf-8"))
    return changes


def _free_folder(prefix: PurePosixPath | None, stem: str, taken: dict[str, set[str]]) -> str:
    """The archive folder where `stem` is still free: the dataset's own, else `same-caption-2`, ..."""
    number = 1
    while True:
        sub = SAME_CAPTION_FOLDER.format(number) if number > 1 else None
        parts = [str(p) for p in (prefix, sub) if p]
        folder = "/".join(parts)
        if stem not in taken.setdefault(folder, set()):
            taken[folder].add(stem)
            return folder
        number += 1


def _media(files: Iterable[SelectedFile]) -> list[SelectedFile]:
    return [item for item in files if item.is_media]


def _stem(arcname: str) -> str:
    return arcname.rsplit(".", 1)[0]


def _uncaptioned(dataset_id: str, files: list[str]) -> CloudError:
    shown = ", ".join(files[:20]) + (f" and {len(files) - 20} more" if len(files) > 20 else "")
    return CloudError(
        f"Dataset `{dataset_id}` uses textfile captions, and these images have no caption to be named "
        f"after: {shown}.",
        code="dataset_unsupported",
        hint="Give each image a `.txt` beside it with its caption on the first line, or remove the image.",
        details={"uncaptioned_files": files},
    )
