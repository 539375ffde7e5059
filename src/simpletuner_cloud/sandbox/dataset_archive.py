"""Staging of the `images` input like the real trainer: detect zip, then tar (any compression), by
content; refuse unsafe member names; count samples by extension; caption each sample by its file stem
with `_` read as spaces (trainer-contract §2.2: the generated entry uses `caption_strategy: filename`)."""

from __future__ import annotations

import io
import posixpath
import tarfile
import zipfile

SAMPLE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".gif",
        ".tiff",
        ".tif",
        ".jxl",
        ".avif",
        ".mp4",
        ".mov",
        ".webm",
        ".mkv",
        ".wav",
        ".mp3",
        ".flac",
        ".ogg",
    }
)


class ArchiveRejected(Exception):
    """The text is what the trainer prints and what becomes the prediction's `error`."""


def _safe(name: str) -> bool:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return False
    normal = posixpath.normpath(name.replace("\\", "/"))
    return normal != ".." and not normal.startswith("../")


def _names(data: bytes) -> tuple[str, list[str]]:
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "zip", [info.filename for info in archive.infolist() if not info.is_dir()]
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            return "tar", [member.name for member in archive.getmembers() if not member.isdir()]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveRejected("Unsupported dataset archive format. Use .zip or .tar.") from exc


def count_samples(data: bytes) -> int:
    """The number of image/video/audio files, or `ArchiveRejected` with the trainer's message."""
    return len(sample_captions(data))


def sample_captions(data: bytes) -> dict[str, str]:
    """Each sample's member name and the caption the trainer gives it (the stem, `_` as spaces; folders
    play no part), or `ArchiveRejected` with the trainer's message."""
    kind, names = _names(data)
    for name in names:
        if not _safe(name):
            raise ArchiveRejected(f"Unsafe {kind} path detected: {name}")
    samples = {
        name: posixpath.splitext(posixpath.basename(name))[0].replace("_", " ")
        for name in names
        if posixpath.splitext(name.lower())[1] in SAMPLE_EXTENSIONS
    }
    if not samples:
        raise ArchiveRejected("No images were discovered in the dataset archive.")
    return samples
