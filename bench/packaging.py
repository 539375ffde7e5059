"""Packaging benchmark: our dataset archive against `zip -0 -r -q` on the same 2,000-image, 95 MiB folder,
side by side in one run (interleaved, median of --runs), plus the peak RSS of a 100 MiB upload to a
sandbox started in a subprocess. Targets: at least 0.9x the speed of `zip -0`; upload peak RSS under
64 MiB above the idle process.
Usage: .venv/bin/python bench/packaging.py [--runs 5] [--skip-upload]"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simpletuner_cloud.datasets.archive import build_archive, plan_archive
from simpletuner_cloud.datasets.selection import select_files

IMAGES = 2_000
DATASET_BYTES = 95 * 1024 * 1024
JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
ROOT = Path(__file__).resolve().parent.parent


def make_dataset(folder: Path) -> None:
    """Random bytes behind a JPEG header (incompressible, like real JPEGs) plus one-line captions."""
    folder.mkdir(parents=True)
    per_image = DATASET_BYTES // IMAGES
    for index in range(IMAGES):
        stem = f"sks_plushie_photo_number_{index:04d}"
        body = JPEG_START + os.urandom(per_image - len(JPEG_START) - 2) + b"\xff\xd9"
        (folder / f"{stem}.jpg").write_bytes(body)
        (folder / f"{stem}.txt").write_text(stem.replace("_", " "))


def time_zip(folder: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(["zip", "-0", "-r", "-q", str(out), "."], cwd=folder, check=True)
    return time.perf_counter() - start


def time_ours(folder: Path, out: Path) -> tuple[float, str, int]:
    """Everything `simpletuner cloud data package` does after start-up: walk, plan, build."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    selection = select_files(folder, "bench")
    layout = plan_archive(selection.files)
    result = build_archive(layout, out)
    return time.perf_counter() - start, result.sha256, result.size


def time_cli(folder: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    command = [str(Path(sys.executable).parent / "simpletuner"), "cloud", "data", "package", str(folder)]
    subprocess.run([*command, "--out", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def packaging(runs: int, work: Path) -> None:
    folder = work / "dataset"
    make_dataset(folder)
    zip_times, our_times, digests = [], [], set()
    time_ours(folder, work / "warm.zip")  # warm the page cache for both sides alike
    time_zip(folder, work / "warm-zip.zip")
    for _ in range(runs):
        zip_times.append(time_zip(folder, work / "zip.zip"))
        elapsed, digest, size = time_ours(folder, work / "ours.zip")
        our_times.append(elapsed)
        digests.add(digest)
    zip_median, our_median = statistics.median(zip_times), statistics.median(our_times)
    print(f"dataset: {IMAGES} images + {IMAGES} captions, {DATASET_BYTES / 2**20:.0f} MiB of image bytes")
    print(f"{'':24}{'median s':>10}{'min s':>10}{'archive bytes':>16}")
    print(
        f"{'zip -0 -r -q':24}{zip_median:10.3f}{min(zip_times):10.3f}{(work / 'zip.zip').stat().st_size:16,}"
    )
    print(f"{'simpletuner (in-process)':24}{our_median:10.3f}{min(our_times):10.3f}{size:16,}")
    ratio = zip_median / our_median
    print(f"speed vs zip -0: {ratio:.2f}x (target >= 0.90x); deterministic: {len(digests) == 1}")
    if shutil.which("simpletuner") or (Path(sys.executable).parent / "simpletuner").exists():
        try:
            cli = statistics.median(time_cli(folder, work / "cli.zip") for _ in range(max(1, runs // 2)))
        except subprocess.CalledProcessError as exc:
            print(f"CLI run failed: {exc}")
        else:
            same = hashlib.sha256((work / "cli.zip").read_bytes()).hexdigest() in digests
            print(
                f"`simpletuner cloud data package` incl. interpreter start: {cli:.3f} s; same archive: {same}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-upload", action="store_true")
    args = parser.parse_args()
    if not shutil.which("zip"):
        sys.exit("needs the `zip` program for the comparison")
    with tempfile.TemporaryDirectory(prefix="bench-packaging-") as work:
        packaging(args.runs, Path(work))
        if not args.skip_upload:
            upload_rss(Path(work))


def upload_rss(work: Path) -> None:
    print("upload RSS: not measured yet")


if __name__ == "__main__":
    main()
