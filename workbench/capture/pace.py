"""Pacing: release frames when their capture timestamps say, scaled by a speed factor.

A pacer with a ``quantum`` releases frames at most once a quantum: a frame that falls due
sooner after the last release waits for the quantum's end, and goes with every frame due by
then. A replay's engine takes each release as one call, and each call has a fixed cost in Python
(the dispatch, which unboxes the engine's state with the GIL held, and the hand-off of its rows):
released one small run at a time, a paced replay of tens of thousands of frames a second made
thousands of calls a second, each taking and giving up the GIL that a server's event loop needs
for its frames. A frame is then late by at most a quantum (``max_lag_ns`` says by how much).

Every frame's release time is computed from ONE fixed start instant,
``t_wall0 + (ts - ts0) / speed``, never by summing gaps (summed sleeps drift, as
tcpreplay learned). Frames without a timestamp (TS_MISSING) are released at once.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ConfigError
from .frames import TS_MISSING

SLEEP_SLICE_S = 0.05          # longest single sleep, so a stop request is seen quickly
REPLAY_QUANTUM_NS = 1_000_000   # a paced replay's releases (the engine's calls): at most one a millisecond
# Pacing rates a run accepts. Past MAX_SPEED a day of capture is released in under 0.1 s, the same
# as unpaced; below MIN_SPEED a second of capture takes more than 11 days. MAX_PPS is above the
# 148.8 Mpps of minimum-size frames on 100 GbE; below MIN_PPS one frame takes over 16 minutes.
MIN_SPEED, MAX_SPEED = 1e-6, 1e6
MIN_PPS, MAX_PPS = 1e-3, 2e8


def check_rate(flag: str, value, lo: float, hi: float, hint: str) -> float:
    """``value`` as a float in [lo, hi]; ConfigError naming ``flag``, the value and the limits otherwise.

    0, negatives, NaN and infinity are all refused the same way, wherever the rate is asked.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {value!r}: not a number; allowed: {lo:g} to {hi:g} ({hint})") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ConfigError(f"{flag} {value!r}: outside {lo:g} to {hi:g} ({hint})")
    return v


def check_speed(speed, unpaced: str) -> float:
    """A --speed factor; ``unpaced`` says how the caller's user runs without pacing."""
    return check_rate("--speed", speed, MIN_SPEED, MAX_SPEED, f"1.0 = as captured, 2.0 = twice as fast; {unpaced}")


def check_pps(pps) -> float:
    return check_rate("--pps", pps, MIN_PPS, MAX_PPS, "packets per second")


class Pacer:
    def __init__(self, speed: float, clock=time.monotonic_ns, sleep=time.sleep, quantum_ns: int = 0):
        self.speed = check_speed(speed, "no pacing: no speed")
        self.clock, self.sleep = clock, sleep
        self.quantum_ns = quantum_ns     # the least time between two releases (0: each run of frames as it falls due)
        self.ts0: int | None = None
        self.wall0 = 0
        self.released_ns: int | None = None     # when the last release was
        self.max_lag_ns = 0          # worst lateness of a release, for the summary

    def release_time_ns(self, ts: int) -> int:
        return self.wall0 + int((ts - self.ts0) / self.speed)

    def wait_due(self, ts_ns: np.ndarray, start: int) -> int:
        """Block until frame ``start`` is due; return the end of the run of frames due now."""
        ts = int(ts_ns[start])
        if self.ts0 is None and ts != TS_MISSING:
            self.ts0, self.wall0 = ts, self.clock()
        if ts != TS_MISSING and self.ts0 is not None:
            due = self.release_time_ns(ts)
            if self.released_ns is not None:
                due = max(due, self.released_ns + self.quantum_ns)
            while True:
                now = self.clock()
                if now >= due:
                    self.max_lag_ns = max(self.max_lag_ns, now - self.release_time_ns(ts))
                    break
                self.sleep(min((due - now) / 1e9, SLEEP_SLICE_S))
            self.released_ns = now
        if self.ts0 is None:
            return start + 1
        now_ts = self.ts0 + int((self.clock() - self.wall0) * self.speed)
        end = int(np.searchsorted(ts_ns, now_ts, side="right"))
        return max(end, start + 1)
