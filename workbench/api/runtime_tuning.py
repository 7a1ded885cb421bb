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

That threshold counts allocations net of deallocations, and a server under steady load keeps
the count near zero: the GET memory takes as many new rows as it evicts, so its new keys (tuples,
tracked until a collection finds they hold only strings and numbers) are balanced by the old keys
it frees, and no young collection starts while they pile up in the young generation. When one
finally started it walked them all, and the middle collection after it what survived: the loop's
longest pauses under posts. ``collect_young_every`` runs a young collection on the event loop at
a fixed pace instead (and middle and full ones at the collector's thresholds), so each walks what
a short interval allocated.

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
YOUNG_EVERY_S = 0.02            # the pace of the event loop's own young collections


def settle_after_start() -> None:
    """Collect once, freeze the survivors, set the young threshold, shorten the GIL's switch
    interval. Call when start-up is done."""
    gc.collect()
    gc.freeze()
    fewer_collections(YOUNG_ALLOCATIONS)
    sys.setswitchinterval(GIL_SWITCH_S)


def collect_young_every(loop, every_s: float = YOUNG_EVERY_S):
    """Run a young collection on ``loop`` every ``every_s`` (see the module's text), from now until
    the function returned is called."""
    handle = None

    def tick() -> None:
        nonlocal handle
        # a collection started here counts toward the next generation's but never starts it: the
        # older ones at the collector's own pace (their thresholds), or survivors and cycles pile up
        counts, limits = gc.get_count(), gc.get_threshold()
        gc.collect(2 if counts[2] >= limits[2] else 1 if counts[1] >= limits[1] else 0)
        handle = loop.call_later(every_s, tick)

    handle = loop.call_later(every_s, tick)

    def stop() -> None:
        handle.cancel()

    return stop
