"""``puccicam photos``: the stored photos with their time, kind, activity and kept mark.

Kept here rather than in the CLI module so the command stays a few lines: parsing
``--since`` (ISO 8601 or a relative age such as ``2h``) and building one row per photo.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from camera.store import PhotoStore

_RELATIVE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class BadTime(ValueError):
    """``--since`` is neither ISO 8601 nor a relative age; the message shows both forms."""


def parse_since(text: str, now: float) -> float:
    """The moment ``text`` names: ISO 8601 (without a zone: UTC) or an age like ``30m``,
    ``2h``, ``1.5d`` before ``now``.

    :raises BadTime: naming what was given and what is accepted.
    """
    stripped = text.strip()
    relative = _RELATIVE.fullmatch(stripped.lower())
    if relative:
        return now - float(relative[1]) * _UNITS[relative[2]]
    try:
        moment = datetime.fromisoformat(stripped.replace("z", "Z"))
    except ValueError:
        raise BadTime(
            f"{text!r} is not a time: give ISO 8601 (2026-11-18T07:30:00Z, "
            "2026-11-18 07:30, 2026-11-18; without a zone it is UTC) or an age "
            "(90s, 30m, 2h, 1.5d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(taken_at: float) -> str:
    """A capture time in UTC, ISO 8601 with milliseconds: ``2026-11-18T11:06:40.000Z``."""
    moment = datetime.fromtimestamp(taken_at, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def photo_rows(store: PhotoStore, since: float | None, kept: set[str]) -> list[dict]:
    """One dict per photo taken since ``since`` (all if None), oldest first."""
    rows = []
    for photo in store.photos(since=since):
        meta = store.meta(photo.name)
        rows.append(
            {
                "name": photo.name,
                "taken_at": iso(photo.taken_at),
                "kind": meta.kind,
                "activity": meta.activity,
                "kept": photo.name in kept,
            }
        )
    return rows


def line(row: dict) -> str:
    """A row as one line of text: name, time, kind, activity (``-`` unknown), kept."""
    activity = "-" if row["activity"] is None else str(row["activity"])
    return (
        f"{row['name']}  {row['taken_at']}  {row['kind']:<8}  {activity:>3}"
        f"{'  kept' if row['kept'] else ''}"
    )
