"""Shared fixtures: fixture frames, a config rooted in tmp_path, fake clock and camera."""

from __future__ import annotations

from pathlib import Path

import pytest

from puccicam.config import load_config
from tests.fakes import FakeCamera, FakeClock

FRAMES_DIR = Path(__file__).parent / "fixtures" / "frames"
GOOD = sorted(p.name for p in FRAMES_DIR.glob("good-*.jpg"))
BAD = sorted(p.name for p in FRAMES_DIR.glob("bad-*.jpg"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hardware", action="store_true", help="also run tests that need a real /dev/video0"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs a real camera: run with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


def frame_bytes(name: str) -> bytes:
    return (FRAMES_DIR / name).read_bytes()


@pytest.fixture
def good_frame() -> bytes:
    return frame_bytes("good-chelsea.jpg")


@pytest.fixture
def make_config(tmp_path: Path):
    """A config in tmp_path with test-speed warm-up; keyword overrides use dotted keys."""

    def make(**overrides):
        values = {
            "data_dir": tmp_path / "data",
            "camera.warmup_delay": 0,
            "camera.warmup_frames": 2,
            "capture.interval": 300,
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        return load_config(env={}, overrides=values)

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def camera(clock: FakeClock) -> FakeCamera:
    return FakeCamera([frame_bytes("good-chelsea.jpg"), frame_bytes("good-coffee-422.jpg")], clock)
