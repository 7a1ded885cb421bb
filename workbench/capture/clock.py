"""CLOCK_MONOTONIC for the capture process's copy loop (capture/split.py), in nopython code.

The capture layer sits below metrics/, so it cannot use ``metrics/clock.py``; this is
the same call (libc's ``clock_gettime`` by symbol name through a numba intrinsic, so a
function that uses it stays disk-cacheable: no ctypes address is baked into its code).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

CLOCK_MONOTONIC = 1   # Linux <time.h>


@intrinsic
def _clock_monotonic_ns(typingctx):
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        ts_t = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, ts_t.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, ts_t)
        builder.call(fn, [ir.Constant(i32, CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


@njit(cache=True, nogil=True)
def monotonic_ns():
    """Nanoseconds of CLOCK_MONOTONIC, the same clock as Python's ``time.monotonic_ns()``."""
    return _clock_monotonic_ns()
