"""``process_batch``: the engine's one jitted call per FrameBatch.

Per frame: link/IP/UDP walk (wire/net.py) -> payload kind by destination port
(transaction, shred, auto, ignore) -> transaction decode and sanitize (wire/txn.py) ->
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

from ..binary import prefetch_upto, u64le
from ..metrics.clock import monotonic_ns
from ..metrics.hist import record
from ..wire.net import udp_payload
from ..wire.shred import KIND_NONE, check_shred, shred_kind
from ..wire.status import DUPLICATE, ERR_NOT_SOLANA, SHRED, STATUS_MIN, TXN
from ..wire.txn import INSTR_DTYPE, LUT_DTYPE, PACKET_DATA_SIZE, TXN_DTYPE, decode_txn
from .features import PROGRAMS_PER_TX_MAX, TX_DTYPE, fill_features
from .state import (C_BYTES, C_PACKETS, C_SHREDS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST, HIST_BATCH_NS,
                    HIST_PACKET_NS, P_SAMPLE_MASK, PORT_AUTO, PORT_IGNORE, PORT_SHRED)

PROG_ROWS_PER_TX = 8     # program-id rows reserved per transaction row (refilled when short)


class BatchOut(NamedTuple):
    """Preallocated output rows of one process_batch call (reused batch after batch)."""

    pkt_status: np.ndarray  # int16[F] status of each frame of the batch (wire/status.py)
    tx: np.ndarray          # TX_DTYPE[T] one row per decoded transaction
    prog_ids: np.ndarray    # int32[T * PROG_ROWS_PER_TX + 64] program key ids from tx[i]._prog_first on
    txn: np.ndarray         # TXN_DTYPE[1] scratch: the transaction being decoded
    instrs: np.ndarray      # INSTR_DTYPE[1232] scratch: its instructions
    luts: np.ndarray        # LUT_DTYPE[40] scratch: its lookup tables


def new_batch_out(frames: int) -> BatchOut:
    return BatchOut(np.zeros(frames, np.int16), np.zeros(frames, TX_DTYPE),
                    np.zeros(frames * PROG_ROWS_PER_TX + PROGRAMS_PER_TX_MAX, np.int32), np.zeros(1, TXN_DTYPE),
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


@njit(cache=True, nogil=True)
def process_batch(batch, state, out, start):
    """Process frames ``[start, batch.n)``. Returns (next_frame, n_tx, n_prog_ids).

    ``next_frame < batch.n`` means the output rows filled up: hand them on and call again.
    """
    buf = batch.buf
    n = batch.off.shape[0]
    t_batch = monotonic_ns()
    sample_mask = state.params[P_SAMPLE_MASK]
    n_tx = 0
    n_prog = 0
    tx_cap = out.tx.shape[0]
    prog_cap = out.prog_ids.shape[0]
    txn = out.txn[0]
    i = start
    pf = batch.off[start] if start < n else 0
    while i < n:
        if n_tx >= tx_cap or n_prog + PROGRAMS_PER_TX_MAX > prog_cap:
            break
        off = batch.off[i]
        pf = prefetch_upto(buf, max(pf, off), off)     # stream the frames ahead into cache
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
        if st == 0:
            kind = state.port_kind[dport]
            if kind == PORT_IGNORE:
                st = ERR_NOT_SOLANA
            elif kind == PORT_SHRED:
                st = check_shred(buf, poff, psz)
            else:
                r = decode_txn(buf, poff, poff + psz, out.txn, 0, out.instrs, 0, out.luts, 0)
                if r < 0:
                    if kind == PORT_AUTO and shred_kind(buf, poff, psz) != KIND_NONE:
                        st = check_shred(buf, poff, psz)
                    else:
                        st = r
                elif _seen_before(state.dedup, state.dedup_meta, buf, txn.sig_off):
                    st = DUPLICATE
                else:
                    st = TXN
                    row = out.tx[n_tx]
                    row.packet_index = batch.first_index + i
                    row.ts_ns = ts
                    row.slot = -1
                    n_prog += fill_features(buf, txn, out.instrs, state.keys, state.key_slots, state.key_meta,
                                            row, out.prog_ids, n_prog, state.prog_tx_counts)
                    n_tx += 1
                    state.counters[C_TRANSACTIONS] += 1
            if st == SHRED:
                state.counters[C_SHREDS] += 1
        out.pkt_status[i] = st
        state.status_counts[st - STATUS_MIN] += 1
        if timed:
            record(state.hist_counts, state.hist_stats, HIST_PACKET_NS, monotonic_ns() - t0)
        i += 1
    record(state.hist_counts, state.hist_stats, HIST_BATCH_NS, monotonic_ns() - t_batch)
    return i, n_tx, n_prog
