"""The interpreter's cycle collector and exit in our own processes (the CLI's commands, the server).

CPython starts a young collection every 700 net container allocations. Start-up (numba,
pyarrow, the engine's tables) and the sinks' Arrow building allocate millions of containers
that are not garbage, so a short replay spent a tenth of its time walking them. A higher
young threshold walks them far less often; garbage cycles are still collected, later. Only
entry points call this: importing the package never changes the collector of a user's process.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn

YOUNG_ALLOCATIONS = 20_000      # net container allocations between young collections (CPython: 700)
MIDDLE_COLLECTIONS = 10         # young collections per middle one (CPython's)
OLD_COLLECTIONS = 100           # middle collections per full one (CPython: 10): a full walk is the long pause


def fewer_collections(young: int = YOUNG_ALLOCATIONS) -> None:
    gc.set_threshold(young, MIDDLE_COLLECTIONS, OLD_COLLECTIONS)


def exit_without_teardown(code=0) -> NoReturn:
    """End a finished command's process without the interpreter's teardown.

    At exit the interpreter frees every object one by one (numba's typing tables, pyarrow's,
    the engine's own); after a short replay that takes longer than the engine's warm-up. The
    kernel frees the whole heap at once. What the interpreter does before that is kept, in its
    order: non-daemon threads joined with threading's exit hooks (executors), then the atexit
    handlers (log handlers, temporary folders), then stdio flushed. ``code`` as ``sys.exit``
    takes it.

    A process that loaded embedded ClickHouse (chdb) exits the normal way: its C++ destructors
    still run then and may write the store's files. So does an interpreter without the hooks.
    """
    shutdown = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if "chdb" in sys.modules or shutdown is None or run_exit_handlers is None:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:                               # sys.exit's rule: any other object is printed, status 1
        print(code, file=sys.stderr)
        status = 1
    shutdown()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(status & 0xFF)
