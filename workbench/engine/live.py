"""The live hot loop: source -> ``process_batch`` -> staged rows, in one nopython call.

Replay hands ``process_batch`` a batch at a time from Python. Live mode cannot: a Python
round trip per poll costs tens of microseconds and, worse, needs the GIL, which the sink
thread holds while it builds Arrow tables. So the engine runs on a thread of its own,
inside ONE ``@njit(nogil=True)`` call for the whole run, and never needs the GIL:

    poll the source (AF_PACKET ring / UDP recvmmsg / SPSC ring) -> FrameBatch viewing it
    -> optionally copy its frames for the recording
    -> process_batch (the same engine as replay) -> kernel-timestamp-to-scored latency of
       every frame (``realtime_ns() - ts_ns``, metrics/clock.py) into ``lat_*``
    -> copy the rows into the active Stage -> give the frames back to the source

Rows go out through two Stages (double buffering). The loop fills the active one; when it
is nearly full, or has held rows for ``P_SLICE_NS``, the loop hands it over
(``ex[E_FULL0 + k] = 1``, store-release) and switches to the other, if Python has freed it
(``ex[E_FULL0 + k] = 0``); if not, it waits (backpressure, counted). A Python thread
takes full Stages to the sinks (the SinkThread, Parquet, ClickHouse, the recording). A
batch cut short by a full Stage stays pending in ``ex`` and resumes in the next Stage, so
nothing is lost or processed twice, and packet indexes run on across blocks and Stages.

Python talks to the loop through ``ex`` only: ``E_STOP`` (1: finish what the source has
ready, then return; 2: return at once), ``E_WINDOW_RESET`` (zero the view's latency
window). When no frame arrives the loop spins for ``P_IDLE_SPIN_NS``, then sleeps
``P_IDLE_SLEEP_US`` per empty poll (0: spin forever, the lowest latency on a pinned CPU).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..capture.afpacket import CUR_RETIRED, release_block, scan_ring
from ..capture.frames import FrameBatch
from ..capture.kernel import load_acquire_i64, store_release_i64, sys_usleep
from ..capture.udp import recv_batch
from ..metrics.clock import monotonic_ns, realtime_ns, record_age
from ..metrics.hist import new_histograms
from .features import PROGRAMS_PER_TX_MAX, TX_DTYPE
from .detect import OPPS_PER_TX_MAX, SWAPS_PER_TX_MAX
from .opps import OPP_DTYPE, SWAP_DTYPE
from .pipeline import N_OPPS, N_SWAPS, process_batch
from .ring import (W_SRC_FRAMES, ring_closed_and_empty, ring_peek, ring_push_frames, ring_release,
                   stop_requested)

# Stage.ctl words (one Stage's rows)
K_NTX = 0           # staged transaction rows
K_NPROG = 1         # staged program-id rows
K_NPKT = 2          # staged packet-status rows
K_FIRST = 3         # packet index of staged status row 0
K_REC_N = 4         # staged recorded frames
K_REC_BYTES = 5     # bytes of them in rec_buf
K_NSW = 6           # staged swap rows (with a market)
K_NOPP = 7          # staged opportunity rows
N_K = 8

# ex words: the loop's own state and its mailbox with Python (int64[N_E])
E_STOP = 0          # Python -> loop: 1 finish what is ready and return, 2 return at once
E_ACTIVE = 1        # loop: the Stage it fills (0 / 1)
E_FULL0 = 2         # loop -> Python: Stage 0 holds rows to hand on (1); Python -> loop: free again (0)
E_FULL1 = 3         # the same for Stage 1
E_NEXT_INDEX = 4    # packet index the next polled frame gets (a running count of frames seen)
E_PEND_N = 5        # frames of the batch being processed (0: none pending)
E_PEND_START = 6    # its next frame to process
E_PEND_FIRST = 7    # its packet index of frame 0
E_QUEUED = 8        # shred transactions still queued in the reassembly
E_FLIP_NS = 9       # monotonic ns of the last hand-over
E_WINDOW_RESET = 10  # Python -> loop: zero the latency window, then the loop sets 0
E_POLLS = 11        # polls that returned frames
E_EMPTY_POLLS = 12  # polls that returned none
E_SLEEPS = 13       # idle sleeps
E_FLIPS = 14        # Stages handed over
E_WAITS = 15        # polls skipped because both Stages were full (Python behind)
E_RETURN = 16       # why the loop returned (R_*)
E_IDLE_SINCE = 17   # monotonic ns of the last frame seen (idle detection)
E_STOP_SEEN_NS = 18  # monotonic ns the loop first saw E_STOP 1 (0: not yet)
E_BUSY_NS = 19      # ns the loop spent on frames: from a poll that returned some to their release
E_BUSY_SINCE = 20   # monotonic ns the pending batch was polled
E_AWAKE_SINCE = 21  # monotonic ns the loop last woke from a sleep (RT pacing)
N_E = 22
STOP_GRACE_NS = 200_000_000   # after E_STOP 1, keep taking frames the source has ready for at most this long

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
                        # and often enough (~6 % of the time) that the RT share is never used up

# latency histograms (rows of lat_counts / lat_stats)
LAT_RUN = 0         # kernel timestamp -> scored, whole run
LAT_WINDOW = 1      # the same since the view last read it
N_LAT = 2

# loop return codes
R_STOPPED = 0       # E_STOP asked and honoured
R_CLOSED = 2        # the source closed (SPSC producer finished) and everything is processed


class Stage(NamedTuple):
    """Rows the live loop accumulates before Python hands them to the sinks."""

    tx: np.ndarray          # TX_DTYPE[S] transaction rows (``_prog_first`` indexes prog_ids below)
    prog_ids: np.ndarray    # int32[S * 64] program key ids
    status: np.ndarray      # int16[P] status of each packet, packet index ctl[K_FIRST] + i
    ts: np.ndarray          # int64[P] its kernel timestamp (ns since the epoch)
    rec_buf: np.ndarray     # uint8[R] copies of the frames to record (R = 1 when not recording)
    rec_off: np.ndarray     # int64[P] each recorded frame's offset in rec_buf
    rec_len: np.ndarray     # int32[P] its captured length
    rec_wirelen: np.ndarray  # int32[P] its length on the wire
    rec_ts: np.ndarray      # int64[P] its timestamp
    swaps: np.ndarray       # SWAP_DTYPE[W] swaps on snapshot pools (engine/opps.py)
    opps: np.ndarray        # OPP_DTYPE[O] opportunities
    ctl: np.ndarray         # int64[N_K] row counts (K_*)


PROG_IDS_PER_ROW = 8    # program-id rows a Stage holds per transaction row on average (a Stage that runs
                        # out of them is handed over early); plus one call's worst case on top


def _prog_rows(tx_rows: int, call_rows: int) -> int:
    return tx_rows * PROG_IDS_PER_ROW + call_rows * PROGRAMS_PER_TX_MAX


def _market_rows(tx_rows: int, call_rows: int) -> tuple[int, int]:
    """Swap and opportunity rows of a Stage: its share, plus one call's worst case (BatchOut)."""
    return tx_rows + call_rows + SWAPS_PER_TX_MAX, tx_rows // 8 + call_rows + OPPS_PER_TX_MAX


def new_stage(tx_rows: int, packets: int, record_bytes: int = 0, buf: np.ndarray | None = None,
              call_rows: int = 1024) -> Stage:
    """A Stage for ``tx_rows`` transactions and ``packets`` packets; ``record_bytes`` > 0 to record.
    ``call_rows``: transaction rows one process_batch call may make (BatchOut's size).

    ``buf`` (uint8, e.g. huge-page backed, host/memory.py) backs the arrays if given.
    """
    rec = max(1, int(record_bytes))
    sizes = [(TX_DTYPE, tx_rows), (np.int32, _prog_rows(tx_rows, call_rows)), (np.int16, packets),
             (np.int64, packets), (np.uint8, rec), (np.int64, packets), (np.int32, packets),
             (np.int32, packets), (np.int64, packets)]
    n_sw, n_opp = _market_rows(tx_rows, call_rows)
    sizes += [(SWAP_DTYPE, n_sw), (OPP_DTYPE, n_opp)]
    arrays = []
    pos = 0
    for dt, n in sizes:
        dt = np.dtype(dt)
        nbytes = dt.itemsize * n
        pos = (pos + 63) // 64 * 64
        if buf is not None and pos + nbytes <= buf.shape[0]:
            arrays.append(buf[pos:pos + nbytes].view(dt))
            pos += nbytes
        else:
            arrays.append(np.zeros(n, dt))
    return Stage(*arrays, np.zeros(N_K, np.int64))


def stage_bytes(tx_rows: int, packets: int, record_bytes: int = 0, call_rows: int = 1024) -> int:
    """Bytes ``new_stage`` uses from ``buf`` (alignment included)."""
    n_sw, n_opp = _market_rows(tx_rows, call_rows)
    return (TX_DTYPE.itemsize * tx_rows + 4 * _prog_rows(tx_rows, call_rows) + 2 * packets + 8 * packets
            + max(1, record_bytes) + 8 * packets + 4 * packets + 4 * packets + 8 * packets
            + SWAP_DTYPE.itemsize * n_sw + OPP_DTYPE.itemsize * n_opp + 12 * 64)


def new_params(slice_ns: int, max_n: int, idle_spin_ns: int, idle_sleep_us: int, record: bool,
               max_batch_bytes: int, rt_pace_ns: int = 0) -> np.ndarray:
    p = np.zeros(N_P, np.int64)
    p[P_SLICE_NS], p[P_MAX_N], p[P_IDLE_SPIN_NS] = slice_ns, max_n, idle_spin_ns
    p[P_IDLE_SLEEP_US], p[P_RECORD], p[P_MAX_BATCH_BYTES] = idle_sleep_us, int(record), max_batch_bytes
    p[P_RT_PACE_NS], p[P_RT_SLEEP_US] = rt_pace_ns, RT_PACE_SLEEP_US
    return p


def new_ex() -> np.ndarray:
    return np.zeros(N_E, np.int64)


def new_latency():
    return new_histograms(N_LAT)


@njit(cache=True, nogil=True)
def reset_rows(stage):
    """Python, after handing a Stage's rows on: empty it (then it frees it in ``ex``)."""
    c = stage.ctl
    c[K_NTX] = 0
    c[K_NPROG] = 0
    c[K_NPKT] = 0
    c[K_FIRST] = 0
    c[K_REC_N] = 0
    c[K_REC_BYTES] = 0
    c[K_NSW] = 0
    c[K_NOPP] = 0


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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True, inline="always")
def _idle_sleep_us(now, idle_since, awake_since, params):
    """us an empty poll sleeps (0: poll again at once): the RT pacing sleep once the loop has
    run P_RT_PACE_NS without one (a sleep of ours, at a moment of our choosing, instead of
    the kernel's 50 ms throttle), or the idle sleep after P_IDLE_SPIN_NS without frames."""
    if params[P_RT_PACE_NS] > 0 and now - awake_since > params[P_RT_PACE_NS]:
        return params[P_RT_SLEEP_US]
    if params[P_IDLE_SLEEP_US] > 0 and now - idle_since > params[P_IDLE_SPIN_NS]:
        return params[P_IDLE_SLEEP_US]
    return 0


@njit(cache=True, nogil=True)
def _idle(ex, params):
    ex[E_EMPTY_POLLS] += 1
    us = _idle_sleep_us(monotonic_ns(), ex[E_IDLE_SINCE], ex[E_AWAKE_SINCE], params)
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


@njit(cache=True, nogil=True)
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
                  state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
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
             state, ds, out, mk, model, st0, st1, lat_counts, lat_stats, ex, params):
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
              lat_stats, ex, params):
    """The live loop over the SPSC ring a capture process fills (engine/ring.py, ``--split``).

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


# --- the capture process of ``--split``: source -> SPSC ring -----------------------------------
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
    """The capture process's empty poll: sleeps as ``_idle``; returns the new ``awake_since``."""
    us = _idle_sleep_us(monotonic_ns(), idle_since, awake_since, params)
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
