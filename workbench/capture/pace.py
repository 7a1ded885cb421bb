"""Pacing: release frames when their capture timestamps say, scaled by a speed factor.

Every frame's release time is computed from ONE fixed start instant,
``t_wall0 + (ts - ts0) / speed``, never by summing gaps (summed sleeps drift, as
tcpreplay learned). Frames without a timestamp (TS_MISSING) are released at once.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import ConfigError
from .frames import TS_MISSING

SLEEP_SLICE_S = 0.05          # longest single sleep, so a stop request is seen quickly


class Pacer:
    def __init__(self, speed: float, clock=time.monotonic_ns, sleep=time.sleep):
        if not speed > 0:
            raise ConfigError(f"speed={speed}: must be > 0 (1.0 = as captured, 2.0 = twice as fast)")
        self.speed = float(speed)
        self.clock, self.sleep = clock, sleep
        self.ts0: int | None = None
        self.wall0 = 0
        self.max_lag_ns = 0          # worst lateness of a release, for the summary

    def release_time_ns(self, ts: int) -> int:
        return self.wall0 + int((ts - self.ts0) / self.speed)

    def wait_due(self, ts_ns: np.ndarray, start: int) -> int:
        """Block until frame ``start`` is due; return the end of the run of frames due now."""
        ts = int(ts_ns[start])
        if self.ts0 is None and ts != TS_MISSING:
            self.ts0, self.wall0 = ts, self.clock()
        if ts != TS_MISSING and self.ts0 is not None:
            while True:
                lag = self.clock() - self.release_time_ns(ts)
                if lag >= 0:
                    self.max_lag_ns = max(self.max_lag_ns, lag)
                    break
                self.sleep(min(-lag / 1e9, SLEEP_SLICE_S))
        if self.ts0 is None:
            return start + 1
        now_ts = self.ts0 + int((self.clock() - self.wall0) * self.speed)
        end = int(np.searchsorted(ts_ns, now_ts, side="right"))
        return max(end, start + 1)
