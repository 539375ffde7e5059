"""Choose which files of a dataset folder may leave this machine. Only regular files inside the folder
that the trainer can use (media, images that really are images, and captions it reads) are taken; every
other file is reported with a reason. Each taken file keeps its identity (device, inode, size, mtime),
so packaging can refuse a file that was swapped or changed after this selection was shown."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

IMAGE_EXTENSIONS = frozenset(
    {"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "jxl", "avif", "heic"}
)
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "avi", "webm", "mkv", "m4v"})
AUDIO_EXTENSIONS = frozenset({"wav", "mp3", "flac", "ogg", "m4a", "aac", "opus"})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
CAPTION_EXTENSIONS = frozenset({"txt"})

SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules"})
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.crt", "*.cer", "*.der", "*.jks",
    "*.keystore", "*.ppk", "*.gpg", "*.kdbx", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".netrc",
    ".npmrc", ".pypirc", ".htpasswd", "credentials", "credentials.json", "*.tfvars", "*.ovpn",
)  # fmt: skip
_SECRET_NAME = re.compile("|".join(fnmatch.translate(pattern) for pattern in SECRET_PATTERNS))
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "icon\r"})

# Stable reason codes; the API returns them with the text below.
REASONS = {
    "symlink_outside": "symbolic link that leaves the dataset folder",
    "symlink_loop": "broken or looping symbolic link",
    "symlink_folder": "symbolic link to a folder already inside the dataset",
    "symlink_to_skipped": "symbolic link to a file that is itself skipped (hidden, secret, VCS or not media)",
    "hidden": "hidden file or folder",
    "vcs_or_venv": "version-control, virtualenv or cache folder",
    "secret": "looks like a secret (.env, key or certificate)",
    "os_metadata": "operating-system metadata (__MACOSX, ._*, .DS_Store)",
    "not_regular": "not a regular file",
    "unreadable": "cannot be read",
    "bad_name": "file name is not valid UTF-8",
    "not_training_data": "not an image, video, audio or caption file (the trainer would ignore it)",
    "caption_without_media": "text file with no image, video or audio of the same name beside it",
    "caption_not_used": "caption file the trainer does not read (the dataset is captioned by file name)",
    "not_an_image": "its first bytes are not an image of the kind its extension names",
    "hard_link_outside": "hard link to a file that is also linked from outside the dataset folder",
}

# The first bytes of each image kind the selection takes (extension -> accepted signatures).
_ISO_BRANDS = {
    "avif": (b"avif", b"avis"),
    "heic": (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"),
}
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "gif": (b"GIF87a", b"GIF89a"),
    "bmp": (b"BM",),
    "tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "jxl": (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
}
HEADER_BYTES = 64


@dataclass(frozen=True)
class SelectedFile:
    source: Path  # on disk (a link inside the folder: its target)
    arcname: str  # inside the archive, POSIX, relative
    size: int
    mtime_ns: int
    path: str = ""  # relative to the dataset folder, as found
    device: int = 0
    inode: int = 0
    links: int = 1

    @property
    def extension(self) -> str:
        return PurePosixPath(self.arcname).suffix.lower().lstrip(".")

    @property
    def is_media(self) -> bool:
        return self.extension in MEDIA_EXTENSIONS


@dataclass(frozen=True)
class SkippedFile:
    path: str  # relative to the dataset folder
    reason: str  # a key of REASONS

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


@dataclass
class Selection:
    dataset_id: str
    folder: Path
    files: list[SelectedFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    prefix: str = ""  # the archive folder of this dataset ("" = the archive root)
    hard_linked: list[str] = field(default_factory=list)  # taken: every link is inside the folder

    @property
    def media_count(self) -> int:
        return sum(1 for item in self.files if item.is_media)

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)


SKIPPED_SHOWN = 50  # an answer names this many skipped files; the rest are counted by reason


def skipped_summary(skipped: list[SkippedFile], limit: int = SKIPPED_SHOWN) -> dict[str, Any]:
    """The first `limit` skipped files (path and reason), how many there are, and how many per reason:
    a preview of `/etc` must not list every file name under it."""
    reasons: dict[str, int] = {}
    for item in skipped:
        reasons[item.reason] = reasons.get(item.reason, 0) + 1
    return {
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped[:limit]],
        "skipped_count": len(skipped),
        "skipped_reasons": dict(sorted(reasons.items())),
    }


def classify_name(name: str, is_dir: bool) -> str | None:
    """The rule a name alone breaks, most specific first, or None."""
    lower = name.lower()
    if lower == "__macosx" or name.startswith("._") or lower in SYSTEM_FILES:
        return "os_metadata"
    if is_dir:
        if lower in SKIPPED_FOLDERS:
            return "vcs_or_venv"
        return "hidden" if name.startswith(".") else None
    if _SECRET_NAME.match(lower):
        return "secret"
    if name.startswith("."):
        return "hidden"
    return None


def select_files(folder: Path, dataset_id: str, prefix: str = "", *, captions: bool = True) -> Selection:
    """Walk `folder` (already known to exist). `prefix` puts the files under a sub-folder of the archive.
    `captions=False` (a set captioned by file name) leaves the `.txt` files home: the trainer never
    reads them."""
    root = folder.resolve()
    selection = Selection(dataset_id=dataset_id, folder=root, prefix=prefix)
    _walk(root, root, PurePosixPath(prefix) if prefix else None, selection, captions)
    _check_hard_links(selection)
    selection.files.sort(key=lambda item: item.arcname.encode("utf-8"))
    selection.skipped.sort(key=lambda item: item.path)
    selection.hard_linked.sort()
    return selection


def _check_hard_links(selection: Selection) -> None:
    """A file with several hard links is taken only when the walk met every one of them inside the
    folder; one linked from outside (`ln ~/.ssh/id_rsa photo.jpg`) could carry anything out."""
    seen: dict[tuple[int, int], int] = {}
    links: dict[tuple[int, int], int] = {}
    for item in selection.files:
        if item.links > 1 and item.source == selection.folder / item.path:  # found as itself, not a link
            key = (item.device, item.inode)
            seen[key] = seen.get(key, 0) + 1
            links[key] = item.links
    outside = {key for key, count in seen.items() if count < links[key]}
    kept = []
    for item in selection.files:
        if (item.device, item.inode) in outside:
            selection.skipped.append(SkippedFile(item.path, "hard_link_outside"))
        else:
            if item.links > 1:
                selection.hard_linked.append(item.path)
            kept.append(item)
    selection.files = kept


def _walk(
    root: Path, current: Path, prefix: PurePosixPath | None, selection: Selection, captions: bool
) -> None:
    try:
        entries = sorted(os.scandir(current), key=lambda e: e.name)
    except OSError:
        selection.skipped.append(SkippedFile(_relative(root, current), "unreadable"))
        return
    checked: list[tuple[os.DirEntry[str], str, str | None, os.stat_result | None]] = []
    for entry in entries:
        relative = entry.name if current == root else f"{_relative(root, current)}/{entry.name}"
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            selection.skipped.append(
                SkippedFile(os.fsencode(relative).decode("utf-8", "replace"), "bad_name")
            )
            continue
        reason, info = _check_entry(root, entry, Path(entry.path))
        if reason == "descend":
            _walk(root, Path(entry.path), prefix, selection, captions)
            continue
        checked.append((entry, relative, reason, info))
    # A .txt is only a caption next to a sample of the same stem that is itself taken; any other text
    # file stays home (private notes hide there).
    media_stems = {
        _stem(entry.name)
        for entry, _, reason, _ in checked
        if reason is None and _extension(entry.name) in MEDIA_EXTENSIONS
    }
    for entry, relative, reason, info in checked:
        if reason is None and _extension(entry.name) in CAPTION_EXTENSIONS:
            if _stem(entry.name) not in media_stems:
                reason = "caption_without_media"
            elif not captions:
                reason = "caption_not_used"
        if reason is not None or info is None:
            selection.skipped.append(
                SkippedFile(relative + ("/" if _is_dir(entry) else ""), reason or "unreadable")
            )
            continue
        arcname = f"{prefix}/{relative}" if prefix else relative
        # a link inside the folder is packaged from its target (opened later without following links)
        source = Path(entry.path).resolve() if entry.is_symlink() else Path(entry.path)
        selection.files.append(
            SelectedFile(
                source, arcname, info.st_size, info.st_mtime_ns, relative, info.st_dev, info.st_ino,
                info.st_nlink,
            )
        )  # fmt: skip


def _check_entry(root: Path, entry: os.DirEntry[str], path: Path) -> tuple[str | None, os.stat_result | None]:
    """(None, stat) to take the file, ("descend", None) for a folder to walk, else (reason code, None)."""
    is_dir = _is_dir(entry)
    reason = classify_name(entry.name, is_dir)
    if reason is not None:
        return reason, None
    if entry.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return "symlink_loop", None
        if not target.is_relative_to(root):
            return "symlink_outside", None
        if target.is_dir():
            return "symlink_folder", None  # its files are walked through the real folder
        if _target_is_skipped(root, target):
            return "symlink_to_skipped", None  # `photo.jpg -> .env` must not carry the secret out
    try:
        info = entry.stat()
    except OSError:
        return "unreadable", None
    if stat.S_ISDIR(info.st_mode):
        # a virtualenv under any name (`env/`, `.tox/py311/`) holds sample images of installed packages
        return ("vcs_or_venv", None) if (path / "pyvenv.cfg").is_file() else ("descend", None)
    if not stat.S_ISREG(info.st_mode):
        return "not_regular", None
    extension = _extension(entry.name)
    if extension not in MEDIA_EXTENSIONS and extension not in CAPTION_EXTENSIONS:
        return "not_training_data", None
    if not os.access(entry.path, os.R_OK):
        return "unreadable", None
    if extension in IMAGE_EXTENSIONS:
        try:
            with open(path, "rb") as handle:
                header = handle.read(HEADER_BYTES)
        except OSError:
            return "unreadable", None
        if not looks_like(extension, header):
            return "not_an_image", None
    return None, info


def looks_like(extension: str, header: bytes) -> bool:
    """Whether a file's first bytes are an image of the kind `extension` names."""
    if extension == "webp":
        return header[:4] == b"RIFF" and header[8:12] == b"WEBP"
    if extension in _ISO_BRANDS:  # ISO media: a `ftyp` box whose brands name the kind
        if header[4:8] != b"ftyp":
            return False
        box = header[8 : min(len(header), int.from_bytes(header[:4], "big"))]
        brands = [box[i : i + 4] for i in range(0, len(box), 4) if i != 4]  # skip the minor version
        return any(brand in _ISO_BRANDS[extension] for brand in brands)
    return header.startswith(_SIGNATURES.get(extension, (b"",)))


def _target_is_skipped(root: Path, target: Path) -> bool:
    """The link's target, judged by the same name rules as if it had been found by the walk."""
    parts = target.relative_to(root).parts
    if any(classify_name(part, is_dir=True) for part in parts[:-1]):
        return True
    name = parts[-1]
    allowed = MEDIA_EXTENSIONS | CAPTION_EXTENSIONS
    return classify_name(name, is_dir=False) is not None or _extension(name) not in allowed


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else "."
