"""Latency from a timestamp to now, into a histogram, from nopython code.

The clocks themselves (``monotonic_ns``, ``realtime_ns``) live in ``capture/clock.py``.
Kernel packet timestamps are CLOCK_REALTIME, so ``record_age(..., realtime_ns())`` records
how long ago the kernel saw each frame; a clock step shows as outliers, never as a crash
(negative ages count as 0).
"""

from __future__ import annotations

from numba import njit

from .hist import record


@njit(cache=True, nogil=True)
def record_age(counts, stats, h, ts_ns, lo, hi, now_ns):
    """Record ``now_ns - ts_ns[i]`` for ``i`` in ``[lo, hi)`` into histogram ``h``.

    Frames without a timestamp (``ts_ns < 0``) are skipped. Returns the frames recorded.
    """
    k = 0
    for i in range(lo, hi):
        t = ts_ns[i]
        if t >= 0:
            record(counts, stats, h, now_ns - t)
            k += 1
    return k
