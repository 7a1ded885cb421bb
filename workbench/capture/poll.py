"""How a polling loop over a live source is set and paced.

Two loops poll a live source from nopython code: the engine's live loop (engine/live.py)
and, with ``--split``, the capture process's copy loop (capture/split.py). They share
one parameter array (int64[N_P], set once by the runner) and one rule for how long an
empty poll sleeps: spin while frames came recently, sleep once idle, and under SCHED_FIFO
with RT throttling sleep briefly before the kernel's throttle would stop the loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# params words (int64, set once by the runner)
P_SLICE_NS = 0      # hand a Stage with rows over at least this often (ns)
P_MAX_N = 1         # frames per poll
P_IDLE_SPIN_NS = 2  # spin this long without frames before sleeping
P_IDLE_SLEEP_US = 3  # sleep per empty poll once idle (0: never sleep)
P_RECORD = 4        # 1: copy every frame for the recording
P_MAX_BATCH_BYTES = 5  # most frame bytes one poll can return (recording room)
P_RT_PACE_NS = 6    # SCHED_FIFO under RT throttling: an empty poll sleeps once the loop has run this long
                    # without a sleep (host/cpu.py rt_pace_ns); 0: never (no throttling, or not RT)
P_RT_SLEEP_US = 7   # the pacing sleep (us)
N_P = 8
RT_PACE_SLEEP_US = 20   # the pacing sleep the runner sets: short (a frame arriving during it waits for it),
                        # and often enough that the RT share is never used up


def new_params(slice_ns: int, max_n: int, idle_spin_ns: int, idle_sleep_us: int, record: bool,
               max_batch_bytes: int, rt_pace_ns: int = 0) -> np.ndarray:
    p = np.zeros(N_P, np.int64)
    p[P_SLICE_NS], p[P_MAX_N], p[P_IDLE_SPIN_NS] = slice_ns, max_n, idle_spin_ns
    p[P_IDLE_SLEEP_US], p[P_RECORD], p[P_MAX_BATCH_BYTES] = idle_sleep_us, int(record), max_batch_bytes
    p[P_RT_PACE_NS], p[P_RT_SLEEP_US] = rt_pace_ns, RT_PACE_SLEEP_US
    return p


def rt_sleep_us(params) -> int:
    """The pacing sleep of these params (us)."""
    return int(params[P_RT_SLEEP_US])


def set_rt_pace_ns(params, pace_ns: int) -> None:
    """Turn RT pacing on (the loop's running time before an empty poll sleeps) or off (0)."""
    params[P_RT_PACE_NS] = pace_ns


@njit(cache=True, nogil=True, inline="always")
def idle_sleep_us(now, idle_since, awake_since, params):
    """us an empty poll sleeps (0: poll again at once): the RT pacing sleep once the loop has
    run P_RT_PACE_NS without one (a sleep of ours, at a moment of our choosing, instead of
    the kernel's 50 ms throttle), or the idle sleep after P_IDLE_SPIN_NS without frames."""
    if params[P_RT_PACE_NS] > 0 and now - awake_since > params[P_RT_PACE_NS]:
        return params[P_RT_SLEEP_US]
    if params[P_IDLE_SLEEP_US] > 0 and now - idle_since > params[P_IDLE_SPIN_NS]:
        return params[P_IDLE_SLEEP_US]
    return 0
