"""Joining VP8 Matroska files made by the same encoder into one WebM, without re-encoding.

The time-lapse is kept as one segment per hour; the day's file is those segments one
after another. OpenCV can write VP8 but not copy streams, so this is the small part of
a Matroska muxer that is needed: take the header and the track of the first segment,
then every segment's clusters with their timecodes moved on by the segments before. A
cluster's blocks hold times relative to their cluster, and every segment starts with a
key frame, so nothing inside a block changes. Costs a copy of the bytes (milliseconds
for a day), never a decode.

The segments are Matroska (``.mkv``), not WebM: OpenCV prints a line to stderr for
every WebM file it opens ("tag VP80 is not supported with codec id 139"), which under
systemd would be one unfiltered journal line per photo. The join writes the WebM
document type and leaves out what only Matroska has (CRC-32 elements, which would no
longer match once a timecode moves, and the segment UID), so browsers play the result
as WebM.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
INFO = 0x1549A966
TRACKS = 0x1654AE6B
CLUSTER = 0x1F43B675
TIMECODE_SCALE = 0x2AD7B1
DURATION = 0x4489
CLUSTER_TIMECODE = 0xE7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
TRACK_ENTRY = 0xAE
TRACK_UID = 0x73C5
DOC_TYPE = 0x4282
CRC32 = 0xBF
SEGMENT_UID = 0x73A4
# Dropped from everything copied: see the module's docstring.
NOT_COPIED = {CRC32, SEGMENT_UID, DURATION}
UNKNOWN_SIZE = -1


class WebmError(ValueError):
    """A file is not a WebM file this module can join."""


def _vint(data: bytes, pos: int, *, keep_marker: bool = False) -> tuple[int, int]:
    """An EBML variable-length integer at ``pos``: its value and the position after it."""
    if pos >= len(data):
        raise WebmError("truncated element")
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or pos + length > len(data):
        raise WebmError("bad variable-length integer")
    value = first if keep_marker else first & (mask - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return UNKNOWN_SIZE, pos + length
    return value, pos + length


def elements(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """(id, element start, data start, end) of each element in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        head = pos
        element_id, pos = _vint(data, pos, keep_marker=True)
        size, pos = _vint(data, pos)
        stop = end if size == UNKNOWN_SIZE else pos + size
        if stop > end:
            raise WebmError("element runs past its parent")
        yield element_id, head, pos, stop
        pos = stop


def _id_bytes(element_id: int) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def _size_bytes(size: int) -> bytes:
    length = 1
    while size >= (1 << (7 * length)) - 1:
        length += 1
    return ((1 << (7 * length)) | size).to_bytes(length, "big")


def element(element_id: int, payload: bytes) -> bytes:
    return _id_bytes(element_id) + _size_bytes(len(payload)) + payload


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


class _Segment:
    """The parts of one WebM file the join needs."""

    def __init__(self, data: bytes) -> None:
        self.header = b""
        self.info = b""
        self.tracks = b""
        self.clusters: list[tuple[int, list[bytes]]] = []  # (timecode, children)
        self.last_block = -1  # the latest block time, in timecode units
        self.blocks = 0
        for element_id, _head, start, end in elements(data):
            if element_id == EBML_HEADER:
                self.header = data[start:end]
            elif element_id == SEGMENT:
                self._segment(data, start, end)
        if not self.header or not self.tracks:
            raise WebmError("no EBML header or no track")

    def _segment(self, data: bytes, start: int, end: int) -> None:
        for element_id, _head, s, e in elements(data, start, end):
            if element_id == INFO:
                self.info = data[s:e]
            elif element_id == TRACKS:
                self.tracks = data[s:e]
            elif element_id == CLUSTER:
                self._cluster(data, s, e)

    def _cluster(self, data: bytes, start: int, end: int) -> None:
        timecode = 0
        children = []
        for element_id, head, s, e in elements(data, start, end):
            if element_id == CLUSTER_TIMECODE:
                timecode = int.from_bytes(data[s:e], "big")
                continue
            if element_id != CRC32:
                children.append(data[head:e])
            block = None
            if element_id == SIMPLE_BLOCK:
                block = (s, e)
            elif element_id == BLOCK_GROUP:
                block = next(
                    ((bs, be) for i, _h, bs, be in elements(data, s, e) if i == BLOCK), None
                )
            if block is not None:
                self.blocks += 1
                _track, at = _vint(data, block[0])
                (relative,) = struct.unpack(">h", data[at : at + 2])
                self.last_block = max(self.last_block, timecode + relative)
        self.clusters.append((timecode, children))

    def track_shape(self) -> bytes:
        """The track without its random UID: equal for files the same encoder made
        at the same size and rate."""
        shape = b""
        for element_id, head, s, e in elements(self.tracks):
            if element_id == TRACK_ENTRY:
                shape += b"".join(
                    self.tracks[h:end]
                    for i, h, _s, end in elements(self.tracks, s, e)
                    if i != TRACK_UID
                )
            elif element_id != CRC32:
                shape += self.tracks[head:e]
        return shape

    def timecode_scale(self) -> int:
        for element_id, _head, s, e in elements(self.info):
            if element_id == TIMECODE_SCALE:
                return int.from_bytes(self.info[s:e], "big")
        return 1_000_000


def frame_count(data: bytes) -> int:
    """How many frames (blocks) a WebM file holds.

    :raises WebmError: it is not a whole WebM file."""
    return _Segment(data).blocks


def join(paths: list[Path], frame_ms: float) -> bytes:
    """One WebM holding the frames of ``paths`` in order, each file's first frame
    ``frame_ms`` after the previous file's last.

    :raises WebmError: a file is not WebM, or its track differs from the first's.
    """
    if not paths:
        raise WebmError("nothing to join")
    first: _Segment | None = None
    clusters = []
    offset = 0
    for path in paths:
        segment = _Segment(Path(path).read_bytes())
        if first is None:
            first = segment
        elif segment.track_shape() != first.track_shape():
            raise WebmError(f"{Path(path).name}: its track differs from the first file's")
        scale_ms = segment.timecode_scale() / 1e6
        step = round(frame_ms / scale_ms)
        for timecode, children in segment.clusters:
            payload = element(CLUSTER_TIMECODE, _uint(timecode + offset)) + b"".join(children)
            clusters.append(element(CLUSTER, payload))
        offset += max(segment.last_block, 0) + step
    assert first is not None
    header = _copy(first.header, {DOC_TYPE: element(DOC_TYPE, b"webm")})
    info = _copy(first.info) + element(DURATION, struct.pack(">d", float(offset)))
    body = element(INFO, info) + element(TRACKS, _copy(first.tracks)) + b"".join(clusters)
    return element(EBML_HEADER, header) + element(SEGMENT, body)


def _copy(data: bytes, replace: dict[int, bytes] | None = None) -> bytes:
    """The elements of ``data`` but those :data:`NOT_COPIED`, some replaced."""
    replace = replace or {}
    return b"".join(
        replace.get(element_id, data[head:end])
        for element_id, head, _s, end in elements(data)
        if element_id not in NOT_COPIED
    )
