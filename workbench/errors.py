"""The project's small exception tree (after dpkt's ``Error > UnpackError > NeedData``).

Every error names where it happened: the file, the frame (0-based packet index) and the
byte offset inside the file, so that ``xxd -s OFFSET FILE`` shows the damage.
Jitted code never raises: it returns status codes (``wire/status.py``) and the Python
face turns them into these exceptions.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A setting is missing, of the wrong type or out of range; the message names it."""


class CaptureError(WorkbenchError):
    """A capture file cannot be read (missing, not a capture, damaged).

    ``path`` is the file, ``offset`` the byte offset of the damage (or None),
    ``frame`` the index of the first frame that could not be read (or None).
    """

    def __init__(self, path, reason: str, offset: int | None = None, frame: int | None = None):
        self.path = str(path)
        self.reason = reason
        self.offset = offset
        self.frame = frame
        where = self.path
        if frame is not None:
            where += f" frame {frame}"
        if offset is not None:
            where += f" +0x{offset:x} (byte {offset})"
        super().__init__(f"{where}: {reason}")


class CaptureTruncated(CaptureError):
    """The capture ends in the middle of a record; every record before it was read."""


class WireError(WorkbenchError):
    """A packet failed to decode; raised only by Python faces, never by kernels."""

    def __init__(self, path, frame: int, offset: int, reason: str):
        self.path, self.frame, self.offset, self.reason = str(path), frame, offset, reason
        super().__init__(f"{path} frame {frame} +0x{offset:x}: {reason}")


class MarketError(WorkbenchError):
    """A market snapshot file or row is missing or inconsistent; the message names file, row and column."""


class ChainError(WorkbenchError):
    """Chain data cannot be used: an account that does not decode (missing, wrong owner or size,
    truncated) or an RPC endpoint that fails. ``where`` names the account address, or the URL
    and method; nothing of a half-fetched snapshot is kept."""

    def __init__(self, where: str, reason: str):
        self.where, self.reason = str(where), reason
        super().__init__(f"{where}: {reason}")


class ModelError(WorkbenchError):
    """A model folder cannot be used: a file is missing, damaged or does not match the engine."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class ParityError(ModelError):
    """Two scorers of a compiled model disagree by more than the tolerance on the validation set."""


class TuneError(WorkbenchError):
    """Host tuning cannot go on: no such interface, a plan value that is not valid, not root;
    the message names the interface, the plan file and change, or the setting."""


class StoreError(WorkbenchError):
    """The store cannot do what was asked; the message says what is wrong and what to do."""


class StoreUnavailable(StoreError):
    """The server cannot be reached now (down, network, overload): worth spooling and retrying."""
