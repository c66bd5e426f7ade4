"""Does sending notifications slow capture? Photo spacing with a storm of alerts going to a
service that is up, down, answering garbage or answering after 10 s, next to no alerts.

Not part of the test suite. Run on an idle machine:

    .venv/bin/python benchmarks/bench_notify.py [--photos 50] [--repeats 3]

A grabber from the wiring (alerts included) runs in this process on a replay camera at a
0.2 s interval with the device kept open, as tests/test_notify.py runs it; a thread
queues an alert every 0.1 s (50 times the photo rate of a real motion storm at the
default gap) for a real HTTP receiver on loopback. Reported: the median and largest gap
between consecutive photos (0.2 s when nothing interferes), and the time ``put`` takes
the grabber's side. Each figure is the median over ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camera.alerts import Message  # noqa: E402
from camera.notify import Notifier  # noqa: E402
from camera.replay import ReplaySource  # noqa: E402
from puccicam.config import load_config  # noqa: E402
from puccicam.wiring import make_grabber  # noqa: E402
from tests.helpers.frames import FRAMES_DIR  # noqa: E402
from tests.helpers.receiver import Receiver  # noqa: E402

INTERVAL = 0.2
MODES = ("no alerts", "service up", "service down", "garbage answers", "answers after 10 s")


def one_run(mode: str, photos: int) -> tuple[list[float], list[float]]:
    """(gaps between photos, put() times), in seconds."""
    receiver = Receiver(mode={"garbage answers": "garbage", "answers after 10 s": "slow"}.get(
        mode, "ok"), delay=10)  # fmt: skip
    if mode == "service down":
        receiver.stop()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            env={},
            overrides={
                "data_dir": Path(tmp) / "data",
                "camera.warmup_delay": 0,
                "camera.warmup_frames": 2,
                "capture.interval": INTERVAL,
                "notify.urls": () if mode == "no alerts" else (receiver.url(),),
                "notify.daily_at": "",
            },
        )
        config = replace(config, live=replace(config.live, enabled=False))
        grabber = make_grabber(
            config,
            source=ReplaySource(_frames(Path(tmp)), fps=30),
            notifier=Notifier({}),
            stop=threading.Event(),
            alerts=True,
        )
        puts: list[float] = []
        storm_stop = threading.Event()

        def storm() -> None:
            while not storm_stop.wait(0.1):
                started = time.perf_counter()
                grabber.alerts.outbox.put(Message("motion", "storm", "body", photo=b"x" * 20000))
                puts.append(time.perf_counter() - started)

        runner = threading.Thread(target=grabber.run)
        runner.start()
        storming = threading.Thread(target=storm)
        if grabber.alerts is not None:
            storming.start()
        while len(list(grabber.store.photos())) < photos + 5:
            time.sleep(0.05)
        grabber.request_stop()
        runner.join()
        storm_stop.set()
        if storming.is_alive():
            storming.join()
        taken = [p.taken_at for p in grabber.store.photos()][5:]  # start-up not counted
    receiver.stop()
    return [b - a for a, b in pairwise(taken)], puts


def _frames(tmp: Path) -> Path:
    frames = tmp / "cam"
    frames.mkdir()
    (frames / "a.jpg").write_bytes((FRAMES_DIR / "good-chelsea.jpg").read_bytes())
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # A full queue logs each alert it drops: a storm would bury the table.
    logging.basicConfig(level=logging.ERROR)
    print(f"photos every {INTERVAL} s; an alert queued every 0.1 s; medians of {args.repeats}")
    print("| service | gap p50 | gap max | put() p50 | put() max |\n|---|---|---|---|---|")
    for mode in MODES:
        runs = [one_run(mode, args.photos) for _ in range(args.repeats)]
        p50 = statistics.median(statistics.median(g) for g, _ in runs)
        worst = statistics.median(max(g) for g, _ in runs)
        if mode == "no alerts":
            put50 = put_max = "n/a"
        else:
            put50 = f"{statistics.median(statistics.median(p) for _, p in runs) * 1e6:.0f} µs"
            put_max = f"{statistics.median(max(p) for _, p in runs) * 1e6:.0f} µs"
        print(f"| {mode} | {p50 * 1000:.0f} ms | {worst * 1000:.0f} ms | {put50} | {put_max} |")


if __name__ == "__main__":
    main()
