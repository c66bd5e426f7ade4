"""CPU per saved photo, peak RSS and idle CPU of a running grabber, next to fswebcam.

Not part of the test suite. Run on an idle machine:

    .venv/bin/python benchmarks/bench_grabber.py [--photos 100] [--repeats 3]

The grabber runs as a real process (``python -m puccicam grab``) on a replay source
holding one fixture frame, at a 0.2 s interval with the device kept open; its CPU is
read from /proc between the 10th photo and the 10+N-th, so start-up is not counted.
The baseline is the original's process per capture, ``fswebcam -d file:FRAME -r
320x240 --jpeg 80 -S 13 OUT``, on the same frame in the same run; its CPU and peak RSS
come from wait4(). Each figure is the median of ``--repeats`` runs.
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

ROOT = Path(__file__).resolve().parents[1]
FRAME = ROOT / "tests" / "fixtures" / "frames" / "good-chelsea.jpg"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(peak RSS, private anonymous RSS now) in MB.

    Peak RSS includes clean pages of OpenCV's 60 MB shared library, which the kernel
    maps in larger or smaller pieces depending on the page cache (right after a pip
    install it shows up to 30 MB more than after a reboot); the anonymous part is what
    the process itself allocated.
    """
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "RssAnon"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["RssAnon"]


def saved(data: Path) -> int:
    try:
        return json.loads((data / "status.json").read_text())["saved"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the grabber did not get there in time")
        time.sleep(0.02)


def start_grabber(frames: Path, data: Path, interval: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "PUCCICAM_CAMERA_WARMUP_DELAY": "0",
        "PUCCICAM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "puccicam", "grab", "--data-dir", str(data),
         "--source", f"replay:{frames}", "--interval", str(interval)],
        env=env,
    )  # fmt: skip


def grabber_run(frames: Path, photos: int) -> tuple[float, float, float]:
    """(CPU seconds per photo, peak RSS MB, anonymous MB) over ``photos`` captures."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc = start_grabber(frames, data, 0.2)
        try:
            wait_until(lambda: saved(data) >= 10, 60)
            first, cpu0 = saved(data), cpu_seconds(proc.pid)
            wait_until(lambda: saved(data) >= first + photos, photos * 0.2 * 3 + 30)
            last, cpu1 = saved(data), cpu_seconds(proc.pid)
            rss, anon = memory_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        return (cpu1 - cpu0) / (last - first), rss, anon


def grabber_idle(frames: Path, window: float = 8.0) -> float:
    """CPU percent while the grabber sleeps between photos (device closed, 20 s interval)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc = start_grabber(frames, data, 20)
        try:
            wait_until(lambda: saved(data) >= 1, 60)
            while True:
                status = json.loads((data / "status.json").read_text())
                if status.get("next_capture") and status["next_capture"] - time.time() > window + 1:
                    break
                time.sleep(0.2)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        return 100 * (cpu1 - cpu0) / (t1 - t0)


def fswebcam_run(count: int) -> tuple[float, float]:
    """(CPU seconds per photo, peak RSS MB) of one fswebcam process per capture."""
    fswebcam = shutil.which("fswebcam")
    assert fswebcam, "apt-get install fswebcam"
    cpu, rss = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            args = [fswebcam, "-q", "-d", f"file:{FRAME}", "-r", "320x240", "--jpeg", "80",
                    "-S", "13", f"{tmp}/{i}.jpg"]  # fmt: skip
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            assert proc.returncode == 0
            cpu.append(usage.ru_utime + usage.ru_stime)
            rss.append(usage.ru_maxrss / 1024)
    return statistics.mean(cpu), max(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frames = Path(tmp)
        shutil.copy(FRAME, frames / FRAME.name)
        ours, theirs, idle = [], [], []
        for run in range(args.repeats):
            ours.append(grabber_run(frames, args.photos))
            theirs.append(fswebcam_run(args.photos))
            idle.append(grabber_idle(frames))
            print(
                f"run {run + 1}: puccicam {ours[-1][0] * 1000:.1f} ms/photo, "
                f"{ours[-1][1]:.1f} MB ({ours[-1][2]:.1f} MB private); "
                f"fswebcam {theirs[-1][0] * 1000:.1f} ms/photo, "
                f"{theirs[-1][1]:.1f} MB; idle {idle[-1]:.2f}% CPU",
                file=sys.stderr,
            )
    our_cpu = statistics.median(c for c, _, _ in ours)
    their_cpu = statistics.median(c for c, _ in theirs)
    our_rss = statistics.median(r for _, r, _ in ours)
    our_anon = statistics.median(a for _, _, a in ours)
    their_rss = statistics.median(r for _, r in theirs)
    print(f"\nmedian of {args.repeats} runs, {args.photos} photos each, frame {FRAME.name}\n")
    print("| measure | puccicam grab (one process) | fswebcam per capture | ratio |")
    print("|---|---|---|---|")
    print(
        f"| CPU per saved photo | {our_cpu * 1000:.1f} ms | {their_cpu * 1000:.1f} ms "
        f"| {our_cpu / their_cpu:.2f}x |"
    )
    print(f"| peak RSS | {our_rss:.1f} MB | {their_rss:.1f} MB | {our_rss / their_rss:.1f}x |")
    print(f"| of which private (RssAnon) | {our_anon:.1f} MB | | |")
    print(f"| idle CPU between photos | {statistics.median(idle):.2f} % | n/a (cron) | |")


if __name__ == "__main__":
    main()
