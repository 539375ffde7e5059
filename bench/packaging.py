"""Packaging benchmark: our dataset archive against `zip -0 -r -q` on the same 2,000-image, 95 MiB folder,
side by side in one run (interleaved, median of --runs), plus the peak RSS of a 100 MiB upload to a
sandbox started in a subprocess. Targets: at least 0.9x the speed of `zip -0`; upload peak RSS under
64 MiB above the idle process.
Usage: .venv/bin/python bench/packaging.py [--runs 5] [--skip-upload]"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simpletuner_cloud.datasets.archive import build_archive
from simpletuner_cloud.datasets.environments import load_path
from simpletuner_cloud.datasets.preflight import run_preflight
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN

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


def make_environment(work: Path, dataset: Path) -> Path:
    """A config folder whose one local dataset is the benchmark folder."""
    env = work / "env"
    env.mkdir()
    options = {
        "model_family": "flux",
        "max_train_steps": 100,
        "resolution": 1024,
        "resolution_type": "pixel_area",
    }
    (env / "config.json").write_text(json.dumps(options))
    entry = {
        "id": "bench",
        "type": "local",
        "instance_data_dir": str(dataset),
        "caption_strategy": "filename",
    }
    (env / "multidatabackend.json").write_text(json.dumps([entry]))
    return env


def time_ours(env: Path, out: Path) -> tuple[float, str, int]:
    """Everything `simpletuner cloud data package` does after start-up: read the config, plan, walk the
    folder, size the archive, build it."""
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    preflight = run_preflight(load_path(env, env.parent))
    assert preflight.layout is not None
    result = build_archive(preflight.layout, out)
    return time.perf_counter() - start, result.sha256, result.size


def time_cli(env: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    command = [str(Path(sys.executable).parent / "simpletuner"), "cloud", "data", "package", str(env)]
    subprocess.run([*command, "--out", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def packaging(runs: int, work: Path) -> None:
    folder = work / "dataset"
    make_dataset(folder)
    env = make_environment(work, folder)
    zip_times, our_times, digests = [], [], set()
    time_ours(env, work / "warm.zip")  # warm the page cache for both sides alike
    time_zip(folder, work / "warm-zip.zip")
    for _ in range(runs):
        zip_times.append(time_zip(folder, work / "zip.zip"))
        elapsed, digest, size = time_ours(env, work / "ours.zip")
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
            cli = statistics.median(time_cli(env, work / "cli.zip") for _ in range(max(1, runs // 2)))
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


UPLOAD_CHILD = """
import asyncio, json, sys, time
from pathlib import Path
import httpx
from simpletuner_cloud.replicate.files import upload_file
from simpletuner_cloud.settings import DEFAULT_SANDBOX_TOKEN

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

async def main(url, path):
    headers = {"Authorization": f"Bearer {DEFAULT_SANDBOX_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, trust_env=False) as http:
        await http.get("/v1/account")  # connection and TLS-free warm-up, so idle includes the client
        idle, before = status("VmRSS"), status("VmHWM")
        start = time.perf_counter()
        uploaded = await upload_file(http, Path(path), filename="bench.zip")
        elapsed = time.perf_counter() - start
    print(json.dumps({"idle": idle, "hwm_before": before, "peak": status("VmHWM"), "seconds": elapsed,
                      "size": uploaded["size"]}))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def upload_rss(work: Path) -> None:
    """Peak RSS of a process uploading a 100 MiB file to a sandbox running in another process."""
    payload = work / "upload.bin"
    with open(payload, "wb") as handle:
        for _ in range(100):
            handle.write(os.urandom(1024 * 1024))
    port = free_port()
    sandbox_bin = str(Path(sys.executable).parent / "simpletuner")
    command = [sandbox_bin, "sandbox", "--port", str(port), "--data-dir", str(work / "sandbox")]
    # The installation's sandbox token is random; this loopback-only run names the public test token.
    env = {
        **os.environ,
        "SIMPLETUNER_SANDBOX_TOKEN": DEFAULT_SANDBOX_TOKEN,
        "SIMPLETUNER_HOME": str(work / "home"),
    }
    sandbox = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, sandbox)
        child = subprocess.run(
            [sys.executable, "-c", UPLOAD_CHILD, f"http://127.0.0.1:{port}", str(payload)],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    result = json.loads(child.stdout)
    above = (result["peak"] - result["idle"]) / 2**20
    print(f"upload of {result['size']:,} bytes to the sandbox: {result['seconds']:.2f} s; client RSS idle "
          f"{result['idle'] / 2**20:.1f} MiB, peak {result['peak'] / 2**20:.1f} MiB, "
          f"{above:.1f} MiB above idle (target < 64 MiB)")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the sandbox did not start within 30 s")


if __name__ == "__main__":
    main()
