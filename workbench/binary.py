"""Jitted integer reads and writes on ``uint8`` arrays, below every layer.

Callers check bounds first (``n <= end - off``); these helpers do not. ``swap`` selects
big-endian for the formats (pcap, pcapng) whose byte order is the writer's.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

PREFETCH_AHEAD = 16384   # bytes: how far ahead of the walk the sequential prefetch runs
CACHE_LINE = 64          # bytes


@intrinsic
def prefetch(typingctx, arr, idx):
    """``llvm.prefetch`` (read, high locality) of the cache line holding ``arr[idx]``.

    A walk over variable-length records reads one header every few cache lines, which
    the hardware prefetcher does not recognise as a stream: every header is a DRAM miss.
    Prefetching every line ahead of the walk turns it into a sequential stream
    (benchmarks/bench_pcap_walk.py measures the walk). No bounds check: callers
    keep ``idx`` inside the array (a prefetch never faults, but stay honest).
    """
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False,
                                       boundscheck=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def prefetch_range(buf, pf, pos, end):
    """Prefetch lines from ``pf`` up to ``min(pos + PREFETCH_AHEAD, end)``; returns the new ``pf``."""
    lim = min(pos + PREFETCH_AHEAD, end)
    while pf < lim:
        prefetch(buf, pf)
        pf += CACHE_LINE
    return pf


@njit(cache=True, nogil=True, inline="always")
def prefetch_upto(buf, pf, pos):
    """Prefetch lines from ``pf`` up to ``pos + PREFETCH_AHEAD`` (within ``buf``); returns the new ``pf``."""
    return prefetch_range(buf, pf, pos, buf.shape[0])


# Byte reads index with an unsigned position: a signed index gets a negative-index wraparound
# (a compare and a select) on every byte, which also keeps LLVM from merging a multi-byte read
# into one load. Callers check bounds first, so the position is never negative. The position
# is converted once per read: an inlined helper per byte made every caller's IR larger, and
# the first run's compile with it.
_B1 = np.uint64(1)
_B2 = np.uint64(2)
_B3 = np.uint64(3)


@njit(cache=True, nogil=True, inline="always")
def u16le(b, i):
    j = np.uint64(i)
    return np.int64(b[j]) | (np.int64(b[j + _B1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def u16be(b, i):
    j = np.uint64(i)
    return (np.int64(b[j]) << 8) | np.int64(b[j + _B1])


@njit(cache=True, nogil=True, inline="always")
def u32le(b, i):
    j = np.uint64(i)
    return (np.int64(b[j]) | (np.int64(b[j + _B1]) << 8) | (np.int64(b[j + _B2]) << 16)
            | (np.int64(b[j + _B3]) << 24))


@njit(cache=True, nogil=True, inline="always")
def u32be(b, i):
    j = np.uint64(i)
    return ((np.int64(b[j]) << 24) | (np.int64(b[j + _B1]) << 16) | (np.int64(b[j + _B2]) << 8)
            | np.int64(b[j + _B3]))


@njit(cache=True, nogil=True, inline="always")
def u64le(b, i):
    """Unsigned 64-bit little-endian read, returned as uint64."""
    return np.uint64(u32le(b, i)) | (np.uint64(u32le(b, np.int64(i) + 4)) << np.uint64(32))


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
