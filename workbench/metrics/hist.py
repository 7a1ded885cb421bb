"""HDR-style log-linear histograms of int64 values (ns), in numba.

Values below 2**SUB_BITS have a bucket each; above, every power-of-two range is split
into HALF = 2**(SUB_BITS-1) equal buckets (as HdrHistogram does with 2 significant
digits), so a recorded value is known to within 1/HALF (< 0.8%) of itself, from 0 to
2**63. Record is a few integer ops, no allocation, safe in the hot loop.

Storage (arrays, so a whole set lives in EngineState and snapshots with it):
``counts`` int64[H, N_BUCKETS] and ``stats`` int64[H, STATS_COLS] (count, min, max, sum).
Percentiles return the highest value equivalent to the bucket (HdrHistogram's
``valueAtPercentile``), clamped to the recorded max.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SUB_BITS = 8
SUB = 1 << SUB_BITS              # values below this are exact
HALF = SUB >> 1                  # buckets per power of two above SUB
N_BUCKETS = (63 - SUB_BITS) * HALF + SUB     # the last bucket ends at 2**63 - 1
RELATIVE_ERROR = 1.0 / HALF      # worst relative error of a recorded value (a bucket's width / its low end)
ST_COUNT, ST_MIN, ST_MAX, ST_SUM = 0, 1, 2, 3
STATS_COLS = 4


@njit(cache=True, nogil=True, inline="always")
def _msb(v):
    """Index of the highest set bit of v > 0."""
    r = 0
    if v >= np.int64(1) << 32:
        v >>= 32
        r += 32
    if v >= 1 << 16:
        v >>= 16
        r += 16
    if v >= 1 << 8:
        v >>= 8
        r += 8
    if v >= 1 << 4:
        v >>= 4
        r += 4
    if v >= 1 << 2:
        v >>= 2
        r += 2
    if v >= 1 << 1:
        r += 1
    return r


@njit(cache=True, nogil=True, inline="always")
def bucket_of(v):
    if v < SUB:
        return v if v > 0 else 0
    shift = _msb(v) - (SUB_BITS - 1)
    return shift * HALF + (v >> shift)


@njit(cache=True, nogil=True, inline="always")
def bucket_low(i):
    """Smallest value of bucket i."""
    if i < SUB:
        return np.int64(i)
    shift = i // HALF - 1
    return np.int64(i - shift * HALF) << shift


@njit(cache=True, nogil=True, inline="always")
def bucket_high(i):
    """Largest value of bucket i."""
    if i < SUB:
        return np.int64(i)
    shift = i // HALF - 1
    return ((np.int64(i - shift * HALF) + 1) << shift) - 1


@njit(cache=True, nogil=True, inline="always")
def record(counts, stats, h, v):
    """Add value v (negative values count as 0) to histogram h."""
    if v < 0:
        v = 0
    counts[h, bucket_of(v)] += 1
    if stats[h, ST_COUNT] == 0 or v < stats[h, ST_MIN]:
        stats[h, ST_MIN] = v
    if v > stats[h, ST_MAX]:
        stats[h, ST_MAX] = v
    stats[h, ST_COUNT] += 1
    stats[h, ST_SUM] += v


@njit(cache=True, nogil=True)
def merge(counts, stats, h, other_counts, other_stats, oh):
    """Add histogram oh of (other_counts, other_stats) into h."""
    if other_stats[oh, ST_COUNT] == 0:
        return
    for i in range(N_BUCKETS):
        counts[h, i] += other_counts[oh, i]
    if stats[h, ST_COUNT] == 0 or other_stats[oh, ST_MIN] < stats[h, ST_MIN]:
        stats[h, ST_MIN] = other_stats[oh, ST_MIN]
    if other_stats[oh, ST_MAX] > stats[h, ST_MAX]:
        stats[h, ST_MAX] = other_stats[oh, ST_MAX]
    stats[h, ST_COUNT] += other_stats[oh, ST_COUNT]
    stats[h, ST_SUM] += other_stats[oh, ST_SUM]


@njit(cache=True, nogil=True)
def percentile(counts, stats, h, q):
    """Value at percentile q in [0, 100] of histogram h; -1 if it is empty."""
    n = stats[h, ST_COUNT]
    if n == 0:
        return np.int64(-1)
    if q <= 0.0:
        return stats[h, ST_MIN]
    rank = np.int64(np.ceil(q / 100.0 * n))
    if rank < 1:
        rank = 1
    seen = 0
    for i in range(N_BUCKETS):
        seen += counts[h, i]
        if seen >= rank:
            v = bucket_high(i)
            return v if v < stats[h, ST_MAX] else stats[h, ST_MAX]
    return stats[h, ST_MAX]


def new_histograms(n: int):
    """(counts, stats) for n empty histograms."""
    return np.zeros((n, N_BUCKETS), np.int64), np.zeros((n, STATS_COLS), np.int64)


class Histogram:
    """Python face over one row of a histogram set (summaries, notebooks, tests)."""

    def __init__(self, counts=None, stats=None, h: int = 0, name: str = "value_ns"):
        if counts is None:
            counts, stats = new_histograms(1)
        self.counts, self.stats, self.h, self.name = counts, stats, h, name

    def record(self, v: int) -> None:
        record(self.counts, self.stats, self.h, int(v))

    def record_many(self, values) -> None:
        _record_many(self.counts, self.stats, self.h, np.asarray(values, np.int64))

    def merge(self, other: "Histogram") -> None:
        merge(self.counts, self.stats, self.h, other.counts, other.stats, other.h)

    @property
    def count(self) -> int:
        return int(self.stats[self.h, ST_COUNT])

    @property
    def min(self) -> int:
        return int(self.stats[self.h, ST_MIN]) if self.count else -1

    @property
    def max(self) -> int:
        return int(self.stats[self.h, ST_MAX]) if self.count else -1

    @property
    def mean(self) -> float:
        return self.stats[self.h, ST_SUM] / self.count if self.count else float("nan")

    def percentile(self, q: float) -> int:
        return int(percentile(self.counts, self.stats, self.h, float(q)))

    def percentiles(self, qs=(50, 90, 99, 99.9)) -> dict[str, int]:
        return {f"p{q:g}": self.percentile(q) for q in qs}

    def buckets(self):
        """(low, high, count) arrays of the non-empty buckets. The row is copied first: a
        running engine may be recording into it from another thread."""
        row = self.counts[self.h].copy()
        idx = np.nonzero(row)[0]
        lows = np.array([bucket_low(i) for i in idx], np.int64)
        highs = np.array([bucket_high(i) for i in idx], np.int64)
        return lows, highs, row[idx]


@njit(cache=True, nogil=True)
def _record_many(counts, stats, h, values):
    for v in values:
        record(counts, stats, h, v)


@njit(cache=True, nogil=True, _nrt=False)
def record_call(counts, stats, h, v):
    """``record`` as a plain call, for the engine loop: its inlined copies grew the loop's compile,
    and a sampled packet's call costs a few ns (no reference counting: nothing allocates)."""
    record(counts, stats, h, v)


@njit(cache=True, _nrt=False)
def record_held(counts, stats, h, v):
    """``record_call`` keeping the GIL, for a server's event loop: a call that gives the GIL up at
    its entry can wait at its exit for another thread to give it back, up to the switch interval,
    for a record of a few nanoseconds."""
    record(counts, stats, h, v)
