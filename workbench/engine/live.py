"""The live hot loop: source -> ``process_batch`` -> staged rows, in one nopython call.

Replay hands ``process_batch`` a batch at a time from Python. Live mode cannot: a Python
round trip per poll is slow and, worse, needs the GIL, which the sink thread holds while
it builds Arrow tables. So the engine runs on a thread of its own, inside ONE
``@njit(nogil=True)`` call for the whole run, and never needs the GIL:

    poll the source (AF_PACKET ring / UDP recvmmsg / SPSC ring) -> FrameBatch viewing it
    -> optionally copy its frames for the recording
    -> process_batch (the same engine as replay) -> kernel-timestamp-to-scored latency of
       every frame (``realtime_ns() - ts_ns``, capture/clock.py, metrics/clock.py record_age) into ``lat_*``
    -> copy the rows into the active Stage -> give the frames back to the source

Rows go out through two Stages (double buffering, engine/live_mailbox.py). The loop fills
the active one; when it is nearly full, or has held rows for ``P_SLICE_NS``, the loop
hands it over (``ex[E_FULL0 + k] = 1``, store-release) and switches to the other, if
Python has freed it (``ex[E_FULL0 + k] = 0``); if not, it waits (backpressure, counted).
A Python thread takes full Stages to the sinks (the SinkThread, Parquet, ClickHouse, the
recording). A batch cut short by a full Stage stays pending in ``ex`` and resumes in the
next Stage, so nothing is lost or processed twice, and packet indexes run on across
blocks and Stages.

With ``rs`` (live resync, engine/market/resync.py; None compiles it out) the loop applies the
pool states Python queued from the chain between two batches.

Python talks to the loop through ``ex`` only (engine/live_mailbox.py): ``E_STOP`` (1:
finish what the source has ready, then return; 2: return at once), ``E_WINDOW_RESET``
(zero the view's latency window). When no frame arrives the loop spins for
``P_IDLE_SPIN_NS``, then sleeps ``P_IDLE_SLEEP_US`` per empty poll (0: spin forever, the
lowest latency on a pinned CPU); the parameters and that rule are capture/poll.py's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..capture.afpacket import CUR_RETIRED, release_block, scan_ring
from ..capture.frames import FrameBatch
from ..capture.kernel import load_acquire_i64, store_release_i64, sys_usleep
from ..capture.poll import P_MAX_BATCH_BYTES, P_MAX_N, P_RECORD, P_SLICE_NS, idle_sleep_us
from ..capture.ring import ring_closed_and_empty, ring_peek, ring_release
from ..capture.udp import recv_batch
from ..capture.clock import monotonic_ns, realtime_ns
from ..metrics.clock import record_age
from .market.resync import drain_resync
from .live_mailbox import (E_ACTIVE, E_AWAKE_SINCE, E_BUSY_NS, E_BUSY_SINCE, E_EMPTY_POLLS, E_FLIP_NS, E_FLIPS,
                           E_FULL0, E_IDLE_SINCE, E_NEXT_INDEX, E_PEND_FIRST, E_PEND_N, E_PEND_START, E_POLLS,
                           E_QUEUED, E_SLEEPS, E_STOP, E_STOP_SEEN_NS, E_WAITS, E_WINDOW_RESET, K_FIRST, K_NOPP,
                           K_NPKT, K_NPROG, K_NSW, K_NTX, K_REC_BYTES, K_REC_N, LAT_RUN, LAT_WINDOW, R_CLOSED,
                           R_STOPPED)
from .pipeline import N_OPPS, N_SWAPS, process_batch

STOP_GRACE_NS = 200_000_000   # after E_STOP 1, keep taking frames the source has ready for at most this long


@njit(cache=True, nogil=True)
def _active(st0, st1, ex):
    return st0 if ex[E_ACTIVE] == 0 else st1


@njit(cache=True, nogil=True)
def _has_rows(st):
    c = st.ctl
    return c[K_NTX] > 0 or c[K_NPKT] > 0 or c[K_REC_N] > 0


@njit(cache=True, nogil=True)
def _flip(st0, st1, ex, params, need_room):
    """Hand the active Stage over if it needs to go (full, or rows older than a slice) and the
    other one is free. Returns True if the active Stage changed."""
    a = ex[E_ACTIVE]
    st = st0 if a == 0 else st1
    if not _has_rows(st):
        return False
    now = monotonic_ns()
    if not need_room and now - ex[E_FLIP_NS] < params[P_SLICE_NS]:
        return False
    if load_acquire_i64(ex, E_FULL0 + (1 - a)) != 0:
        if need_room:
            ex[E_WAITS] += 1
        return False
    store_release_i64(ex, E_FULL0 + a, 1)
    ex[E_ACTIVE] = 1 - a
    ex[E_FLIP_NS] = now
    ex[E_FLIPS] += 1
    return True


@njit(cache=True, nogil=True)
def _room_for_poll(st, params):
    c = st.ctl
    if st.status.shape[0] - c[K_NPKT] < params[P_MAX_N]:
        return False
    if params[P_RECORD] != 0:
        if st.rec_off.shape[0] - c[K_REC_N] < params[P_MAX_N]:
            return False
        if st.rec_buf.shape[0] - c[K_REC_BYTES] < params[P_MAX_BATCH_BYTES]:
            return False
    return True


@njit(cache=True, nogil=True)
def _record_frames(buf, off, caplen, wirelen, ts, n, st):
    """Copy frames [0, n) into the Stage's recording buffer (before the source reuses them)."""
    c = st.ctl
    r = c[K_REC_N]
    pos = c[K_REC_BYTES]
    for i in range(n):
        cl = np.int64(caplen[i])
        o = off[i]
        for b in range(cl):
            st.rec_buf[pos + b] = buf[o + b]
        st.rec_off[r] = pos
        st.rec_len[r] = cl
        st.rec_wirelen[r] = wirelen[i]
        st.rec_ts[r] = ts[i]
        pos += cl
        r += 1
    c[K_REC_N] = r
    c[K_REC_BYTES] = pos


@njit(cache=True, nogil=True)
def _begin(ex, n):
    """Frames [0, n) of the source columns become the pending batch."""
    ex[E_BUSY_SINCE] = monotonic_ns()
    ex[E_PEND_N] = n
    ex[E_PEND_START] = 0
    ex[E_PEND_FIRST] = ex[E_NEXT_INDEX]
    ex[E_NEXT_INDEX] += n
    ex[E_POLLS] += 1


# _work and _step_pending are inlined by numba into each loop that calls them (``inline="always"``):
# a jitted callee is otherwise compiled as a library of its own, with the whole engine linked in
# and emitted as machine code, and then linked and emitted once more in each caller, so each
# level between process_batch and a live loop cost a first run another compile of the engine.
@njit(cache=True, nogil=True, inline="always")
def _work(buf, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st, lat_counts, lat_stats, ex):
    """Process the pending batch as far as Stage ``st`` has room. True when it is done."""
    c = st.ctl
    n = ex[E_PEND_N]
    batch = FrameBatch(buf, off[:n], caplen[:n], wirelen[:n], ts[:n], lt[:n], ex[E_PEND_FIRST])
    tx_cap = out.tx.shape[0]
    prog_cap = out.prog_ids.shape[0]
    while ex[E_PEND_START] < n or ex[E_QUEUED] != 0:
        start = ex[E_PEND_START]
        if st.tx.shape[0] - c[K_NTX] < tx_cap or st.prog_ids.shape[0] - c[K_NPROG] < prog_cap:
            return False
        if st.status.shape[0] - c[K_NPKT] < n - start:
            return False
        if st.swaps.shape[0] - c[K_NSW] < out.swaps.shape[0] or st.opps.shape[0] - c[K_NOPP] < out.opps.shape[0]:
            return False
        nxt, n_tx, n_prog, queued = process_batch(batch, state, ds, out, start, mk, model)
        now = realtime_ns()
        record_age(lat_counts, lat_stats, LAT_RUN, ts, start, nxt, now)
        record_age(lat_counts, lat_stats, LAT_WINDOW, ts, start, nxt, now)
        m = c[K_NTX]
        p0 = c[K_NPROG]
        for j in range(n_tx):
            st.tx[m + j] = out.tx[j]
            st.tx[m + j]._prog_first += p0
        for j in range(n_prog):
            st.prog_ids[p0 + j] = out.prog_ids[j]
        c[K_NTX] = m + n_tx
        c[K_NPROG] = p0 + n_prog
        w = c[K_NSW]
        for j in range(out.counts[N_SWAPS]):
            st.swaps[w + j] = out.swaps[j]
        c[K_NSW] = w + out.counts[N_SWAPS]
        w = c[K_NOPP]
        for j in range(out.counts[N_OPPS]):
            st.opps[w + j] = out.opps[j]
        c[K_NOPP] = w + out.counts[N_OPPS]
        q = c[K_NPKT]
        if q == 0:
            c[K_FIRST] = ex[E_PEND_FIRST] + start
        for i in range(start, nxt):
            st.status[q] = out.pkt_status[i]
            st.ts[q] = ts[i]
            q += 1
        c[K_NPKT] = q
        ex[E_PEND_START] = nxt
        ex[E_QUEUED] = queued
    ex[E_PEND_N] = 0
    return True



@njit(cache=True, nogil=True)
def _idle(ex, params):
    ex[E_EMPTY_POLLS] += 1
    us = idle_sleep_us(monotonic_ns(), ex[E_IDLE_SINCE], ex[E_AWAKE_SINCE], params)
    if us > 0:
        sys_usleep(us)
        ex[E_SLEEPS] += 1
        ex[E_AWAKE_SINCE] = monotonic_ns()


@njit(cache=True, nogil=True)
def _housekeeping(lat_counts, lat_stats, ex):
    if ex[E_WINDOW_RESET] != 0:
        lat_counts[LAT_WINDOW, :] = 0
        lat_stats[LAT_WINDOW, :] = 0
        store_release_i64(ex, E_WINDOW_RESET, 0)


@njit(cache=True, nogil=True)
def _stop_due(ex, stop):
    """After a stop request: True once the grace for frames already captured is over."""
    if stop == 0:
        return False
    now = monotonic_ns()
    if ex[E_STOP_SEEN_NS] == 0:
        ex[E_STOP_SEEN_NS] = now
    return now - ex[E_STOP_SEEN_NS] > STOP_GRACE_NS


@njit(cache=True, nogil=True, inline="always")
def _step_pending(buf, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
    """Work on the pending batch, handing Stages over as they fill. True when it is done;
    False when both Stages are full (the caller retries) or an abort was asked."""
    while True:
        st = _active(st0, st1, ex)
        if _work(buf, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st, lat_counts, lat_stats, ex):
            return True
        if not _flip(st0, st1, ex, params, True):
            return False


@njit(cache=True, nogil=True)
def _ready_to_poll(st0, st1, ex, params):
    """Hand the Stage over when due; True if the active Stage has room for one more poll."""
    _flip(st0, st1, ex, params, False)
    if _room_for_poll(_active(st0, st1, ex), params):
        return True
    _flip(st0, st1, ex, params, True)
    return _room_for_poll(_active(st0, st1, ex), params)


@njit(cache=True, nogil=True)
def live_afpacket(ring, cursor, block_size, block_nr, linktype, peek, off, caplen, wirelen, ts, lt,
                  state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params, rs=None):
    """The live loop over an AF_PACKET TPACKET_V3 ring (capture/afpacket.py)."""
    ex[E_IDLE_SINCE] = ex[E_AWAKE_SINCE] = monotonic_ns()
    max_n = min(params[P_MAX_N], off.shape[0])
    while True:
        stop = load_acquire_i64(ex, E_STOP)
        if stop == 2:
            return R_STOPPED
        _housekeeping(lat_counts, lat_stats, ex)
        if ex[E_PEND_N] > 0 or ex[E_QUEUED] != 0:
            if not _step_pending(ring, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts,
                                 lat_stats, ex, params):
                continue                                      # both Stages full: wait for Python
            release_block(ring, cursor, block_size, block_nr)  # no-op unless the block is done
            ex[E_BUSY_NS] += monotonic_ns() - ex[E_BUSY_SINCE]
        if rs is not None:                                     # live resync (--accounts): between two batches
            drain_resync(mk, rs)
        if not _ready_to_poll(st0, st1, ex, params):
            ex[E_WAITS] += 1
            continue
        if _stop_due(ex, stop):
            return R_STOPPED
        n = scan_ring(ring, cursor, block_size, block_nr, linktype, peek, off, caplen, wirelen, ts, lt, 0, max_n)
        if n == 0:
            if cursor[CUR_RETIRED] != 0:
                release_block(ring, cursor, block_size, block_nr)
                continue
            if stop != 0:
                return R_STOPPED                               # nothing more is ready: done
            _idle(ex, params)
            continue
        ex[E_IDLE_SINCE] = monotonic_ns()
        if params[P_RECORD] != 0:
            _record_frames(ring, off, caplen, wirelen, ts, n, _active(st0, st1, ex))
        _begin(ex, n)


@njit(cache=True, nogil=True)
def live_udp(fds, ports, uctl, drops, msgs, names, ctrl, slots, slot_sz, off, caplen, wirelen, ts, lt,
             state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params, rs=None):
    """The live loop over UDP sockets (capture/udp.py)."""
    ex[E_IDLE_SINCE] = ex[E_AWAKE_SINCE] = monotonic_ns()
    max_n = min(params[P_MAX_N], off.shape[0])
    while True:
        stop = load_acquire_i64(ex, E_STOP)
        if stop == 2:
            return R_STOPPED
        _housekeeping(lat_counts, lat_stats, ex)
        if ex[E_PEND_N] > 0 or ex[E_QUEUED] != 0:
            if not _step_pending(slots, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts,
                                 lat_stats, ex, params):
                continue
            ex[E_BUSY_NS] += monotonic_ns() - ex[E_BUSY_SINCE]
        if rs is not None:                                     # live resync (--accounts): between two batches
            drain_resync(mk, rs)
        if not _ready_to_poll(st0, st1, ex, params):
            ex[E_WAITS] += 1
            continue
        if _stop_due(ex, stop):
            return R_STOPPED
        n = recv_batch(fds, ports, uctl, drops, msgs, names, ctrl, slots, slot_sz, off, caplen, wirelen, ts, lt,
                       0, max_n)
        if n == 0:
            if stop != 0:
                return R_STOPPED
            _idle(ex, params)
            continue
        ex[E_IDLE_SINCE] = monotonic_ns()
        if params[P_RECORD] != 0:
            _record_frames(slots, off, caplen, wirelen, ts, n, _active(st0, st1, ex))
        _begin(ex, n)


@njit(cache=True, nogil=True)
def live_spsc(rctl, data, local, off, caplen, wirelen, ts, lt, index, state, ds, out, mk, model, st0, st1, lat_counts,
              lat_stats, ex, params, rs=None):
    """The live loop over the SPSC ring a capture process fills (capture/ring.py, ``--split``).

    ``E_STOP`` 1 is honoured when the producer has closed the ring (the runner asks it to
    stop first), so every frame it captured is processed."""
    ex[E_IDLE_SINCE] = ex[E_AWAKE_SINCE] = monotonic_ns()
    max_n = min(params[P_MAX_N], off.shape[0])
    while True:
        if load_acquire_i64(ex, E_STOP) == 2:
            return R_STOPPED
        _housekeeping(lat_counts, lat_stats, ex)
        if ex[E_PEND_N] > 0 or ex[E_QUEUED] != 0:
            n = ex[E_PEND_N]
            if not _step_pending(data, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts,
                                 lat_stats, ex, params):
                continue
            ring_release(rctl, local, n)
            ex[E_BUSY_NS] += monotonic_ns() - ex[E_BUSY_SINCE]
        if rs is not None:                                     # live resync (--accounts): between two batches
            drain_resync(mk, rs)
        if not _ready_to_poll(st0, st1, ex, params):
            ex[E_WAITS] += 1
            continue
        n = ring_peek(rctl, data, local, off, caplen, wirelen, ts, lt, index, 0, max_n)
        if n == 0:
            if ring_closed_and_empty(rctl, local):
                return R_CLOSED
            _idle(ex, params)
            continue
        ex[E_IDLE_SINCE] = monotonic_ns()
        if params[P_RECORD] != 0:
            _record_frames(data, off, caplen, wirelen, ts, n, _active(st0, st1, ex))
        _begin(ex, n)


@njit(cache=True, nogil=True)
def drain_queued(buf, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
    """After the loop returned: process what is pending and drain queued shred transactions.
    True when done (else Python frees a Stage and calls again)."""
    if ex[E_PEND_N] == 0:
        ex[E_PEND_START] = 0
        ex[E_PEND_FIRST] = ex[E_NEXT_INDEX]
        ex[E_QUEUED] = 1                    # one empty call tells whether anything is queued
    return _step_pending(buf, off, caplen, wirelen, ts, lt, state, ds, out, mk, model, st0, st1, lat_counts, lat_stats,
                         ex, params)
