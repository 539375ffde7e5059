"""Choose which files of a dataset folder may leave this machine. Only regular files inside the folder
that the trainer can use (media and captions) are taken; every other file is reported with a reason."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

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
}


@dataclass(frozen=True)
class SelectedFile:
    source: Path  # on disk
    arcname: str  # inside the archive, POSIX, relative
    size: int
    mtime_ns: int

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

    @property
    def media_count(self) -> int:
        return sum(1 for item in self.files if item.is_media)

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)


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


def select_files(folder: Path, dataset_id: str, prefix: str = "") -> Selection:
    """Walk `folder` (already known to exist). `prefix` puts the files under a sub-folder of the archive."""
    root = folder.resolve()
    selection = Selection(dataset_id=dataset_id, folder=root)
    _walk(root, root, PurePosixPath(prefix) if prefix else None, selection)
    selection.files.sort(key=lambda item: item.arcname.encode("utf-8"))
    selection.skipped.sort(key=lambda item: item.path)
    return selection


def _walk(root: Path, current: Path, prefix: PurePosixPath | None, selection: Selection) -> None:
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
            _walk(root, Path(entry.path), prefix, selection)
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
            reason = None if _stem(entry.name) in media_stems else "caption_without_media"
        if reason is not None or info is None:
            selection.skipped.append(
                SkippedFile(relative + ("/" if _is_dir(entry) else ""), reason or "unreadable")
            )
            continue
        arcname = f"{prefix}/{relative}" if prefix else relative
        selection.files.append(SelectedFile(Path(entry.path), arcname, info.st_size, info.st_mtime_ns))


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
    return None, info


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
