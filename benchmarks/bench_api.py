"""What a token check costs, and whether its time tells a right token from a wrong one.

Not part of the test suite. Run on an idle machine:

    nice .venv/bin/python benchmarks/bench_api.py [--requests 600] [--repeats 3]

One ``puccicam serve`` process on a data dir with a day of photos (288) and metrics on;
tokens made with the real ``puccicam token add``. One keep-alive connection sends, in
turn, the same request with the right token, a near miss (all but the last character
right), a far miss (no character right), no token and ``/metrics`` from loopback, in a
new random order each round, so a busy moment hits every kind alike. Every figure is
the median of the per-run medians over ``--repeats`` runs (a fresh server each run).
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_web import fill  # noqa: E402
from camera.store import PhotoStore  # noqa: E402
from tests.helpers.live import ServerProcess  # noqa: E402

LIMITS = {"PUCCICAM_API_LIMIT": "1000000 per minute", "PUCCICAM_METRICS_ENABLED": "true"}


def make_token(data_dir: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "puccicam", "token", "add", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return done.stdout.strip()


def timed(conn: http.client.HTTPConnection, target: str, headers: dict) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("GET", target, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status, time.perf_counter() - start


def one_run(requests: int) -> dict[str, float]:
    """Median milliseconds per kind of request, from one fresh server."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        fill(PhotoStore(data_dir / "photos"), 288, time.time())
        token = make_token(data_dir, "bench")
        near = token[:-1] + ("A" if token[-1] != "A" else "B")
        far = "pcam_" + "".join("A" if c != "A" else "B" for c in token[5:])
        server = ServerProcess(data_dir, env=LIMITS)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            kinds = {
                "latest.jpg, right token": ("/api/latest.jpg", token, 200),
                "latest.json, right token": ("/api/latest.json", token, 200),
                "latest.json, near miss": ("/api/latest.json", near, 401),
                "latest.json, far miss": ("/api/latest.json", far, 401),
                "latest.json, no token": ("/api/latest.json", None, 401),
                "/metrics (loopback)": ("/metrics", None, 200),
            }
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            order = list(kinds)
            for i in range(requests + 50):
                random.shuffle(order)  # no kind always follows the right token's request
                for kind in order:
                    target, value, expected = kinds[kind]
                    headers = {"Authorization": f"Bearer {value}"} if value else {}
                    status, took = timed(conn, target, headers)
                    assert status == expected, (kind, status)
                    if i >= 50:  # warm-up
                        times[kind].append(took)
            conn.close()
        finally:
            server.stop()
    return {kind: statistics.median(samples) * 1000 for kind, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.requests) for _ in range(args.repeats)]
    print(f"| request | median ms ({args.repeats} runs x {args.requests}) |")
    print("|---|---|")
    for kind in runs[0]:
        print(f"| {kind} | {statistics.median(run[kind] for run in runs):.2f} |")


if __name__ == "__main__":
    main()
