"""What the time-lapse costs: CPU per photo to extend it, and how fast it is served and made.

Not part of the test suite. Run on an idle machine:

    nice .venv/bin/python benchmarks/bench_timelapse.py [--repeats 5]

For a day of photos at a 5-minute interval (288) and at 30 s (2,880), spread over the
last 24 hours: the first build from nothing (what a grabber does on its first start),
the CPU of one update after one more photo (what the grabber's background thread
spends per photo: the current segment re-encoded, an hour of 12 photos at 5 minutes or
half an hour of 60 at 30 s) and the bytes it writes, the time to answer ``/timelapse``
and to send the whole file under the real server (the first request after a photo joins
the segments), and the wall time of ``puccicam timelapse --out`` (a new process,
everything encoded). Photos are real
fixture frames at 320x240 with fresh sensor-like noise each, so no two are alike.
Every figure is the median of ``--repeats`` runs (the extension: of 12 photos).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camera.store import PhotoStore, photo_name  # noqa: E402
from puccicam.config import load_config  # noqa: E402
from puccicam.wiring import make_store, make_timelapse  # noqa: E402
from tests.helpers.live import login  # noqa: E402
from tests.helpers.site import waitress_thread  # noqa: E402
from webapp import create_app, state  # noqa: E402

FRAMES = sorted((ROOT / "tests" / "fixtures" / "frames").glob("good-*.jpg"))
PASSWORD = "benchmark password"
HOUR = 3600.0


def _bases() -> list[np.ndarray]:
    images = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in FRAMES]
    return [
        cv2.resize(i, (320, 240), interpolation=cv2.INTER_AREA) for i in images if i is not None
    ]


def photo(bases: list[np.ndarray], rng: np.random.Generator, i: int) -> bytes:
    noise = rng.normal(0, 4, bases[0].shape)
    image = np.clip(bases[i % len(bases)] + noise, 0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def fill(store: PhotoStore, count: int, now: float) -> None:
    """``count`` photos over the last 24 hours (written directly, no fsync)."""
    bases, rng = _bases(), np.random.default_rng(1)
    step = 86400 / count
    for i in range(count):
        name = photo_name(now - 86400 + (i + 1) * step - 1)
        path = store.root / name[:8] / name[9:11] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo(bases, rng, i))


def cpu() -> float:
    return time.process_time()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(count: int, repeats: int, cli: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        config = load_config(
            env={},
            overrides={
                "data_dir": data,
                "capture.interval": 86400 / count,  # which sets the segments' length
                "web.bcrypt_rounds": 4,
                "log_level": "WARNING",
            },
        )
        store = make_store(config)
        # "now" just before an hour ends, so the current hour holds its full share
        now = (time.time() // HOUR) * HOUR + HOUR - 120
        fill(store, count, now)
        timelapse = make_timelapse(config, store)
        started = cpu()
        timelapse.update(now)
        first = cpu() - started
        bases, rng = _bases(), np.random.default_rng(2)
        segments = timelapse.segments

        def add_photo(k: int) -> tuple[float, int]:
            """One more photo: the update's CPU and the bytes it wrote (its segment)."""
            taken = now + 1 + k
            store.save(photo(bases, rng, k), taken)
            before = {p.name for p in segments.iterdir()}
            started = cpu()
            timelapse.update(taken)
            spent = cpu() - started
            written = sum(p.stat().st_size for p in segments.iterdir() if p.name not in before)
            return spent, written

        per_photo = [add_photo(k) for k in range(12)]
        size = timelapse.path.stat().st_size

        app = create_app(config)
        with app.app_context():
            state().accounts.add("owner", PASSWORD)
        page_times, joined_times, cached_times = [], [], []
        with waitress_thread(app) as url:
            cookie = login(url, "owner", PASSWORD)

            def get(target: str) -> float:
                request = urllib.request.Request(url + target, headers={"Cookie": cookie})
                started = time.perf_counter()
                with urllib.request.urlopen(request) as response:
                    response.read()
                return time.perf_counter() - started

            for k in range(max(repeats, 5)):
                add_photo(100 + k)  # a new list of segments: the next GET joins them
                page_times.append(get("/timelapse"))
                joined_times.append(get("/timelapse.webm"))
                cached_times.append(get("/timelapse.webm"))

        cli_wall, cli_cpu = [], []
        for _ in range(repeats if cli else 0):
            out = Path(tmp) / "out.webm"
            before, started = children_cpu(), time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "puccicam", "timelapse", "--out", str(out),
                 "--hours", "24", "--data-dir", str(data)],
                check=True, capture_output=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("PUCCICAM_")},
            )  # fmt: skip
            cli_wall.append(time.perf_counter() - started)
            cli_cpu.append(children_cpu() - before)
    nan = [float("nan")]  # with --no-cli
    return {
        "first build, CPU s": first,
        "CPU per added photo, ms": 1000 * statistics.median(c for c, _w in per_photo),
        "written per added photo, KB": statistics.median(w for _c, w in per_photo) / 1024,
        "day file, KB": size / 1024,
        "GET /timelapse, ms": 1000 * statistics.median(page_times),
        "GET /timelapse.webm after a photo (joins), ms": 1000 * statistics.median(joined_times),
        "GET /timelapse.webm again, ms": 1000 * statistics.median(cached_times),
        "puccicam timelapse, wall s": statistics.median(cli_wall or nan),
        "puccicam timelapse, CPU s": statistics.median(cli_cpu or nan),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-cli", action="store_true", help="skip puccicam timelapse runs")
    args = parser.parse_args()
    results = {count: measure(count, args.repeats, not args.no_cli) for count in (288, 2880)}
    print("| measure | 288 photos (5 min) | 2,880 photos (30 s) |")
    print("|---|---:|---:|")
    for key in results[288]:
        print(f"| {key} | {results[288][key]:.2f} | {results[2880][key]:.2f} |")


if __name__ == "__main__":
    main()
