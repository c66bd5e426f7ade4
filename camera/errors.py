"""Domain errors of the capture pipeline; the command line turns them into messages."""

from __future__ import annotations


class CameraError(Exception):
    """Base of everything the capture pipeline raises on purpose."""


class CameraUnavailable(CameraError):
    """The camera cannot be opened or stopped delivering frames (unplugged, busy, hung)."""


class Interrupted(CameraError):
    """The grabber was asked to stop in the middle of a capture."""


class CorruptFrame(CameraError):
    """A frame failed validation; ``reason`` is a short stable code for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NoGoodFrame(CameraError):
    """Every frame tried for one photo was rejected."""


class StorageError(CameraError):
    """A photo could not be written; nothing partial was left behind."""


class DataDirError(StorageError):
    """The data dir (or a file in it) cannot be created, read or written."""


class StorageFull(StorageError):
    """The disk is full (or over quota): free space or lower the retention."""


class PhotoNotFound(CameraError, LookupError):
    """No photo of that name is stored (or the name is not one the store writes)."""


class KeepLimitReached(CameraError):
    """As many photos are kept as ``storage.keep_max`` allows: un-keep one first."""
