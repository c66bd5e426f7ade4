"""Live view: time to the first frame, frame rates, latency, CPU per frame and RSS.

Not part of the test suite. Run on an idle machine:

    .venv/bin/python benchmarks/bench_live.py [--seconds 10] [--soak-minutes 10]

The real grabber (``puccicam grab``) and the real server (``puccicam serve``) run as their
own processes on a 30 fps ``replay:`` camera, once with 320x240 frames and once with
640x480 frames (the fixtures' photographs re-encoded at that size), live.fps 15 and the
default warm-up (3 s, 13 frames). Clients read ``/live/stream`` over loopback sockets.
Latency is the time from the grabber reading a frame (the part's ``X-Timestamp``) to the
client having it whole. CPU is read from /proc for both processes and divided by the
frames delivered to all viewers. The soak runs ``live.max_viewers`` viewers for
``--soak-minutes`` at 320x240 and compares both processes' RSS before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.frames import FRAMES_DIR, GOOD  # noqa: E402
from tests.helpers.live import LiveSite  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
STAMP = re.compile(rb"X-Timestamp: ([0-9.]+)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def camera_frames(target: Path, width: int, height: int) -> None:
    """The good fixtures at the wanted size, as a camera would send them."""
    target.mkdir()
    for i, name in enumerate(n for n in GOOD if "640" not in n):
        image = cv2.imread(str(FRAMES_DIR / name))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(target / f"{i:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 80])


def site_for(tmp: Path, frames: Path) -> LiveSite:
    """Grabber and server on ``frames`` at 30 fps, default warm-up, quiet logs."""
    return LiveSite(
        tmp,
        frames,
        PUCCICAM_CAMERA_FPS="30",
        PUCCICAM_CAMERA_WARMUP_DELAY="3",
        PUCCICAM_CAMERA_WARMUP_FRAMES="13",
        PUCCICAM_CAPTURE_INTERVAL="300",
        PUCCICAM_LOG_LEVEL="WARNING",
    )


def wait_interval_mode(site: LiveSite) -> None:
    deadline = time.monotonic() + 20
    while site.status().get("mode") != "interval":
        if time.monotonic() > deadline:
            raise TimeoutError("the grabber stayed in live mode")
        time.sleep(0.1)
    time.sleep(0.5)


def wait_viewers(site: LiveSite, most: int) -> None:
    """Until the web side has let go of the streams closed so far."""
    deadline = time.monotonic() + 20
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
        conn.request("GET", "/live/status", headers={"Cookie": site.cookie})
        viewers = json.loads(conn.getresponse().read())["viewers"]
        conn.close()
        if viewers <= most:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{viewers} streams still held")
        time.sleep(0.05)


def first_frame(site: LiveSite) -> float:
    started = time.monotonic()
    stream = site.stream()
    assert stream.status == 200, f"live stream answered {stream.status}"
    next(stream.frames(30))
    took = time.monotonic() - started
    stream.close()
    return took


def watch(site: LiveSite, viewers: int, seconds: float) -> dict:
    """Run ``viewers`` streams for ``seconds``: frames each, latencies, CPU per frame."""
    streams = [site.stream() for _ in range(viewers)]
    for stream in streams:
        next(stream.frames(30))  # all warmed up
    counts = [0] * viewers
    latencies: list[float] = []
    cpu0 = cpu_seconds(site.grabber.proc.pid), cpu_seconds(site.server.proc.pid)

    def read(i: int) -> None:
        for headers, _jpeg in streams[i].parts(seconds):
            counts[i] += 1
            match = STAMP.search(headers)
            if match:
                latencies.append(time.time() - float(match.group(1)))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(viewers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu1 = cpu_seconds(site.grabber.proc.pid), cpu_seconds(site.server.proc.pid)
    for stream in streams:
        stream.close()
    total = sum(counts)
    latencies.sort()
    return {
        "fps": [count / elapsed for count in counts],
        "p50": latencies[len(latencies) // 2] * 1000,
        "p95": latencies[int(len(latencies) * 0.95)] * 1000,
        "grabber_ms": (cpu1[0] - cpu0[0]) / total * 1000,
        "web_ms": (cpu1[1] - cpu0[1]) / total * 1000,
    }


def run_size(tmp: Path, width: int, height: int, seconds: float, repeats: int) -> dict:
    frames = tmp / f"camera-{width}"
    camera_frames(frames, width, height)
    (tmp / f"site-{width}").mkdir()
    site = site_for(tmp / f"site-{width}", frames)
    try:
        time.sleep(4)  # the first interval photo and its warm-up are done
        wait_interval_mode(site)
        closed = []
        for _ in range(repeats):
            closed.append(first_frame(site))
            wait_interval_mode(site)
        holder = site.stream()
        next(holder.frames(30))
        opened = []
        for _ in range(repeats):
            opened.append(first_frame(site))
            wait_viewers(site, 1)  # the holder's alone again
        holder.close()
        wait_interval_mode(site)
        one = watch(site, 1, seconds)
        wait_interval_mode(site)  # the last viewer's slot is free again
        three = watch(site, 3, seconds)
        return {
            "closed": statistics.median(closed),
            "open": statistics.median(opened),
            "one": one,
            "three": three,
        }
    finally:
        site.close()


def soak(tmp: Path, minutes: float) -> dict:
    frames = tmp / "camera-soak"
    camera_frames(frames, 320, 240)
    (tmp / "site-soak").mkdir()
    site = site_for(tmp / "site-soak", frames)
    try:
        streams = [site.stream() for _ in range(3)]
        for stream in streams:
            next(stream.frames(30))
        time.sleep(5)
        before = rss_mb(site.grabber.proc.pid), rss_mb(site.server.proc.pid)
        counts = [0, 0, 0]

        def read(i: int) -> None:
            for _jpeg in streams[i].frames(minutes * 60):
                counts[i] += 1

        threads = [threading.Thread(target=read, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = rss_mb(site.grabber.proc.pid), rss_mb(site.server.proc.pid)
        for stream in streams:
            stream.close()
        return {"before": before, "after": after, "frames": counts}
    finally:
        site.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--soak-minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results = {size: run_size(tmp, *size, args.seconds, args.repeats)
                   for size in [(320, 240), (640, 480)]}  # fmt: skip
        soaked = soak(tmp, args.soak_minutes) if args.soak_minutes > 0 else None
    print(f"\nlive view, 30 fps replay camera, live.fps 15, {args.seconds:g} s per figure, "
          f"medians of {args.repeats} for first-frame times\n")  # fmt: skip
    print("| measure | 320x240 | 640x480 | target |")
    print("|---|---|---|---|")
    rows = [
        ("first frame, camera closed (3 s warm-up)", lambda r: f"{r['closed']:.2f} s", "≤ 4 s"),
        ("first frame, camera already open", lambda r: f"{r['open']:.2f} s", "≤ 1 s"),
        ("fps, 1 viewer", lambda r: f"{r['one']['fps'][0]:.1f}", "≥ 15"),
        ("fps, each of 3 viewers",
         lambda r: " / ".join(f"{f:.1f}" for f in r["three"]["fps"]), "≥ 10"),
        ("latency p50 / p95, 3 viewers",
         lambda r: f"{r['three']['p50']:.0f} / {r['three']['p95']:.0f} ms", "p95 ≤ 150 ms"),
        ("CPU per delivered frame, grabber + web (1 viewer)",
         lambda r: f"{r['one']['grabber_ms']:.2f} + {r['one']['web_ms']:.2f} ms", "≤ 1.5 ms"),
        ("CPU per delivered frame, grabber + web (3 viewers)",
         lambda r: f"{r['three']['grabber_ms']:.2f} + {r['three']['web_ms']:.2f} ms", "≤ 1.5 ms"),
    ]  # fmt: skip
    for label, cell, target in rows:
        print(f"| {label} | {cell(results[(320, 240)])} | {cell(results[(640, 480)])} | {target} |")
    if soaked:
        (g0, w0), (g1, w1) = soaked["before"], soaked["after"]
        print(f"\nRSS over {args.soak_minutes:g} min with 3 viewers at 320x240 "
              f"({sum(soaked['frames'])} frames delivered): grabber {g0:.1f} -> {g1:.1f} MB "
              f"({(g1 / g0 - 1) * 100:+.1f}%), web {w0:.1f} -> {w1:.1f} MB "
              f"({(w1 / w0 - 1) * 100:+.1f}%); target within +5%")  # fmt: skip


if __name__ == "__main__":
    main()
