"""The capture process of ``workbench live --split``: a live source -> the SPSC ring.

The copy loops run in nopython code, one call per time slice (the process checks for a
stop request and publishes its source's counters between calls). Each copies what the
source hands up into the ring (capture/ring.py), where the engine process reads it in
place; when the ring is full it spins, counted in the ring's FULL_WAITS.
"""

from __future__ import annotations

from numba import njit

from .afpacket import CUR_RETIRED, release_block, scan_ring
from .clock import monotonic_ns
from .kernel import sys_usleep
from .poll import P_MAX_N, idle_sleep_us
from .ring import W_SRC_FRAMES, ring_push_frames, stop_requested
from .udp import recv_batch


@njit(cache=True, nogil=True)
def _push_all(rctl, data, local, buf, off, caplen, wirelen, ts, lt, first_index, n):
    """Push frames [0, n) into the SPSC ring, spinning while it is full. False if asked to stop."""
    i = 0
    while i < n:
        k = ring_push_frames(rctl, data, local, buf, off, caplen, wirelen, ts, lt, first_index, i, n)
        i += k
        if k == 0 and stop_requested(rctl):
            return False
    rctl[W_SRC_FRAMES] += n
    return True


@njit(cache=True, nogil=True)
def _producer_idle(idle_since, awake_since, params):
    """The capture process's empty poll: sleeps as the engine's live loop does; returns the new ``awake_since``."""
    us = idle_sleep_us(monotonic_ns(), idle_since, awake_since, params)
    if us > 0:
        sys_usleep(us)
        return monotonic_ns()
    return awake_since


@njit(cache=True, nogil=True)
def split_afpacket(ring, cursor, block_size, block_nr, linktype, peek, off, caplen, wirelen, ts, lt,
                   rctl, data, local, params, deadline_ns):
    """Copy frames from an AF_PACKET ring into the SPSC ring until the deadline or a stop request."""
    max_n = min(params[P_MAX_N], off.shape[0])
    idle_since = awake_since = monotonic_ns()
    while monotonic_ns() < deadline_ns and not stop_requested(rctl):
        n = scan_ring(ring, cursor, block_size, block_nr, linktype, peek, off, caplen, wirelen, ts, lt, 0, max_n)
        if n > 0:
            idle_since = monotonic_ns()
            if not _push_all(rctl, data, local, ring, off, caplen, wirelen, ts, lt, rctl[W_SRC_FRAMES], n):
                return
        elif cursor[CUR_RETIRED] == 0:
            awake_since = _producer_idle(idle_since, awake_since, params)
        release_block(ring, cursor, block_size, block_nr)


@njit(cache=True, nogil=True)
def split_udp(fds, ports, uctl, drops, msgs, names, ctrl, slots, slot_sz, off, caplen, wirelen, ts, lt,
              rctl, data, local, params, deadline_ns):
    """Copy datagrams (as frames) from UDP sockets into the SPSC ring until the deadline or a stop request."""
    max_n = min(params[P_MAX_N], off.shape[0])
    idle_since = awake_since = monotonic_ns()
    while monotonic_ns() < deadline_ns and not stop_requested(rctl):
        n = recv_batch(fds, ports, uctl, drops, msgs, names, ctrl, slots, slot_sz, off, caplen, wirelen, ts, lt,
                       0, max_n)
        if n > 0:
            idle_since = monotonic_ns()
            if not _push_all(rctl, data, local, slots, off, caplen, wirelen, ts, lt, rctl[W_SRC_FRAMES], n):
                return
        else:
            awake_since = _producer_idle(idle_since, awake_since, params)
