"""``puccicam photos``: every photo with its time, kind, activity and kept mark."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from camera.meta import PhotoMeta
from camera.store import PhotoStore
from puccicam.cli import main
from puccicam.listing import BadTime, parse_since
from tests.helpers.fakes import EPOCH

NOW = EPOCH


@pytest.fixture
def data_dir(tmp_path, good_frame):
    """Three photos: an old interval one, a motion one (kept), one without metadata."""
    data = tmp_path / "data"
    store = PhotoStore(data / "photos")
    store.save(good_frame, EPOCH - 3 * 3600, meta=PhotoMeta("interval", 3))
    kept = store.save(good_frame, EPOCH - 1799.75, meta=PhotoMeta("motion", 41))
    store.save(good_frame, EPOCH - 60)
    (data / "kept").mkdir()
    (data / "kept" / kept.name).touch()
    return data


def _photos(data, *args):
    return CliRunner().invoke(main, ["photos", "--data-dir", str(data), *args])


def test_one_line_per_photo_oldest_first(data_dir):
    result = _photos(data_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        "20261118T080640.000Z.jpg  2026-11-18T08:06:40.000Z  interval    3",
        "20261118T103640.250Z.jpg  2026-11-18T10:36:40.250Z  motion     41  kept",
        "20261118T110540.000Z.jpg  2026-11-18T11:05:40.000Z  interval    -",
    ]


def test_json_is_an_array_of_objects(data_dir):
    result = _photos(data_dir, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[1] == {
        "name": "20261118T103640.250Z.jpg",
        "taken_at": "2026-11-18T10:36:40.250Z",
        "kind": "motion",
        "activity": 41,
        "kept": True,
    }
    assert [r["kept"] for r in rows] == [False, True, False]
    assert rows[2]["activity"] is None
    for row in rows:  # the capture time parses back as UTC ISO 8601
        assert datetime.fromisoformat(row["taken_at"]).tzinfo == UTC


def test_since_takes_iso_8601(data_dir):
    result = _photos(data_dir, "--since", "2026-11-18T10:00:00Z", "--json")
    assert [r["kind"] for r in json.loads(result.output)] == ["motion", "interval"]


def test_since_takes_a_relative_age(data_dir, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    result = _photos(data_dir, "--since", "2h")
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2
    assert len(_photos(data_dir, "--since", "10m").output.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - 1800),
        ("2h", NOW - 7200),
        ("1.5d", NOW - 1.5 * 86400),
        ("90s", NOW - 90),
        ("2026-11-18T11:06:40Z", EPOCH),
        ("2026-11-18T11:06:40+00:00", EPOCH),
        ("2026-11-18T12:06:40+01:00", EPOCH),
        ("2026-11-18 11:06:40", EPOCH),  # no zone: UTC
        ("2026-11-18", EPOCH - (11 * 3600 + 6 * 60 + 40)),
    ],
)
def test_parse_since(text, expected):
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["yesterday", "2x", "-2h", "2026-13-01", "", "h", "1e9h"])
def test_a_bad_since_is_a_clear_error(data_dir, text):
    with pytest.raises(BadTime, match="is not a time: give ISO 8601"):
        parse_since(text, NOW)
    result = _photos(data_dir, "--since", text)
    assert result.exit_code == 2
    assert "Invalid value for '--since'" in result.output and "30m, 2h" in result.output
    assert "Traceback" not in result.output


def test_an_empty_data_dir_lists_nothing(tmp_path):
    result = _photos(tmp_path / "none")
    assert result.exit_code == 0 and result.output == ""
    assert json.loads(_photos(tmp_path / "none", "--json").output) == []
