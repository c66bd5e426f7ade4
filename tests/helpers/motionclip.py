"""A camera clip with known movement, built from the fixture photographs, for motion mode.

A real photo patch (the cat's face from ``good-chelsea.jpg``) crosses a real background
(``good-640x480.jpg``) between stretches of pure sensor noise (fresh gaussian noise on
every frame of the still scene), a slow dimming, a light switched on, and a long spell
of play that outlasts ``motion.min_gap``. The frames are 640x480 MJPEG as a webcam
sends them, written as a ``replay:`` directory; ``Clip`` says when each movement starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from camera.frame import Frame
from camera.source import SourceBase
from tests.helpers.frames import FRAMES_DIR

FPS = 2.0  # frames per second of the clip: one file per look at the default motion.fps
NOISE_SIGMA = 12.0  # grey levels of per-pixel noise: a dim room at high gain
PATCH = 120  # pixels: the cat's face, about 5% of a 640x480 picture


@dataclass
class Clip:
    """A built clip: its directory and what happens when (seconds from its start)."""

    directory: Path
    fps: float
    duration: float
    moves: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    quiet: list[tuple[float, float]] = field(default_factory=list)  # noise only
    ramp: tuple[float, float] = (0.0, 0.0)
    light_switch: float = 0.0
    corrupt: list[float] = field(default_factory=list)  # times of corrupt frames

    @property
    def frames(self) -> list[Path]:
        return sorted(self.directory.glob("*.jpg"))


def _patch() -> np.ndarray:
    """The middle of the cat photo, ``PATCH`` pixels square."""
    cat = cv2.imread(str(FRAMES_DIR / "good-chelsea.jpg"))
    h, w = cat.shape[:2]
    side = min(h, w) * 3 // 4
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(cat[top : top + side, left : left + side], (PATCH, PATCH))


def build_clip(directory: Path, *, corrupt: bool = True, seed: int = 13) -> Clip:
    """Write the clip's frames into ``directory`` (created) and describe them.

    Timeline (s): 0-30 noise; 30-36 the cat crosses left to right; 36-90 noise; 90-150
    the lamp dims to 60%; 150-156 the cat crosses right to left, dim; 156-200 noise; at
    200 the light goes back to full at once; 200-240 noise; 240-246 a crossing lower
    down; 246-270 noise; 270-340 play, back and forth; 340-360 noise. Corrupt frames
    from the fixtures sit in the quiet stretches (and one truncated frame mid-play).
    """
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    background = cv2.imread(str(FRAMES_DIR / "good-640x480.jpg")).astype(np.float32)
    width = background.shape[1]
    patch = _patch().astype(np.float32)
    clip = Clip(directory, FPS, 360.0)
    clip.moves = [(30.0, 36.0), (150.0, 156.0), (240.0, 246.0), (270.0, 340.0)]
    clip.quiet = [(0.0, 30.0), (37.0, 90.0), (157.0, 200.0), (201.0, 240.0), (247.0, 270.0)]
    clip.ramp = (90.0, 150.0)
    clip.light_switch = 200.0
    bad = {
        60.0: "bad-garbled.jpg",
        70.0: "bad-black.jpg",
        180.0: "bad-truncated.jpg",
        220.0: "bad-green-band.jpg",
        260.0: "bad-dropped-packet.jpg",
    }

    pool = [rng.standard_normal(background.shape, dtype=np.float32) * NOISE_SIGMA for _ in range(7)]

    def cat_at(t: float) -> tuple[int, int] | None:
        """The patch's top-left corner at time t, or None while it is out of sight."""
        travel = width + PATCH
        for (start, end), row, forwards in zip(
            clip.moves[:3], (180, 200, 330), (True, False, True), strict=True
        ):
            if start <= t < end:
                x = (t - start) / (end - start) * travel - PATCH
                return (int(x) if forwards else int(width - x - PATCH)), row
        start, end = clip.moves[3]
        if start <= t < end:  # in from the left, then to and fro in the middle
            phase = (t - start) / 8.0
            x = -PATCH + min(t - start, 3.0) / 3.0 * (PATCH + 200) + 150 * np.sin(phase)
            return int(x), 150 + int(60 * np.cos(phase / 2))
        return None

    for i in range(round(clip.duration * FPS)):
        t = i / FPS
        path = directory / f"{i:05d}.jpg"
        if t in bad:
            path.write_bytes((FRAMES_DIR / bad[t]).read_bytes())
            clip.corrupt.append(t)
            continue
        scene = background.copy()
        where = cat_at(t)
        if where is not None:
            x, y = where
            left, right = max(0, x), min(width, x + PATCH)
            if right > left:
                scene[y : y + PATCH, left:right] = patch[:, left - x : right - x]
        ramp_start, ramp_end = clip.ramp
        if t < ramp_start or t >= clip.light_switch:
            gain = 1.0
        elif t < ramp_end:
            gain = 1.0 - 0.4 * (t - ramp_start) / (ramp_end - ramp_start)
        else:
            gain = 0.6
        # Fresh noise on every frame: one of a pool of noise fields, shifted at random
        # (drawing 720 full fields took 20 s; the detector cannot tell the difference).
        noise = np.roll(pool[i % len(pool)], rng.integers(0, width), axis=1)
        scene = scene * gain + noise
        ok, jpeg = cv2.imencode(
            ".jpg", np.clip(scene, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85]
        )
        assert ok
        data = jpeg.tobytes()
        if t == 300.0:  # a frame cut short mid-play: it must not be the motion photo
            data = data[: len(data) // 2]
            clip.corrupt.append(t)
        path.write_bytes(data)
    return clip


class ClipCamera(SourceBase):
    """Plays a clip by the (fake) clock, as a camera with one buffer does: a read returns
    the newest frame not read yet, waiting (the clock advances) for the next one if the
    newest was already read; frames nobody read meanwhile are gone."""

    def __init__(self, clip: Clip, clock, start: float) -> None:
        self.name = f"clip:{clip.directory.name}"
        self.clock = clock
        self.start = start
        self.files = clip.frames
        self.fps = clip.fps
        self.is_open = False
        self.last = -1
        self.served: list[tuple[float, int]] = []  # (clock time, frame index)

    def open(self) -> None:
        self.is_open = True

    def read(self) -> Frame:
        index = int((self.clock.now() - self.start) * self.fps + 1e-9)
        if index <= self.last:
            index = self.last + 1
            self.clock.advance(self.start + index / self.fps - self.clock.now())
        self.last = index
        now = self.clock.now()
        self.served.append((now, index))
        return Frame(received=now, jpeg=self.files[min(index, len(self.files) - 1)].read_bytes())

    def close(self) -> None:
        self.is_open = False
