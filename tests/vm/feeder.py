"""A USB webcam's MJPEG stream, made in the VM: JPEG files written to a v4l2loopback
device whose output format is set to MJPG, so a reader gets them as a UVC camera's
compressed frames (OpenCV's raw MJPEG path, bytes unchanged).

Runs in the guest with the system python3 (stdlib only):

    python3 feeder.py /dev/video0 MODE_FILE FRAMES_DIR [fps]

MODE_FILE names the frames to play: ``good`` (the good-*.jpg fixtures except the
640x480 one), ``bad`` (every non-empty bad-*.jpg: corrupt frames through the real
driver) or a single file name; it is read before every frame, so the checks switch the
stream without reopening the device.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import time
from pathlib import Path

V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_FIELD_NONE = 1
MJPG = int.from_bytes(b"MJPG", "little")
# struct v4l2_format is 208 bytes on 64-bit kernels (x86_64 and arm64): a u32 type,
# padding, then a 200-byte union aligned to 8 holding struct v4l2_pix_format.
FORMAT_SIZE = 208
PIX = struct.Struct("=12I")  # width, height, pixelformat, field, bytesperline, sizeimage, ...


def _iowr(kind: str, number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


VIDIOC_G_FMT = _iowr("V", 4, FORMAT_SIZE)
VIDIOC_S_FMT = _iowr("V", 5, FORMAT_SIZE)


def set_mjpeg_output(fd: int, width: int, height: int, sizeimage: int) -> int:
    """VIDIOC_S_FMT for an MJPG output; returns the size the driver granted per frame."""
    buf = bytearray(FORMAT_SIZE)
    struct.pack_into("=I", buf, 0, V4L2_BUF_TYPE_VIDEO_OUTPUT)
    PIX.pack_into(buf, 8, width, height, MJPG, V4L2_FIELD_NONE, 0, sizeimage, 0, 0, 0, 0, 0, 0)
    try:
        fcntl.ioctl(fd, VIDIOC_S_FMT, buf)
    except OSError as exc:
        # Seen here: a writer coming back after one that closed gets EINVAL, the driver
        # keeping the format the first one set. That format (MJPG, checked below) is
        # what this writer would set anyway.
        print(f"feeder: VIDIOC_S_FMT: {exc}; keeping the device's format", flush=True)
    got = bytearray(FORMAT_SIZE)
    struct.pack_into("=I", got, 0, V4L2_BUF_TYPE_VIDEO_OUTPUT)
    fcntl.ioctl(fd, VIDIOC_G_FMT, got)
    fields = PIX.unpack_from(got, 8)
    if fields[2] != MJPG:
        raise SystemExit(f"feeder: the device did not take MJPG (got {fields[2]:#x})")
    return fields[5]


def open_output(device: str, sizeimage: int, patience: float = 120) -> tuple[int, int]:
    """Open and set the format, retrying while the device is busy (a reader probing it
    between the grabber's retries, say)."""
    deadline = time.monotonic() + patience
    while True:
        fd = os.open(device, os.O_WRONLY)
        try:
            return fd, set_mjpeg_output(fd, 320, 240, sizeimage)
        except OSError as exc:
            os.close(fd)
            if time.monotonic() > deadline:
                raise
            print(f"feeder: {device}: {exc}; retrying", flush=True)
            time.sleep(1)


def playlist(frames: Path, mode: str) -> list[Path]:
    if mode == "good":
        return sorted(p for p in frames.glob("good-*.jpg") if "640x480" not in p.name)
    if mode == "bad":
        return sorted(p for p in frames.glob("bad-*.jpg") if p.stat().st_size > 0)
    return [frames / mode]


def main() -> None:
    device, mode_file, frames_dir = sys.argv[1:4]
    fps = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    frames = Path(frames_dir)
    data = {p.name: p.read_bytes() for p in frames.glob("*.jpg")}
    largest = max(len(b) for b in data.values())
    fd, granted = open_output(device, (largest // 4096 + 1) * 4096)
    if granted < largest:
        raise SystemExit(f"feeder: the device grants {granted} bytes a frame, needs {largest}")
    print(f"feeder: {device} MJPG 320x240, {granted} bytes a frame, {fps:g} fps", flush=True)
    count = 0
    while True:
        mode = Path(mode_file).read_text().strip() or "good"
        for path in playlist(frames, mode):
            os.write(fd, data[path.name])
            count += 1
            time.sleep(1 / fps)
            if count % 600 == 0:
                print(f"feeder: {count} frames written", flush=True)


if __name__ == "__main__":
    main()
