"""The interpreter's settings for the server process: the cycle collector and the GIL's switch.

A full collection walks every container object the collector tracks. After start-up that is
the whole imported stack (numba, pyarrow, pandas, Starlette, the engine's tables), and one walk
of it stops the event loop for tens of milliseconds, which GET's p99.9 saw under load.
``settle_after_start`` collects once and then freezes what is left (``gc.freeze``: moved to a
generation the collector never walks; those objects are still freed by reference counting when
dropped). Rows kept for GET pages hold only strings, numbers and tuples of strings (recent.py),
so a full collection stops tracking them and they do not lengthen later walks. Each young
collection stops the loop for as long as it walks what was allocated since the last one: the
CLI's young threshold (host/interpreter.py, 20,000, for a replay's throughput) made pauses of
several milliseconds under posts, and the middle collections ten times that; the server keeps
CPython's middle and old pace but collects the young generation every ``YOUNG_ALLOCATIONS``
(posts at 2,000/s: p99 about half, README).

Worker threads (a large group of posts, group_commit.py; the post spool's inserts; GET pages
shaped from memory) need the GIL while the event loop answers requests. A thread that wants it
waits up to the switch interval for a busy one to yield (CPython's default: 5 ms), so a request
arriving during such work could wait that long; a shorter interval bounds that wait.
"""

from __future__ import annotations

import gc
import sys

from ..host.interpreter import fewer_collections

GIL_SWITCH_S = 0.0005           # the longest a thread holds the GIL while another waits (CPython: 0.005)
YOUNG_ALLOCATIONS = 2_000       # net container allocations between young collections (CPython: 700)


def settle_after_start() -> None:
    """Collect once, freeze the survivors, set the young threshold, shorten the GIL's switch
    interval. Call when start-up is done."""
    gc.collect()
    gc.freeze()
    fewer_collections(YOUNG_ALLOCATIONS)
    sys.setswitchinterval(GIL_SWITCH_S)
