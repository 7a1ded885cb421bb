"""The interpreter's settings for the server process: the cycle collector and the GIL's switch.

A full collection walks every container object the collector tracks. After start-up that is
the whole imported stack (numba, pyarrow, pandas, Starlette, the engine's tables), and one walk
of it stops the event loop for tens of milliseconds, which GET's p99.9 saw under load.
``settle_after_start`` collects once and then freezes what is left (``gc.freeze``: moved to a
generation the collector never walks; those objects are still freed by reference counting when
dropped), and raises the young generation's threshold so that a burst of requests is walked
less often. Rows kept for GET pages hold only strings, numbers and tuples of strings
(recent.py), so a full collection stops tracking them and they do not lengthen later walks.

Posts are checked and stored on a worker thread (group_commit.py) while the event loop answers
GETs; both need the GIL. A thread that wants it waits up to the switch interval for a busy one
to yield (CPython's default: 5 ms), so a GET arriving during a group's check could wait that
long; a shorter interval bounds that wait.
"""

from __future__ import annotations

import gc
import sys

from ..host.interpreter import fewer_collections

GIL_SWITCH_S = 0.0005           # the longest a thread holds the GIL while another waits (CPython: 0.005)


def settle_after_start() -> None:
    """Collect once, freeze the survivors, raise the young threshold, shorten the GIL's switch
    interval. Call when start-up is done."""
    gc.collect()
    gc.freeze()
    fewer_collections()
    sys.setswitchinterval(GIL_SWITCH_S)
