"""The fixture frames: real photographs turned into camera frames, good and corrupt."""

from __future__ import annotations

from pathlib import Path

FRAMES_DIR = Path(__file__).parent.parent / "fixtures" / "frames"
GOOD = sorted(p.name for p in FRAMES_DIR.glob("good-*.jpg"))
BAD = sorted(p.name for p in FRAMES_DIR.glob("bad-*.jpg"))

# Why the validator rejects each corrupt fixture (tests/fixtures/README.md says how each
# was made); tests/test_validate.py checks every bad fixture is listed here.
EXPECTED_REASON = {
    "bad-black.jpg": "blank",
    "bad-dropped-packet.jpg": "ended_early",
    "bad-empty.jpg": "not_jpeg",
    "bad-ended-early.jpg": "ended_early",
    "bad-error-page.jpg": "not_jpeg",
    "bad-garbled.jpg": "garbled",
    "bad-green-band.jpg": "flat_band",
    "bad-green.jpg": "blank",
    "bad-grey.jpg": "blank",
    "bad-png-not-jpeg.jpg": "not_jpeg",
    "bad-restart-data-lost.jpg": "garbled",
    "bad-truncated-zero-filled.jpg": "truncated",
    "bad-truncated.jpg": "truncated",
}


def frame_bytes(name: str) -> bytes:
    """The bytes of one fixture frame, by file name."""
    return (FRAMES_DIR / name).read_bytes()


def flaky_camera(target: Path) -> Path:
    """A replay directory of good frames with a corrupt one after every second, as a
    flaky USB camera sends them; returns ``target``."""
    import shutil

    target.mkdir()
    good = [name for name in GOOD if "640" not in name]
    for i, name in enumerate(good * 3):
        shutil.copy(FRAMES_DIR / name, target / f"{i:03d}-{name}")
        if i % 2:
            bad = BAD[(i // 2) % len(BAD)]
            shutil.copy(FRAMES_DIR / bad, target / f"{i:03d}-x-{bad}")
    return target
