"""Motion mode: CPU share of one core, interval CPU per photo before/after, detection quality.

Not part of the test suite. Run on an idle machine:

    .venv/bin/python benchmarks/bench_motion.py [--window 60] [--repeats 3] [--baseline main]

1. Motion mode: ``puccicam grab --motion`` as a real process on a 640x480 MJPEG replay of
   the test clip (tests/helpers/motionclip.py: noise, dimming, a light switch, a cat
   crossing), looking ``motion.fps`` = 2 times a second, interval 300 s; its CPU time is
   read from /proc over a ``--window`` s wall-clock window after start-up.
2. Interval mode: CPU per saved photo as bench_grabber.py measures it (one fixture frame,
   0.2 s interval, photos 10 to 110), for this tree and for ``--baseline`` (a git
   revision, unpacked with ``git archive`` and run with the same Python) in the same run:
   what the activity score and the metadata segment add.
3. Detection quality: the clip played to the real grabber by a fake clock (moments with
   a motion photo within 1 s of their start / moments present), and an hour of sensor
   noise at two strengths (frames encoded as a camera would, fed to the detector as the
   grabber does): movement events per hour where nothing moved.
Each CPU figure is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camera.frame import Frame  # noqa: E402
from camera.motion import MotionDetector, small_grey  # noqa: E402
from camera.settings import MotionConfig  # noqa: E402
from tests.helpers.frames import FRAMES_DIR  # noqa: E402
from tests.helpers.motionclip import build_clip  # noqa: E402

FRAME = FRAMES_DIR / "good-chelsea.jpg"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def status(data: Path) -> dict:
    try:
        return json.loads((data / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the grabber did not get there in time")
        time.sleep(0.02)


def grabber(tree: Path, data: Path, *args: str, **env: str) -> subprocess.Popen:
    """``python -m puccicam grab`` from ``tree`` (this checkout or a baseline)."""
    return subprocess.Popen(
        [sys.executable, "-m", "puccicam", "grab", "--data-dir", str(data), *args],
        cwd=tree,
        env={
            **os.environ,
            "PYTHONPATH": str(tree),
            "PUCCICAM_CAMERA_WARMUP_DELAY": "0",
            "PUCCICAM_LOG_LEVEL": "WARNING",
            "PUCCICAM_LIVE_ENABLED": "false",
            **env,
        },
    )


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)


def motion_share(frames: Path, window: float) -> tuple[float, int]:
    """(CPU percent of one core, motion photos) of ``grab --motion`` over ``window`` s."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc = grabber(ROOT, data, "--motion", "--source", f"replay:{frames}", "--interval", "300")
        try:
            wait_until(lambda: status(data).get("saved", 0) >= 1, 60)
            time.sleep(2)  # imports and the first photo are start-up, not motion mode
            saved0, cpu0, t0 = status(data)["saved"], cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            saved1 = status(data)["saved"]
        finally:
            stop(proc)
        return 100 * (cpu1 - cpu0) / (t1 - t0), saved1 - saved0


def interval_cpu(tree: Path, frames: Path, photos: int) -> float:
    """CPU seconds per saved photo in interval mode (bench_grabber.py's measure)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc = grabber(tree, data, "--source", f"replay:{frames}", "--interval", "0.2")
        try:
            wait_until(lambda: status(data).get("saved", 0) >= 10, 60)
            first, cpu0 = status(data)["saved"], cpu_seconds(proc.pid)
            wait_until(lambda: status(data)["saved"] >= first + photos, photos * 0.6 + 30)
            last, cpu1 = status(data)["saved"], cpu_seconds(proc.pid)
        finally:
            stop(proc)
        return (cpu1 - cpu0) / (last - first)


def clip_quality(clip) -> tuple[int, int, list[float]]:
    """(moments found within 1 s, moments present, motion photos where nothing moved)."""
    from camera.notify import Notifier
    from puccicam.config import load_config
    from puccicam.wiring import make_grabber
    from tests.helpers.fakes import EPOCH, FakeClock
    from tests.helpers.motionclip import ClipCamera

    start = EPOCH + 20
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            env={},
            overrides={
                "data_dir": Path(tmp),
                "camera.warmup_delay": 0,
                "camera.drain_frames": 0,
                "capture.interval": 60,
                "capture.motion": True,
                "live.enabled": False,
            },
        )
        clock = FakeClock(start, stop_at=start + clip.duration)
        grab = make_grabber(
            config, source=ClipCamera(clip, clock, start), clock=clock, notifier=Notifier({})
        )
        grab.run()
        motion = [
            p.taken_at - start
            for p in grab.store.photos()
            if grab.store.meta(p.name).kind == "motion"
        ]
    found = sum(any(s <= t <= s + 1 for t in motion) for s, _ in clip.moves)
    false = [t for t in motion if not any(s <= t <= e + 6 for s, e in clip.moves)]
    return found, len(clip.moves), false


def noise_events(seconds: float, sigma: float, seed: int = 7) -> tuple[int, int]:
    """(movement events, looks) over ``seconds`` of a still scene with sensor noise at
    2 looks a second; an event is a run of looks judged moving."""
    rng = np.random.default_rng(seed)
    background = cv2.imread(str(FRAMES_DIR / "good-640x480.jpg")).astype(np.float32)
    pool = [rng.standard_normal(background.shape, dtype=np.float32) * sigma for _ in range(16)]
    detector = MotionDetector(MotionConfig())
    events, was_moving, looks = 0, False, int(seconds * 2)
    for i in range(looks):
        noise = np.roll(pool[i % len(pool)], int(rng.integers(0, 640)), axis=1)
        scene = np.clip(background + noise, 0, 255).astype(np.uint8)
        jpeg = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        grey = small_grey(Frame(received=0, jpeg=jpeg))
        verdict = detector.look(grey)
        detector.learn(grey, verdict)
        events += verdict.moving and not was_moving
        was_moving = verdict.moving
    return events, looks


def baseline_tree(revision: str, tmp: Path) -> Path:
    tree = tmp / "baseline"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--baseline", default="main", help="git revision before motion mode")
    parser.add_argument("--noise-seconds", type=float, default=3600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = build_clip(tmp / "clip")
        one = tmp / "one"
        one.mkdir()
        shutil.copy(FRAME, one / FRAME.name)
        before_tree = baseline_tree(args.baseline, tmp)
        shares, counts, ours, before = [], [], [], []
        for run in range(args.repeats):
            share, count = motion_share(clip.directory, args.window)
            shares.append(share)
            counts.append(count)
            ours.append(interval_cpu(ROOT, one, args.photos))
            before.append(interval_cpu(before_tree, one, args.photos))
            print(
                f"run {run + 1}: motion mode {share:.2f}% of a core ({count} photos); "
                f"interval {ours[-1] * 1000:.1f} ms/photo, {args.baseline} "
                f"{before[-1] * 1000:.1f} ms/photo",
                file=sys.stderr,
            )
        found, present, false = clip_quality(clip)
        noise = {sigma: noise_events(args.noise_seconds, sigma) for sigma in (12.0, 24.0)}

    print(f"\nmedians of {args.repeats} runs; motion window {args.window:g} s\n")
    print("| measure | figure |")
    print("|---|---|")
    print(
        f"| motion mode CPU, 640x480 MJPEG replay, motion.fps 2 | "
        f"{statistics.median(shares):.2f} % of one core (target at most 3 %) |"
    )
    ours_ms, before_ms = statistics.median(ours) * 1000, statistics.median(before) * 1000
    print(
        f"| interval mode CPU per photo (320x240 frame) | {ours_ms:.1f} ms, "
        f"{args.baseline}: {before_ms:.1f} ms ({ours_ms / before_ms:.2f}x) |"
    )
    print(f"| clip: moments with a motion photo within 1 s | {found} / {present} |")
    print(f"| clip: motion photos where nothing moved | {len(false)} |")
    for sigma, (events, looks) in noise.items():
        hours = looks / 2 / 3600
        print(
            f"| false movement events per hour of noise (sigma {sigma:g}) | "
            f"{events / hours:.1f} ({events} in {looks} looks) |"
        )


if __name__ == "__main__":
    main()
