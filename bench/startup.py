"""Start-up benchmark: time from process start to the first 200 on /healthz, and the RSS then.

Side by side in one run, against a reference: a bare FastAPI app with one route under the same uvicorn
(what any FastAPI server pays). Targets for ours: under 1.5 s and under 150 MB.
Usage: .venv/bin/python bench/startup.py [--runs 5]"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REFERENCE_APP = """
from fastapi import FastAPI
import uvicorn, sys
app = FastAPI()
@app.get("/healthz")
def healthz():
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(command: list[str], port: int, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        elapsed = time.perf_counter() - start
                        return elapsed, rss_mb(process.pid)
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited with {process.returncode}") from None
                if time.perf_counter() - start > 30:
                    raise RuntimeError("no /healthz within 30 s") from None
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    ours_t, ours_m, ref_t, ref_m = [], [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "SIMPLETUNER_HOME": home}
            port = free_port()
            t, m = measure([str(bin_dir / "simpletuner"), "server", "--port", str(port)], port, env)
            ours_t.append(t)
            ours_m.append(m)
            port = free_port()
            t, m = measure([sys.executable, "-c", REFERENCE_APP, str(port)], port, env)
            ref_t.append(t)
            ref_m.append(m)
    ot, om, rt, rm = (statistics.median(v) for v in (ours_t, ours_m, ref_t, ref_m))
    print(f"{'':28}{'simpletuner server':>20}{'bare FastAPI':>16}{'ratio':>8}")
    print(f"{'start -> first /healthz 200':28}{ot:>18.3f} s{rt:>14.3f} s{ot / rt:>8.2f}")
    print(f"{'RSS at that moment':28}{om:>17.1f} MB{rm:>13.1f} MB{om / rm:>8.2f}")
    print(f"(median of {args.runs} runs each; targets: < 1.5 s, < 150 MB)")


if __name__ == "__main__":
    main()
