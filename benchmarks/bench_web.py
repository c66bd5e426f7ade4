"""Requests per second and latency of the gallery under waitress, next to a bare WSGI app.

Not part of the test suite. Needs wrk (apt-get install wrk). Run on an idle machine:

    .venv/bin/python benchmarks/bench_web.py [--seconds 10] [--repeats 3]

Each server is its own process on a free loopback port under the default waitress
settings: ``puccicam serve`` for the app, and a bare WSGI app returning the same bytes
as the baseline. wrk drives it with 16 connections on 2 threads. The authenticated
routes get a real session cookie from a real login; request logging stays on, as in
production. Every figure is the median of ``--repeats`` wrk runs.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camera.store import PhotoStore, photo_name  # noqa: E402
from puccicam.config import load_config  # noqa: E402
from tests.helpers.live import free_port, login, wait_until_answering  # noqa: E402
from webapp import create_app, state  # noqa: E402
from webapp.server import make_server, run_server  # noqa: E402

FRAME = (ROOT / "tests" / "fixtures" / "frames" / "good-chelsea.jpg").read_bytes()
PASSWORD = "benchmark password"
WRK_LINE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)


def fill(store: PhotoStore, count: int, now: float) -> str:
    """``count`` photos spread over the last 24 hours (written directly, no fsync)."""
    step = 86400 / count
    name = ""
    for i in range(count):
        taken = now - 60 - i * step
        name = photo_name(taken)
        path = store.root / name[:8] / name[9:11] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(FRAME)
    return photo_name(now - 60)


def serve(data_dir: Path | None):
    """Start a server process: the real app (``puccicam serve``) or the bare app."""
    port = free_port()
    if data_dir is None:
        args = [sys.executable, __file__, "--bare", str(port)]
    else:
        args = [sys.executable, "-m", "puccicam", "serve", "--data-dir", str(data_dir),
                "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(base + ("/" if data_dir is None else "/healthz"), proc)
    return proc, base


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print("server did not stop within 30 s of SIGTERM; killed", file=sys.stderr)
        proc.kill()
        proc.wait()


def wrk(url: str, seconds: int, cookie: str | None = None) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run; fails on any non-2xx answer."""
    args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url]
    if cookie:
        args[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    print(f"  {url.split('/', 3)[-1][:40]}: {out.splitlines()[-2].strip()}", file=sys.stderr)
    assert "Non-2xx" not in out, out
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    lat = {p: float(v) * scale[u] for p, v, u in WRK_LINE.findall(out)}
    return rate, lat["50"], lat["99"]


def median_run(url: str, seconds: int, repeats: int, cookie: str | None = None):
    runs = [wrk(url, seconds, cookie) for _ in range(repeats)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))


def build(count: int, tmp: Path) -> tuple[Path, str]:
    """A data dir with an owner and ``count`` photos; returns it and the newest name."""
    data_dir = Path(tempfile.mkdtemp(dir=tmp))
    app = create_app(load_config(env={}, overrides={"data_dir": data_dir}))
    with app.app_context():
        state().accounts.add("bench", PASSWORD)
        store = state().store
    return data_dir, fill(store, count, time.time())


def serve_bare(port: int) -> None:
    """The baseline: a WSGI app returning the photo's bytes, same waitress settings."""

    def app(environ, start_response):
        start_response(
            "200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(len(FRAME)))]
        )
        return [FRAME]

    config = load_config(env={})
    run_server(make_server(app, config, host="127.0.0.1", port=port))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        serve_bare(args.bare)
        return
    assert shutil.which("wrk"), "apt-get install wrk"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir, newest = build(300, Path(tmp))
        proc, base = serve(data_dir)
        try:
            cookie = login(base, "bench", PASSWORD)
            thumb_url = f"{base}/thumbs/{newest}"
            urllib.request.urlopen(urllib.request.Request(thumb_url, headers={"Cookie": cookie}))
            photo = median_run(f"{base}/photos/{newest}", args.seconds, args.repeats, cookie)
            thumb = median_run(thumb_url, args.seconds, args.repeats, cookie)
        finally:
            stop(proc)
        proc, base = serve(None)
        try:
            bare = median_run(f"{base}/", args.seconds, args.repeats)
        finally:
            stop(proc)
        rows += [
            ("bare WSGI app, same bytes", bare),
            ("photo (authenticated)", photo),
            ("thumbnail (authenticated)", thumb),
        ]
        galleries = {}
        for count in (300, 10_000, 100_000):
            data_dir, _ = build(count, Path(tmp))
            proc, base = serve(data_dir)
            try:
                cookie = login(base, "bench", PASSWORD)
                gallery = urllib.request.Request(f"{base}/gallery", headers={"Cookie": cookie})
                urllib.request.urlopen(gallery)  # the first view lists the photos once
                galleries[count] = median_run(f"{base}/gallery", args.seconds, args.repeats, cookie)
            finally:
                stop(proc)
            rows.append((f"gallery page, {count:,} photos", galleries[count]))

    print(f"\nwaitress, 16 connections, {args.seconds} s x {args.repeats} runs (medians)\n")
    print("| route | requests/s | p50 | p99 |")
    print("|---|---|---|---|")
    for label, (rate, p50, p99) in rows:
        print(f"| {label} | {rate:,.0f} | {p50:.1f} ms | {p99:.1f} ms |")
    print(f"\nphoto route at {photo[0] / bare[0]:.0%} of the bare app's rate (target: 40% or more)")
    ratio = galleries[100_000][1] / galleries[300][1]
    print(f"gallery p50 at 100,000 photos is {ratio:.2f}x its p50 at 300 (target: 1.5x or less)")


if __name__ == "__main__":
    main()
