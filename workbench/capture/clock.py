"""Nanosecond clocks callable from nopython code.

``monotonic_ns()`` calls libc's ``clock_gettime(CLOCK_MONOTONIC)`` (a vDSO call: no system call)
by symbol name through a numba intrinsic, so functions that use it stay disk-cacheable
(no ctypes address is baked into the compiled code). Event time is the packet
timestamp; this clock only measures processing cost ("wall time").

``realtime_ns()`` reads ``CLOCK_REALTIME`` the same way. Kernel packet timestamps
(AF_PACKET ring headers, ``SO_TIMESTAMPNS``) are CLOCK_REALTIME, so the latency from
"the kernel saw the packet" to "the engine scored it" is ``realtime_ns() - ts_ns``
(``metrics/clock.py record_age``). CLOCK_REALTIME can step (NTP, settimeofday); a step during
a run shows as outliers in that histogram, never as a crash (negative ages count as 0).

They live in capture/, the lowest layer that needs them (the split capture process's copy
loop), so that every layer above uses the same two clocks.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CLOCK_REALTIME = 0    # Linux <time.h>: wall-clock time, the clock of kernel packet timestamps
CLOCK_MONOTONIC = 1   # Linux <time.h>


def _clock_gettime_ns(builder, clock_id: int):
    """IR: ``clock_gettime(clock_id, &ts); return ts.tv_sec * 1e9 + ts.tv_nsec``."""
    i64 = ir.IntType(64)
    i32 = ir.IntType(32)
    ts_t = ir.LiteralStructType([i64, i64])
    fnty = ir.FunctionType(i32, [i32, ts_t.as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
    ts = cgutils.alloca_once(builder, ts_t)
    builder.call(fn, [ir.Constant(i32, clock_id), ts])
    sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
    nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
    return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)


@intrinsic
def _clock_monotonic_ns(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        return _clock_gettime_ns(builder, CLOCK_MONOTONIC)

    return sig, codegen


@intrinsic
def _clock_realtime_ns(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        return _clock_gettime_ns(builder, CLOCK_REALTIME)

    return sig, codegen


@njit(cache=True, nogil=True)
def monotonic_ns():
    """Nanoseconds of CLOCK_MONOTONIC, the same clock as Python's ``time.monotonic_ns()``."""
    return _clock_monotonic_ns()


@njit(cache=True, nogil=True)
def realtime_ns():
    """Nanoseconds of CLOCK_REALTIME since the Unix epoch, as Python's ``time.time_ns()``."""
    return _clock_realtime_ns()
