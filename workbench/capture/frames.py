"""FrameBatch: the unit of work every source hands to the engine.

A batch is a ``uint8`` buffer that is a VIEW (an ``np.memmap`` of a capture file, a block
of an AF_PACKET ring; never a copy) plus parallel per-frame arrays. ``off`` indexes
``buf``; for file sources ``buf`` is the whole file, so ``off`` is also the frame's byte
offset in the file, which is what error messages print.

It is a NamedTuple of arrays and ints, so numba takes it as one argument.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..linktypes import LINKTYPE_ETHERNET

TS_MISSING = -1            # ts_ns of a frame whose capture carries no timestamp (pcapng SPB)


class FrameBatch(NamedTuple):
    """Frames ``[first_index, first_index + n)`` of one source.

    buf         uint8[:]  the source's bytes (a view: memmap or ring block)
    off         int64[n]  offset of each frame's first byte in ``buf``
    caplen      int32[n]  bytes of the frame present in ``buf``
    wirelen     int32[n]  bytes the frame had on the wire (>= caplen)
    ts_ns       int64[n]  capture / kernel timestamp, ns since the Unix epoch (TS_MISSING if none)
    linktype    int32[n]  link type of each frame (pcapng interfaces may differ)
    first_index int       index of frame 0 of this batch within its source
    """

    buf: np.ndarray
    off: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    first_index: int

    @property
    def n(self) -> int:
        return int(self.off.shape[0])

    def frame(self, i: int) -> memoryview:
        """Bytes of frame ``i`` (a view, for notebooks and tests)."""
        o = int(self.off[i])
        return memoryview(self.buf)[o:o + int(self.caplen[i])]


def empty_columns(n: int):
    """Preallocated per-frame columns for a reader filling up to ``n`` frames."""
    return (np.empty(n, np.int64), np.empty(n, np.int32), np.empty(n, np.int32),
            np.empty(n, np.int64), np.empty(n, np.int32))


def batch_from_frames(frames, ts_ns=None, linktype: int = LINKTYPE_ETHERNET, first_index: int = 0) -> FrameBatch:
    """A batch built from a list of ``bytes`` frames (tests, notebooks, the UDP source).

    This one copies: it concatenates the frames into one buffer.
    """
    lens = np.fromiter((len(f) for f in frames), np.int64, len(frames))
    off = np.zeros(len(frames), np.int64)
    if len(frames):
        off[1:] = np.cumsum(lens)[:-1]
    buf = np.frombuffer(b"".join(frames), np.uint8) if frames else np.zeros(0, np.uint8)
    if ts_ns is None:
        ts = np.arange(len(frames), dtype=np.int64) * 1000
    else:
        ts = np.asarray(ts_ns, np.int64)
    return FrameBatch(buf, off, lens.astype(np.int32), lens.astype(np.int32), ts,
                      np.full(len(frames), linktype, np.int32), first_index)
