"""The deterministic dataset zip: sorted entries, fixed 1980-01-01 timestamps, media stored, text deflated.
Its exact size is known before building (`plan_archive`); `build_archive` streams it with bounded memory.
Every file is opened without following links and must still be the one the selection saw (device, inode,
size, mtime) before and after it is read; anything else fails the package with `dataset_changed`."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from simpletuner_cloud.datasets.selection import SelectedFile
from simpletuner_cloud.datasets.zipformat import (
    DEFLATED,
    STORED,
    central_header,
    central_header_size,
    end_records,
    end_records_size,
    local_header,
    local_header_size,
)
from simpletuner_cloud.errors import CloudError

DEFLATED_EXTENSIONS = frozenset({"txt", "json", "jsonl", "csv", "md", "caption"})
# Deflate cannot win much on a one-line caption, and skipping it spares preflight a read per caption.
DEFLATE_MIN_SIZE = 1024
WHOLE_READ_LIMIT = 8 * 1024 * 1024  # files up to this size are read once; larger ones are read twice
BATCH_BYTES = 4 * 1024 * 1024  # worker threads read this much per task: a few files, not one
CHUNK = 1024 * 1024
Progress = Callable[[int, int], None]

# (path, device, inode, size, mtime_ns) -> (crc32, deflated size); preflight fills it, the build
# re-checks it.
_deflate_cache: dict[tuple[str, int, int, int, int], tuple[int, int]] = {}


@dataclass(frozen=True)
class ArchiveEntry:
    file: SelectedFile
    method: int
    compressed_size: int
    crc: int | None  # known in advance only for deflated entries


@dataclass
class ArchiveLayout:
    entries: list[ArchiveEntry]
    size: int


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


@dataclass
class ArchiveResult:
    sha256: str
    size: int
    manifest: list[ManifestEntry] = field(default_factory=list)


def plan_archive(files: Iterable[SelectedFile]) -> ArchiveLayout:
    """Order, method and exact size of every entry. Text files are compressed here to learn their size."""
    entries = []
    for item in sorted(files, key=lambda f: f.arcname.encode("utf-8")):
        if item.extension in DEFLATED_EXTENSIONS and item.size >= DEFLATE_MIN_SIZE:
            crc, deflated = _deflated_size(item)
            if deflated < item.size:
                entries.append(ArchiveEntry(item, DEFLATED, deflated, crc))
                continue
        entries.append(ArchiveEntry(item, STORED, item.size, None))
    return ArchiveLayout(entries, _total_size(entries))


def exact_archive_size(files: Iterable[SelectedFile]) -> int:
    return plan_archive(files).size


def _total_size(entries: list[ArchiveEntry]) -> int:
    offset = 0
    central = 0
    for entry in entries:
        name = entry.file.arcname.encode("utf-8")
        central += central_header_size(name, entry.file.size, entry.compressed_size, offset)
        offset += local_header_size(name, entry.file.size, entry.compressed_size) + entry.compressed_size
    return offset + central + end_records_size(len(entries), central, offset)


def _deflated_size(item: SelectedFile) -> tuple[int, int]:
    key = (str(item.source), item.device, item.inode, item.size, item.mtime_ns)
    if key not in _deflate_cache:
        crc, size, _ = _deflate(item, None)
        if len(_deflate_cache) > 100_000:
            _deflate_cache.clear()
        _deflate_cache[key] = (crc, size)
    return _deflate_cache[key]


def _deflate(item: SelectedFile, sink: Callable[[bytes], None] | None) -> tuple[int, int, str]:
    """Compress a file in chunks; returns (crc32, compressed size, sha256) and feeds `sink`."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    crc, size, digest = 0, 0, hashlib.sha256()
    with _open(item) as handle:
        while chunk := handle.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            digest.update(chunk)
            out = compressor.compress(chunk)
            size += len(out)
            if sink and out:
                sink(out)
        _check_unchanged(handle, item)
    out = compressor.flush()
    size += len(out)
    if sink:
        sink(out)
    return crc, size, digest.hexdigest()


def build_archive(
    layout: ArchiveLayout, out: Path | BinaryIO, progress: Progress | None = None
) -> ArchiveResult:
    """Write the archive to a path (atomically) or a binary file object. Blocking: run it in a thread."""
    if isinstance(out, Path):
        temporary = out.with_name(f".{out.name}.partial")
        try:
            with _create_private(temporary) as handle:  # 0600: it holds the user's images
                result = _write(layout, handle, progress)
            os.replace(temporary, out)
        finally:
            temporary.unlink(missing_ok=True)
        return result
    return _write(layout, out, progress)


def _write(layout: ArchiveLayout, out: BinaryIO, progress: Progress | None) -> ArchiveResult:
    writer = _HashingWriter(out, layout.size, progress)
    central: list[bytes] = []
    manifest = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="archive-read") as pool:
        for entry, prepared in _read_ahead(layout.entries, pool):
            item, offset = entry.file, writer.written
            name = item.arcname.encode("utf-8")
            if prepared is not None:
                data, crc, sha = prepared
                writer.write(local_header(name, STORED, crc, item.size, item.size))
                writer.write(data)
            elif entry.method == DEFLATED:
                assert entry.crc is not None
                writer.write(local_header(name, DEFLATED, entry.crc, item.size, entry.compressed_size))
                crc, size, sha = _deflate(item, writer.write)
                if (crc, size) != (entry.crc, entry.compressed_size):
                    raise _changed(item, "its content changed since the preview")
            else:
                crc, sha = _large_file_sums(item)
                writer.write(local_header(name, STORED, crc, item.size, item.size))
                _copy_large_file(item, crc, writer)
            central.append(central_header(name, entry.method, crc, item.size, entry.compressed_size, offset))
            manifest.append(ManifestEntry(item.arcname, item.size, sha))
    central_offset = writer.written
    for header in central:
        writer.write(header)
    writer.write(end_records(len(central), writer.written - central_offset, central_offset))
    if writer.written != layout.size:  # preflight promised this size; never upload anything else
        raise CloudError(
            f"The archive came out at {writer.written} bytes instead of {layout.size}.",
            code="dataset_changed",
            hint="Files changed while packaging; run it again.",
        )
    writer.report(final=True)
    return ArchiveResult(writer.digest.hexdigest(), writer.written, manifest)


def _read_ahead(
    entries: list[ArchiveEntry], pool: ThreadPoolExecutor
) -> Iterator[tuple[ArchiveEntry, tuple[bytes, int, str] | None]]:
    """Read and checksum small stored files in batches on worker threads while the caller writes earlier
    ones (hashlib and zlib release the GIL). At most two batches of ~BATCH_BYTES are in flight."""
    batches: deque[tuple[list[ArchiveEntry], Future[list[tuple[bytes, int, str]]] | None]] = deque()
    for batch, small in _batches(entries):
        batches.append((batch, pool.submit(_read_batch, batch) if small else None))
        if len(batches) > 2:
            yield from _drain(*batches.popleft())
    while batches:
        yield from _drain(*batches.popleft())


def _batches(entries: list[ArchiveEntry]) -> Iterator[tuple[list[ArchiveEntry], bool]]:
    batch: list[ArchiveEntry] = []
    size = 0
    for entry in entries:
        if entry.method == STORED and entry.file.size <= WHOLE_READ_LIMIT:
            batch.append(entry)
            size += entry.file.size
            if size >= BATCH_BYTES:
                yield batch, True
                batch, size = [], 0
        else:
            if batch:
                yield batch, True
                batch, size = [], 0
            yield [entry], False
    if batch:
        yield batch, True


def _drain(
    batch: list[ArchiveEntry], future: Future[list[tuple[bytes, int, str]]] | None
) -> Iterator[tuple[ArchiveEntry, tuple[bytes, int, str] | None]]:
    if future is None:
        yield from ((entry, None) for entry in batch)
    else:
        yield from zip(batch, future.result(), strict=True)


def _read_batch(batch: list[ArchiveEntry]) -> list[tuple[bytes, int, str]]:
    results = []
    for entry in batch:
        with _open(entry.file) as handle:
            data = handle.read(entry.file.size + 1)
            _check_unchanged(handle, entry.file)
        if len(data) != entry.file.size:
            raise _changed(entry.file, "its size changed")
        results.append((data, zlib.crc32(data), hashlib.sha256(data).hexdigest()))
    return results


def _large_file_sums(item: SelectedFile) -> tuple[int, str]:
    crc, digest, size = 0, hashlib.sha256(), 0
    with _open(item) as handle:
        while chunk := handle.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            digest.update(chunk)
            size += len(chunk)
        _check_unchanged(handle, item)
    if size != item.size:
        raise _changed(item, "its size changed")
    return crc, digest.hexdigest()


def _copy_large_file(item: SelectedFile, crc: int, writer: _HashingWriter) -> None:
    check, size = 0, 0
    with _open(item) as handle:
        while chunk := handle.read(CHUNK):
            check = zlib.crc32(chunk, check)
            size += len(chunk)
            writer.write(chunk)
        _check_unchanged(handle, item)
    if (check, size) != (crc, item.size):
        raise _changed(item, "its content changed while it was read")


class _HashingWriter:
    """Writes through, hashes what it wrote, and reports progress at most every megabyte."""

    def __init__(self, out: BinaryIO, total: int, progress: Progress | None) -> None:
        self.out, self.total, self.progress = out, total, progress
        self.digest = hashlib.sha256()
        self.written = 0
        self._reported = 0

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.digest.update(data)
        self.written += len(data)
        if self.progress and self.written - self._reported >= CHUNK:
            self.report()

    def report(self, final: bool = False) -> None:
        if self.progress and (final or self.written != self._reported):
            self._reported = self.written
            self.progress(self.written, self.total)


def _create_private(path: Path) -> BinaryIO:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o600), "wb", buffering=CHUNK)


def _open(item: SelectedFile) -> BinaryIO:
    """The selected file itself: opened without following a link, and refused unless it is still the
    regular file the selection saw (same device and inode, size and mtime)."""
    try:
        # O_NONBLOCK: a FIFO swapped in must not hang the open (no effect on regular files)
        fd = os.open(item.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _changed(item, "it was replaced by a symbolic link") from None
        if exc.errno == errno.ENOENT:
            raise _changed(item, "it was deleted or moved") from None
        raise _changed(item, (exc.strerror or "it cannot be opened").lower()) from None
    handle = os.fdopen(fd, "rb", buffering=0)
    try:
        _check_unchanged(handle, item)
    except BaseException:
        handle.close()
        raise
    return handle


def _check_unchanged(handle: BinaryIO, item: SelectedFile) -> None:
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise _changed(item, "it is no longer a regular file")
    if item.inode and (info.st_dev, info.st_ino) != (item.device, item.inode):
        raise _changed(item, "it was replaced by another file")
    if info.st_size != item.size:
        raise _changed(item, f"its size changed from {item.size:,} to {info.st_size:,} bytes")
    if info.st_mtime_ns != item.mtime_ns:
        raise _changed(item, "it was modified")


def _changed(item: SelectedFile, why: str | None = None) -> CloudError:
    return CloudError(
        f"{item.source} changed after it was selected{f': {why}' if why else ''}; the archive would not be "
        "what the preview showed, so nothing was packaged.",
        code="dataset_changed",
        hint="Leave the dataset folder untouched while packaging, then run it again (preview first if "
        "you changed it on purpose).",
    )


def manifest_as_json(result: ArchiveResult) -> list[dict[str, object]]:
    return [{"path": m.path, "size": m.size, "sha256": m.sha256} for m in result.manifest]
