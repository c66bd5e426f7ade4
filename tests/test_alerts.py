"""The alert policy on a fake clock: one alert per outage, per return, per disk crossing,
motion at most once per gap with its photo, and the daily summary's figures."""

from __future__ import annotations

import time
from collections import namedtuple
from dataclasses import replace

import pytest

from camera.alerts import Alerts, next_daily
from camera.meta import PhotoMeta
from camera.settings import NOTIFY_EVENTS, NotifyConfig
from camera.status import Status
from camera.store import Photo, PhotoStore, photo_name
from tests.helpers.fakes import FakeClock
from tests.helpers.frames import frame_bytes

Usage = namedtuple("Usage", "total used free")
MINUTE = 60.0


class Outbox:
    """Records what the policy hands over; the network is tests/test_sender.py's."""

    def __init__(self) -> None:
        self.messages = []
        self.sent = self.failed = 0

    def put(self, message) -> None:
        self.messages.append(message)

    def events(self) -> list[str]:
        return [m.event for m in self.messages]

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Disk:
    """A disk whose free share a test sets, in percent."""

    def __init__(self, free_percent: float = 50.0) -> None:
        self.free_percent = free_percent

    def __call__(self, _path) -> Usage:
        free = int(self.free_percent * 10**9)
        return Usage(100 * 10**9, 100 * 10**9 - free, free)


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


def make_alerts(outbox, clock, tmp_path, disk=None, store=None, **settings):
    settings.setdefault("daily_at", "")
    return Alerts(
        outbox,
        replace(NotifyConfig(), urls=("json://127.0.0.1:9/x",), **settings),
        data_dir=tmp_path,
        hour_counts=(store.hour_counts if store else lambda since, until: {}),
        hour_activity=store.hour_activity if store else None,
        clock=clock,
        disk_usage=disk or Disk(),
    )


def photo_at(stamp: float) -> Photo:
    return Photo(stamp, photo_name(stamp))


def test_one_offline_alert_per_outage_and_one_back(outbox, clock, tmp_path):
    alerts = make_alerts(outbox, clock, tmp_path, offline_after=15)
    alerts.photo_saved(photo_at(clock.now()), b"jpeg")
    for _ in range(14):
        clock.advance(MINUTE)
        alerts.tick(clock.now())
    assert outbox.events() == []  # 14 minutes without a photo: not yet
    for _ in range(60):  # an hour dark, checked every minute: still one alert
        clock.advance(MINUTE)
        alerts.tick(clock.now())
    assert outbox.events() == ["offline"]
    assert outbox.messages[0].critical
    alerts.photo_saved(photo_at(clock.now()), b"jpeg")
    alerts.photo_saved(photo_at(clock.now() + 5), b"jpeg")
    assert outbox.events() == ["offline", "back"]
    assert "after 74 min without one" in outbox.messages[1].body
    # A second outage is a second alert.
    clock.advance(20 * MINUTE)
    alerts.tick(clock.now())
    assert outbox.events() == ["offline", "back", "offline"]


def test_a_camera_dark_from_the_start_is_reported_too(outbox, clock, tmp_path):
    alerts = make_alerts(outbox, clock, tmp_path, offline_after=15)
    clock.advance(15 * MINUTE)
    alerts.tick(clock.now())
    assert outbox.events() == ["offline"]


def test_events_not_chosen_are_not_sent_but_the_state_is_kept(outbox, clock, tmp_path):
    alerts = make_alerts(outbox, clock, tmp_path, offline_after=1, events=("back",))
    clock.advance(2 * MINUTE)
    alerts.tick(clock.now())
    assert outbox.events() == []
    alerts.photo_saved(photo_at(clock.now()), b"jpeg")
    assert outbox.events() == ["back"]


def test_disk_nearly_full_once_per_crossing_with_hysteresis(outbox, clock, tmp_path):
    disk = Disk(50)
    alerts = make_alerts(outbox, clock, tmp_path, disk=disk, disk_free_percent=5)
    for free in (50, 4.9, 3, 4.9, 5.5, 9.9, 4, 2):  # wobbling around 5 %: one alert
        disk.free_percent = free
        alerts.tick(clock.now())
    assert outbox.events() == ["disk"]
    assert "4.9% free" in outbox.messages[0].body
    disk.free_percent = 10  # 5 points above the threshold: re-armed
    alerts.tick(clock.now())
    disk.free_percent = 4
    alerts.tick(clock.now())
    assert outbox.events() == ["disk", "disk"]


def test_disk_alert_off_at_zero_and_silent_when_the_disk_is_unknown(outbox, clock, tmp_path):
    make_alerts(outbox, clock, tmp_path, disk=Disk(0.5), disk_free_percent=0).tick(clock.now())

    def unreadable(_path):
        raise FileNotFoundError(2, "No such file or directory")

    make_alerts(outbox, clock, tmp_path, disk=unreadable).tick(clock.now())
    assert outbox.events() == []


def test_motion_alert_carries_the_photo_at_most_once_per_gap(outbox, clock, tmp_path):
    alerts = make_alerts(outbox, clock, tmp_path, motion_gap=10)
    jpeg = frame_bytes("good-chelsea.jpg")
    start = clock.now()
    for second in range(0, 25 * 60, 30):  # motion every 30 s for 25 minutes
        alerts.photo_saved(photo_at(start + second), jpeg, "motion")
    alerts.photo_saved(photo_at(start + 25 * 60 + 1), jpeg, "interval")
    assert outbox.events() == ["motion", "motion", "motion"]  # at 0, 10 and 20 minutes
    first = outbox.messages[0]
    assert first.photo == jpeg and first.photo_name == photo_name(start)
    assert not first.critical  # a full queue drops these first


def test_interval_photos_send_no_motion_alert(outbox, clock, tmp_path):
    alerts = make_alerts(outbox, clock, tmp_path)
    alerts.photo_saved(photo_at(clock.now()), b"jpeg", "interval")
    assert outbox.events() == []


def test_next_daily_is_the_next_local_time():
    noon = time.mktime((2026, 11, 18, 12, 0, 0, 0, 0, -1))
    assert next_daily(noon, "") is None
    assert time.localtime(next_daily(noon, "20:00"))[:5] == (2026, 11, 18, 20, 0)
    assert time.localtime(next_daily(noon, "08:30"))[:5] == (2026, 11, 19, 8, 30)
    assert time.localtime(next_daily(noon, "12:00"))[:5] == (2026, 11, 19, 12, 0)


def test_daily_summary_counts_photos_rejections_and_offline_hours(outbox, tmp_path):
    start = time.mktime((2026, 11, 18, 6, 0, 0, 0, 0, -1))
    clock = FakeClock(start)
    store = PhotoStore(tmp_path / "photos", tmp_path / "thumbs")
    jpeg = frame_bytes("good-chelsea.jpg")
    alerts = make_alerts(outbox, clock, tmp_path, store=store, daily_at="20:00", offline_after=15)
    status = Status()
    alerts.start(status)
    try:
        for minute in (0, 5, 10, 60, 65):  # 3 photos in the 06:00 hour, 2 in the 07:00
            photo = store.save(jpeg, start + minute * MINUTE)
            alerts.photo_saved(photo, jpeg)
        status.reject("blank")
        status.reject("garbled")
        # Dark from 07:05 to 09:05: offline after 15 minutes, back at 09:05.
        clock.advance(65 * MINUTE + 20 * MINUTE)
        alerts.tick(clock.now())
        clock.advance(100 * MINUTE)
        alerts.photo_saved(store.save(jpeg, clock.now()), jpeg)
        clock.t = time.mktime((2026, 11, 18, 19, 59, 0, 0, 0, -1))
        alerts.photo_saved(store.save(jpeg, clock.now()), jpeg)
        clock.advance(65)
        alerts.tick(clock.now())
        alerts.tick(clock.now() + 60)  # once a day, not once a tick
    finally:
        alerts.stop()
    assert outbox.events() == ["offline", "back", "daily"]
    body = outbox.messages[-1].body
    assert "7 photos taken, 2 frames rejected, 2.0 h offline" in body
    assert f"most active hour: {time.strftime('%H:%M', time.localtime(start))}-" in body


def test_events_default_to_all():
    assert NotifyConfig().events == NOTIFY_EVENTS


def test_the_most_active_hour_is_the_one_with_movement_not_the_most_photos(outbox, tmp_path):
    """Photos carry their activity (camera.meta): the summary names the hour the pet moved
    in, even when another hour has more (still) photos."""
    start = time.mktime((2026, 11, 18, 6, 0, 0, 0, 0, -1))
    clock = FakeClock(start)
    store = PhotoStore(tmp_path / "photos", tmp_path / "thumbs")
    jpeg = frame_bytes("good-chelsea.jpg")
    alerts = make_alerts(outbox, clock, tmp_path, store=store, daily_at="20:00")
    alerts.start(Status())
    try:
        for minute in (0, 5, 10, 15):  # four still photos at 06:xx
            store.save(jpeg, start + minute * MINUTE, meta=PhotoMeta("interval", 0))
        for minute, kind, activity in ((125, "motion", 60), (130, "interval", 40)):  # 08:xx
            store.save(jpeg, start + minute * MINUTE, meta=PhotoMeta(kind, activity))
        clock.t = time.mktime((2026, 11, 18, 20, 0, 5, 0, 0, -1))
        alerts.tick(clock.now())
    finally:
        alerts.stop()
    body = outbox.messages[-1].body
    eight = time.strftime("%H:%M", time.localtime(start + 2 * 3600))
    assert f"most active hour: {eight}-" in body
