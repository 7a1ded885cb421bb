"""The interpreter's cycle collector in our own processes (the CLI's commands, the server).

CPython starts a young collection every 700 net container allocations. Start-up (numba,
pyarrow, the engine's tables) and the sinks' Arrow building allocate millions of containers
that are not garbage, so a short replay spent a tenth of its time walking them. A higher
young threshold walks them far less often; garbage cycles are still collected, later. Only
entry points call this: importing the package never changes the collector of a user's process.
"""

from __future__ import annotations

import gc

YOUNG_ALLOCATIONS = 20_000      # net container allocations between young collections (CPython: 700)
MIDDLE_COLLECTIONS = 10         # young collections per middle one (CPython's)
OLD_COLLECTIONS = 100           # middle collections per full one (CPython: 10): a full walk is the long pause


def fewer_collections() -> None:
    gc.set_threshold(YOUNG_ALLOCATIONS, MIDDLE_COLLECTIONS, OLD_COLLECTIONS)
