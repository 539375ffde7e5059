"""Builders for real config folders and dataset files on disk, shared by the datasets and trainer tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LIMIT = 104_857_600  # Replicate's upload limit, as the issue states it
JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
# The first bytes of each image kind (the selection skips an image whose bytes do not match its name).
IMAGE_STARTS = {
    "jpg": JPEG_START,
    "jpeg": JPEG_START,
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "gif": b"GIF89a",
    "bmp": b"BM",
    "tif": b"II*\x00",
    "tiff": b"MM\x00*",
    "jxl": b"\xff\x0a",
    "avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
}

BASE_OPTIONS: dict[str, Any] = {
    "model_family": "flux",
    "model_type": "lora",
    "max_train_steps": 100,
    "resolution": 1024,
    "resolution_type": "pixel_area",
    "output_dir": "output/test",
}


def image_bytes(size: int = 2000, seed: int = 0, extension: str = "jpg") -> bytes:
    """`size` bytes that start like an image of the kind `extension` names (other media: no header)."""
    start = IMAGE_STARTS.get(extension.lower(), b"")
    body = (bytes(range(256)) * (size // 256 + 1))[: max(0, size - len(start) - 2)]
    return start + bytes((b + seed) % 256 for b in body) + b"\xff\xd9"


def write_image(path: Path, size: int = 2000, caption: str | None = None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(size, seed, path.suffix.lstrip(".")))
    if caption is not None:
        path.with_suffix(".txt").write_text(caption + "\n")
    return path


def write_images(folder: Path, count: int = 3, textfiles: bool = True) -> list[Path]:
    paths = []
    for index in range(count):
        stem = f"sks_plushie_photo_{index}"
        paths.append(
            write_image(folder / f"{stem}.jpg", 1500 + index, stem.replace("_", " ") if textfiles else None)
        )
    return paths


def local_entry(dataset_id: str = "plushie", folder: str = "data", **extra: Any) -> dict[str, Any]:
    return {
        "id": dataset_id,
        "type": "local",
        "instance_data_dir": folder,
        "caption_strategy": "filename",
        **extra,
    }


def write_environment(
    configs_dir: Path,
    name: str = "env",
    datasets: list[dict[str, Any]] | Any = None,
    options: dict[str, Any] | None = None,
    images: int = 3,
) -> Path:
    """`<configs_dir>/<name>/config.json` + `multidatabackend.json`, and images in `<env>/data`."""
    folder = configs_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {**BASE_OPTIONS, "data_backend_config": f"{name}/multidatabackend.json", **(options or {})}
    (folder / "config.json").write_text(json.dumps(config))
    entries = datasets if datasets is not None else [local_entry()]
    (folder / "multidatabackend.json").write_text(json.dumps(entries))
    if images:
        write_images(folder / "data", images)
    return folder


def set_mtime(path: Path, seconds: int) -> None:
    os.utime(path, (seconds, seconds))


def write_oversized_environment(configs_dir: Path, name: str = "env") -> int:
    """An environment whose one image is a 100 MiB sparse file: preflight only reads sizes, so this costs
    neither disk nor time. Returns the archive size, which is over the limit."""
    from simpletuner_cloud.datasets.environments import load_environment
    from simpletuner_cloud.datasets.preflight import run_preflight

    folder = write_environment(configs_dir, name, images=0)
    (folder / "data").mkdir()
    with open(folder / "data" / "huge_photo.jpg", "wb") as handle:
        handle.write(JPEG_START)
        handle.truncate(LIMIT)
    size = run_preflight(load_environment(name, configs_dir), limit=None).archive_size
    assert size > LIMIT
    return size
