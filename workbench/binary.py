"""Jitted integer reads and writes on ``uint8`` arrays, below every layer.

Callers check bounds first (``n <= end - off``); these helpers do not. ``swap`` selects
big-endian for the formats (pcap, pcapng) whose byte order is the writer's.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def u16le(b, i):
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def u16be(b, i):
    return (np.int64(b[i]) << 8) | np.int64(b[i + 1])


@njit(cache=True, nogil=True, inline="always")
def u32le(b, i):
    return (np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16)
            | (np.int64(b[i + 3]) << 24))


@njit(cache=True, nogil=True, inline="always")
def u32be(b, i):
    return ((np.int64(b[i]) << 24) | (np.int64(b[i + 1]) << 16) | (np.int64(b[i + 2]) << 8)
            | np.int64(b[i + 3]))


@njit(cache=True, nogil=True, inline="always")
def u64le(b, i):
    """Unsigned 64-bit little-endian read, returned as uint64."""
    return np.uint64(u32le(b, i)) | (np.uint64(u32le(b, i + 4)) << np.uint64(32))


@njit(cache=True, nogil=True, inline="always")
def u16(b, i, swap):
    return u16be(b, i) if swap else u16le(b, i)


@njit(cache=True, nogil=True, inline="always")
def u32(b, i, swap):
    return u32be(b, i) if swap else u32le(b, i)


@njit(cache=True, nogil=True, inline="always")
def put_u32(b, i, v, swap):
    v = np.int64(v)
    if swap:
        b[i] = (v >> 24) & 0xFF
        b[i + 1] = (v >> 16) & 0xFF
        b[i + 2] = (v >> 8) & 0xFF
        b[i + 3] = v & 0xFF
    else:
        b[i] = v & 0xFF
        b[i + 1] = (v >> 8) & 0xFF
        b[i + 2] = (v >> 16) & 0xFF
        b[i + 3] = (v >> 24) & 0xFF
