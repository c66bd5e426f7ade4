"""Walks a JPEG's marker structure without decoding it.

This is the cheap first half of validation: it catches frames that are not JPEG at all,
frames cut short (no end-of-image marker, the commonest USB failure), and frames whose
restart markers show that data was lost. It accepts what working webcams really send:
no Huffman tables (MJPEG relies on the standard ones), fill bytes, zero padding after
the end marker, and any bytes between a scan's data and its next marker (libjpeg warns
about those and the decoder step decides).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from camera.errors import CorruptFrame

SOI, EOI, SOS, DHT, DRI, TEM = 0xD8, 0xD9, 0xDA, 0xC4, 0xDD, 0x01
SUPPORTED_SOF = {0xC0: False, 0xC1: False, 0xC2: True}  # marker -> progressive
OTHER_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
RST0, RST7 = 0xD0, 0xD7
MAX_SIDE = 8192  # larger than any webcam frame; a garbled header would ask for gigabytes


@dataclass(frozen=True)
class JpegInfo:
    """What the marker walk learned about a frame."""

    width: int
    height: int
    components: int
    progressive: bool
    huffman_tables: bool
    restart_interval: int
    restart_markers: int
    trailing_bytes: int


def _truncated(detail: str) -> CorruptFrame:
    return CorruptFrame("truncated", detail)


def _garbled(detail: str) -> CorruptFrame:
    return CorruptFrame("garbled", detail)


def _skip_scan(data: bytes, start: int) -> tuple[int, int]:
    """Skip one scan's entropy-coded data; return (offset of the next marker, RSTs seen).

    Inside the data 0xFF is followed by 0x00 (a stuffed byte), 0xFF (fill) or a restart
    marker RST0..RST7 in strict rotation; anything else ends the scan.
    """
    n = len(data)
    pos, restarts = start, 0
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0 or ff + 1 >= n:
            raise _truncated("the frame ends inside the image data (no end-of-image marker)")
        code = data[ff + 1]
        if code in (0x00, 0xFF):
            pos = ff + (2 if code == 0x00 else 1)
        elif RST0 <= code <= RST7:
            if code - RST0 != restarts % 8:
                raise _garbled(
                    f"restart marker RST{code - RST0} came where RST{restarts % 8} was due "
                    "(image data was lost in transfer)"
                )
            restarts += 1
            pos = ff + 2
        else:
            return ff, restarts


def _mcu_count(width: int, height: int, sampling: list[tuple[int, int]]) -> int:
    if len(sampling) == 1:
        return math.ceil(width / 8) * math.ceil(height / 8)
    hmax = max(h for h, _ in sampling)
    vmax = max(v for _, v in sampling)
    return math.ceil(width / (8 * hmax)) * math.ceil(height / (8 * vmax))


def _frame_header(body: bytes) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(width, height) and each component's sampling factors from an SOF segment."""
    if len(body) < 6:
        raise _garbled("the frame header is too short")
    height = int.from_bytes(body[1:3], "big")
    width = int.from_bytes(body[3:5], "big")
    count = body[5]
    if (
        not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE)
        or count not in (1, 3)
        or len(body) < 6 + 3 * count
    ):
        raise CorruptFrame(
            "unsupported", f"frame header says {width}x{height} with {count} components"
        )
    sampling = [(body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count)]
    if any(h == 0 or v == 0 for h, v in sampling):
        raise _garbled("the frame header has a zero sampling factor")
    return (width, height), sampling


def inspect(data: bytes) -> JpegInfo:
    """Return the frame's structure, or raise CorruptFrame saying what is wrong with it."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != SOI:
        head = data[:8].hex(" ") if data else "nothing"
        raise CorruptFrame(
            "not_jpeg", f"does not start with a JPEG start-of-image marker (starts with {head})"
        )
    pos = 2
    size: tuple[int, int] | None = None
    sampling: list[tuple[int, int]] = []
    progressive = huffman = False
    interval = restarts = scans = 0
    while True:
        if pos >= n:
            raise _truncated("the frame ends before its end-of-image marker")
        if data[pos] != 0xFF:
            raise _garbled(f"expected a marker at byte {pos}, found 0x{data[pos]:02x}")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise _truncated("the frame ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == EOI:
            if scans == 0:
                raise _garbled("the end-of-image marker comes before any image data")
            break
        if marker == TEM:
            continue
        if marker in (0x00, SOI) or RST0 <= marker <= RST7:
            raise _garbled(f"unexpected marker 0x{marker:02x} at byte {pos - 2}")
        if pos + 2 > n:
            raise _truncated("the frame ends inside a segment header")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2:
            raise _garbled(f"segment 0x{marker:02x} at byte {pos - 2} has a bad length {length}")
        if end > n:
            raise _truncated(f"the frame ends inside segment 0x{marker:02x}")
        body = data[pos + 2 : end]
        if marker in SUPPORTED_SOF:
            size, sampling = _frame_header(body)
            progressive = SUPPORTED_SOF[marker]
        elif marker in OTHER_SOF:
            raise CorruptFrame(
                "unsupported", f"lossless, hierarchical or arithmetic JPEG (0x{marker:02x})"
            )
        elif marker == DHT:
            huffman = True
        elif marker == DRI and len(body) >= 2:
            interval = int.from_bytes(body[:2], "big")
        elif marker == SOS:
            if size is None:
                raise _garbled("image data comes before the frame header")
            scans += 1
            pos, seen = _skip_scan(data, end)
            restarts += seen
            in_scan = body[0] if body else 0
            if interval and not progressive and in_scan == len(sampling):
                expected = math.ceil(_mcu_count(*size, sampling) / interval) - 1
                if seen != expected:
                    raise _garbled(
                        f"{seen} restart markers where {expected} were due "
                        "(image data was lost in transfer)"
                    )
            continue
        pos = end
    assert size is not None  # a scan was seen, so was its frame header
    return JpegInfo(
        width=size[0],
        height=size[1],
        components=len(sampling),
        progressive=progressive,
        huffman_tables=huffman,
        restart_interval=interval,
        restart_markers=restarts,
        trailing_bytes=n - pos,
    )
