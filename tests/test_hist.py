"""metrics/hist.py against numpy's exact percentiles and a Python twin."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.capture.clock import monotonic_ns
from workbench.metrics.hist import N_BUCKETS, RELATIVE_ERROR, Histogram, bucket_high, bucket_low, bucket_of


def test_buckets_tile_the_int64_range():
    prev_high = -1
    for i in range(N_BUCKETS):
        lo, hi = bucket_low(i), bucket_high(i)
        assert lo == prev_high + 1 and hi >= lo
        assert bucket_of(lo) == i and bucket_of(hi) == i
        assert (hi - lo) <= max(0, lo * RELATIVE_ERROR)
        prev_high = hi
    assert prev_high == np.iinfo(np.int64).max


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 99.9, 100])
def test_percentiles_within_bucket_precision(seed, q):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.lognormal(8, 2, 20000), rng.integers(0, 300, 500)]).astype(np.int64)
    h = Histogram()
    h.record_many(v)
    exact = int(np.percentile(v, q, method="inverted_cdf"))
    got = h.percentile(q)
    assert exact <= got <= exact + max(1, int(exact * RELATIVE_ERROR)) + 1
    assert h.count == v.size and h.min == v.min() and h.max == v.max()


def test_merge_equals_recording_everything():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 10**9, 1000), rng.integers(0, 10**4, 1000)
    ha, hb, hall = Histogram(), Histogram(), Histogram()
    ha.record_many(a)
    hb.record_many(b)
    hall.record_many(np.concatenate([a, b]))
    ha.merge(hb)
    assert (ha.counts == hall.counts).all() and (ha.stats == hall.stats).all()


def test_edges():
    h = Histogram()
    assert h.percentile(50) == -1 and h.count == 0
    h.record(-5)                         # negative durations (clock steps) count as 0
    h.record(np.iinfo(np.int64).max)
    assert h.min == 0 and h.max == np.iinfo(np.int64).max
    assert h.percentile(100) == np.iinfo(np.int64).max


def test_monotonic_clock_from_nopython_matches_python():
    import time
    a = time.monotonic_ns()
    b = monotonic_ns()
    c = time.monotonic_ns()
    assert a <= b <= c
