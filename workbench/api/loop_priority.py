"""SCHED_FIFO for the server's event loop thread (``serve --loop-rt``).

The event loop sends every WebSocket frame and answers every request. On the same CPUs the
run's sink and store-writer threads, the store's own merge threads and (on one host) the
clients do bulk work; under the normal policy a frame that is ready waits for a CPU behind
them, for as long as the kernel's fair slices last, several milliseconds when they are busy.
At SCHED_FIFO the loop runs as soon as it has work, and its work per wake-up is short.

Its priority is one below the engine thread's (``--rt``, ``live_fifo_priority``), so a
busy-polling engine thread keeps its CPU. SCHED_RESET_ON_FORK: the worker threads the loop
starts later (post checks, store queries, the GET memory) keep the normal policy. Asked for
when the server starts (on the loop's own thread); what the host refuses is said, and the
server runs on without it.
"""

from __future__ import annotations

from ..host.cpu import FIFO_PRIORITY_DEFAULT, Grant, request_fifo


def loop_fifo_priority(engine_priority: int = FIFO_PRIORITY_DEFAULT) -> int:
    """The loop's SCHED_FIFO priority: one below the engine thread's (at least 1)."""
    return max(1, engine_priority - 1)


def raise_loop(engine_priority: int = FIFO_PRIORITY_DEFAULT) -> Grant:
    """SCHED_FIFO for the calling thread (the event loop's), reset for the threads it starts."""
    return request_fifo(loop_fifo_priority(engine_priority), 0, reset_on_fork=True)
