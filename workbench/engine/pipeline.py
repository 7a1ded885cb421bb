"""``process_batch``: the engine's one jitted call per FrameBatch.

Per frame: link/IP/UDP walk (wire/net.py) -> payload kind by destination port
(transaction, shred, auto, ignore) -> a shred goes to the reassembly (deshred.py), and
the transactions of every entry batch it completes come out as rows like UDP ones ->
transaction decode and sanitize (wire/txn.py) ->
duplicate filter on the first signature -> features (features.py) -> one wall-clock
read, recorded in the per-packet histogram. Output goes into preallocated rows
(``BatchOut``); no Python object is made per packet. If the output rows fill up, the
call returns early with the index of the next frame, and the caller hands the rows to
the sinks and calls again from there.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..binary import prefetch_range, u64le
from ..metrics.clock import monotonic_ns
from ..metrics.hist import record
from ..wire.net import udp_payload
from ..wire.shred import KIND_NONE, shred_kind
from ..wire.status import DUPLICATE, ERR_NOT_SOLANA, SHRED, STATUS_MIN, TXN
from ..wire.txn import INSTR_DTYPE, LUT_DTYPE, PACKET_DATA_SIZE, TXN_DTYPE, decode_txn
from .deshred import M_Q_HEAD, M_Q_TAIL, READY_DTYPE, add_data_shred, drain_ready
from .features import ORIGIN_SHRED, ORIGIN_UDP, PROGRAMS_PER_TX_MAX, TX_DTYPE, fill_features
from .state import (C_BYTES, C_SHRED_TX_REJECTED, C_PACKETS, C_SHREDS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, HIST_BATCH_NS,
                    HIST_PACKET_NS, P_SAMPLE_MASK, PORT_AUTO, PORT_IGNORE, PORT_SHRED)

DRAIN_CHUNK = 256        # shred transactions moved from the deshred queue per drain call


class BatchOut(NamedTuple):
    """Preallocated output rows of one process_batch call (reused batch after batch)."""

    pkt_status: np.ndarray  # int16[F] status of each frame of the batch (wire/status.py)
    tx: np.ndarray          # TX_DTYPE[T] one row per decoded transaction
    prog_ids: np.ndarray    # int32[T * 64] program key ids, from tx[i]._prog_first on (room for the worst case)
    ready: np.ndarray       # READY_DTYPE[256] scratch: shred transactions being drained
    txn: np.ndarray         # TXN_DTYPE[1] scratch: the transaction being decoded
    instrs: np.ndarray      # INSTR_DTYPE[1232] scratch: its instructions
    luts: np.ndarray        # LUT_DTYPE[40] scratch: its lookup tables


def new_batch_out(frames: int) -> BatchOut:
    """Rows for one call over up to ``frames`` frames (and as many shred transactions)."""
    return BatchOut(np.zeros(frames, np.int16), np.zeros(frames, TX_DTYPE),
                    np.zeros(frames * PROGRAMS_PER_TX_MAX, np.int32), np.zeros(DRAIN_CHUNK, READY_DTYPE),
                    np.zeros(1, TXN_DTYPE),
                    np.zeros(PACKET_DATA_SIZE, INSTR_DTYPE), np.zeros(PACKET_DATA_SIZE // 32 + 1, LUT_DTYPE))


@njit(cache=True, nogil=True, inline="always")
def _seen_before(dedup, dedup_meta, buf, sig_off):
    """Insert the first signature's leading 8 bytes; True if they were there already.

    The filter is cleared when half full (as agave's sigverify deduper is reset), so the
    memory is fixed and the result depends only on the capture.
    """
    key = u64le(buf, sig_off)
    if key == 0:
        key = np.uint64(1)
    mask = dedup.shape[0] - 1
    s = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
    while True:
        v = dedup[s]
        if v == 0:
            if dedup_meta[0] >= (dedup.shape[0] >> 1):
                dedup[:] = 0
                dedup_meta[0] = 0
                s = np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
            dedup[s] = key
            dedup_meta[0] += 1
            return False
        if v == key:
            return True
        s = (s + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def _emit(buf, txn, state, out, n_tx, n_prog, packet_index, ts, slot, origin, origin_ts, entry):
    """Write the feature row of decoded ``txn``; returns the new (n_tx, n_prog)."""
    row = out.tx[n_tx]
    row.tx_index = state.counters[C_TRANSACTIONS]
    row.packet_index = packet_index
    row.ts_ns = ts
    row.slot = slot
    row.origin = origin
    row.origin_ts_ns = origin_ts
    row.entry_index = entry
    n_prog += fill_features(buf, txn, out.instrs, state.keys, state.key_slots, state.key_meta,
                            row, out.prog_ids, n_prog, state.prog_tx_counts)
    state.counters[C_TRANSACTIONS] += 1
    return n_tx + 1, n_prog


@njit(cache=True, nogil=True, inline="always")
def _has_queued(ds):
    """True if completed entry batches left transactions to drain (skips a call that
    passes the whole reassembly state when there is nothing to do)."""
    return ds.meta[M_Q_HEAD] < ds.meta[M_Q_TAIL]


@njit(cache=True, nogil=True)
def _drain_shred_txns(state, ds, out, n_tx, n_prog):
    """Move transactions of completed entry batches into feature rows while there is room.

    Returns (n_tx, n_prog, still_queued).
    """
    txn = out.txn[0]
    left = 1
    while left > 0:
        room = min(out.tx.shape[0] - n_tx, out.ready.shape[0])
        if room <= 0:
            break
        k, left = drain_ready(ds, out.ready, 0, room)
        for j in range(k):
            r = out.ready[j]
            st = decode_txn(ds.slab, r.off, r.end, out.txn, 0, out.instrs, 0, out.luts, 0)
            if st < 0:
                state.counters[C_SHRED_TX_REJECTED] += 1
                continue
            n_tx, n_prog = _emit(ds.slab, txn, state, out, n_tx, n_prog, r.packet_index, r.ts_done_ns, r.slot,
                                 ORIGIN_SHRED, r.ts_first_ns, r.entry)
        if k == 0:
            break
    return n_tx, n_prog, left


@njit(cache=True, nogil=True)
def process_batch(batch, state, ds, out, start):
    """Process frames ``[start, batch.n)``. Returns (next_frame, n_tx, n_prog_ids, shred_txns_queued).

    ``next_frame < batch.n`` (or transactions still queued) means the output rows filled
    up: hand them on and call again. An empty batch only drains queued shred transactions.
    """
    buf = batch.buf
    n = batch.off.shape[0]
    t_batch = monotonic_ns()
    sample_mask = state.params[P_SAMPLE_MASK]
    tx_cap = out.tx.shape[0]
    txn = out.txn[0]
    n_tx, n_prog, queued = 0, 0, 0
    if _has_queued(ds):
        n_tx, n_prog, queued = _drain_shred_txns(state, ds, out, 0, 0)
    i = start
    pf = batch.off[start] if start < n else 0
    # prefetch no further than the batch's last frame (a live ring block is much smaller
    # than the buffer it sits in)
    pf_end = batch.off[n - 1] + batch.caplen[n - 1] if n > 0 else 0
    while i < n and queued == 0:
        if n_tx >= tx_cap:
            break
        off = batch.off[i]
        pf = prefetch_range(buf, max(pf, off), off, pf_end)   # stream the frames ahead into cache
        timed = ((batch.first_index + i) & sample_mask) == 0
        if timed:
            t0 = monotonic_ns()
        cl = np.int64(batch.caplen[i])
        ts = batch.ts_ns[i]
        state.counters[C_PACKETS] += 1
        state.counters[C_BYTES] += cl
        if state.counters[C_TS_FIRST] < 0:
            state.counters[C_TS_FIRST] = ts
        state.counters[C_TS_LAST] = ts
        st, poff, psz, sport, dport = udp_payload(buf, off, cl, batch.linktype[i])
        shred = False
        if st == 0:
            kind = state.port_kind[dport]
            if kind == PORT_IGNORE:
                st = ERR_NOT_SOLANA
            elif kind == PORT_SHRED:
                shred = True
            else:
                r = decode_txn(buf, poff, poff + psz, out.txn, 0, out.instrs, 0, out.luts, 0)
                if r < 0:
                    if kind == PORT_AUTO and shred_kind(buf, poff, psz) != KIND_NONE:
                        shred = True
                    else:
                        st = r
                elif _seen_before(state.dedup, state.dedup_meta, buf, txn.sig_off):
                    st = DUPLICATE
                else:
                    st = TXN
                    n_tx, n_prog = _emit(buf, txn, state, out, n_tx, n_prog, batch.first_index + i, ts, -1,
                                         ORIGIN_UDP, -1, -1)
            if shred:
                st = add_data_shred(ds, buf, poff, psz, ts, batch.first_index + i)
                if st == SHRED or st == DUPLICATE:
                    state.counters[C_SHREDS] += 1
                if _has_queued(ds):
                    n_tx, n_prog, queued = _drain_shred_txns(state, ds, out, n_tx, n_prog)
        out.pkt_status[i] = st
        state.status_counts[st - STATUS_MIN] += 1
        if timed:
            record(state.hist_counts, state.hist_stats, HIST_PACKET_NS, monotonic_ns() - t0)
        i += 1
    record(state.hist_counts, state.hist_stats, HIST_BATCH_NS, monotonic_ns() - t_batch)
    return i, n_tx, n_prog, queued
