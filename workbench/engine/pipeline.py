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

from ..binary import prefetch, prefetch_range, u64le
from ..capture.clock import monotonic_ns
from ..metrics.hist import record_call
from ..linktypes import LINKTYPE_SOLANA_LANDED
from ..wire.net import guess_txn_sig_off, landed_payload, udp_payload
from ..wire.shred import KIND_NONE, shred_kind
from ..wire.status import DUPLICATE, ERR_NOT_SOLANA, SHRED, STATUS_MIN, TXN
from ..wire.programs.events import EVENT_DTYPE
from ..wire.programs.orca_whirlpool import ID_ORCA_WHIRLPOOL
from ..wire.programs.raydium_amm_v4 import ID_RAYDIUM_AMM_V4
from ..wire.programs.raydium_cpmm import ID_RAYDIUM_CPMM
from ..wire.txn import INSTR_DTYPE, LUT_DTYPE, PACKET_DATA_SIZE, TXN_DTYPE, decode_txn
from .deshred import M_Q_HEAD, M_Q_TAIL, READY_DTYPE, add_data_shred, drain_ready
from .features import ORIGIN_BLOCK, ORIGIN_SHRED, ORIGIN_UDP, PROGRAMS_PER_TX_MAX, TX_DTYPE, fill_features
from .market.counters import D_OPPS
from .market.layout import M_POOLS
from .market.transaction import OPPS_PER_TX_MAX, SWAPS_PER_TX_MAX, market_tx, see_slot
from .opps import N_MODEL_FEATURES, OPP_DTYPE, SWAP_DTYPE
from .score.kernels import prefetch_model, score_opportunity
from .score.tree_model import scratch_items
from .state import (C_BYTES, C_SHRED_TX_REJECTED, C_PACKETS, C_SHREDS, C_TRANSACTIONS, C_TS_FIRST, C_TS_LAST,
                    HIST_BATCH_NS, HIST_DETECT_NS, HIST_PACKET_NS, HIST_SCORE_NS, P_DETECT, P_SAMPLE_MASK, P_TIP_LAMPORTS, PORT_AUTO,
                    PORT_IGNORE, PORT_SHRED, PORT_TXN)

DRAIN_CHUNK = 256        # shred transactions moved from the deshred queue per drain
DEDUP_AHEAD = 4          # frames ahead of the walk whose duplicate-filter slot is prefetched
DEX_MASK = np.int64((1 << ID_RAYDIUM_AMM_V4) | (1 << ID_RAYDIUM_CPMM) | (1 << ID_ORCA_WHIRLPOOL))

# out.counts: rows written by the last call, and the drained shred transactions carried
# from one call to the next (rows out.ready[R_POS:R_N] are still to be decoded)
N_SWAPS, N_OPPS, R_POS, R_N = range(4)
# a zero typed int64, not a literal: a literal argument makes numba compile the callee apart
# for that value (and precompile.py compiles it with int64)
Z = np.int64(0)


class MarketScratch(NamedTuple):
    """Scratch of market_tx (engine/market/transaction.py) for one transaction."""
    events: np.ndarray      # EVENT_DTYPE[SWAPS_PER_TX_MAX]
    sw_pool: np.ndarray     # int64[SWAPS_PER_TX_MAX] pool row of each event (-1 none, -2 unresolved)
    sw_dir: np.ndarray      # int64[SWAPS_PER_TX_MAX] 1 token a in, 0 token b in, -1 unknown
    undo: np.ndarray        # uint64[SWAPS_PER_TX_MAX, 5] pool, reserves, Whirlpool price before each swap
    route: np.ndarray       # int64[3] three-pool cycle being sized
    sides: np.ndarray       # int64[3] its input sides
    fx: np.ndarray          # float64[N_MODEL_FEATURES] features of the opportunities of the current swap
    xx: np.ndarray          # float32[scratch_items(N_MODEL_FEATURES)] scratch of the scorer (score.py)


class BatchOut(NamedTuple):
    """Preallocated output rows of one process_batch call (reused batch after batch)."""

    pkt_status: np.ndarray  # int16[F] status of each frame of the batch (wire/status.py)
    tx: np.ndarray          # TX_DTYPE[T] one row per decoded transaction
    prog_ids: np.ndarray    # int32[T * 64] program key ids, from tx[i]._prog_first on (room for the worst case)
    ready: np.ndarray       # READY_DTYPE[256] shred transactions drained from the reassembly, to decode
    txn: np.ndarray         # TXN_DTYPE[1] scratch: the transaction being decoded
    instrs: np.ndarray      # INSTR_DTYPE[1232] scratch: its instructions
    luts: np.ndarray        # LUT_DTYPE[40] scratch: its lookup tables
    ins_pid: np.ndarray     # int32[1232] scratch: key id of each instruction's program
    swaps: np.ndarray       # SWAP_DTYPE[F + SWAPS_PER_TX_MAX] swaps on snapshot pools
    opps: np.ndarray        # OPP_DTYPE[F + OPPS_PER_TX_MAX] opportunities
    counts: np.ndarray      # int64[4] N_SWAPS, N_OPPS of the last call; R_POS, R_N carried between calls
    ctx: np.ndarray         # int64[7] scratch: the transaction's time, packet, row, slot, landed failed (market_tx)
    mscratch: MarketScratch


def new_batch_out(frames: int) -> BatchOut:
    """Rows for one call over up to ``frames`` frames (and as many shred transactions)."""
    ms = MarketScratch(np.zeros(SWAPS_PER_TX_MAX, EVENT_DTYPE), np.zeros(SWAPS_PER_TX_MAX, np.int64),
                       np.zeros(SWAPS_PER_TX_MAX, np.int64), np.zeros((SWAPS_PER_TX_MAX, 5), np.uint64),
                       np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(N_MODEL_FEATURES, np.float64),
                       np.zeros(scratch_items(N_MODEL_FEATURES), np.float32))
    return BatchOut(np.zeros(frames, np.int16), np.zeros(frames, TX_DTYPE),
                    np.zeros(frames * PROGRAMS_PER_TX_MAX, np.int32), np.zeros(DRAIN_CHUNK, READY_DTYPE),
                    np.zeros(1, TXN_DTYPE),
                    np.zeros(PACKET_DATA_SIZE, INSTR_DTYPE), np.zeros(PACKET_DATA_SIZE // 32 + 1, LUT_DTYPE),
                    np.zeros(PACKET_DATA_SIZE, np.int32), np.zeros(frames + SWAPS_PER_TX_MAX, SWAP_DTYPE),
                    np.zeros(frames + OPPS_PER_TX_MAX, OPP_DTYPE), np.zeros(4, np.int64), np.zeros(7, np.int64), ms)


@njit(cache=True, nogil=True, inline="always")
def _dedup_key(buf, sig_off):
    """The filter's key of a first signature: its leading 8 bytes (0 is the empty slot, so 1)."""
    key = u64le(buf, sig_off)
    return key if key != 0 else np.uint64(1)


@njit(cache=True, nogil=True, inline="always")
def _dedup_slot(key, mask):
    """The first slot probed for ``key`` (Fibonacci hashing)."""
    return np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask


@njit(cache=True, nogil=True, inline="always")
def _prefetch_dedup(dedup, buf, off, caplen, linktype):
    """Prefetch the filter slot a frame's first signature will probe, if the frame looks like a
    plain UDP transaction. The filter is far larger than the caches and its slots are random,
    so each probe is a memory miss; started a few frames ahead, it overlaps their work."""
    p = guess_txn_sig_off(buf, off, caplen, linktype)
    if p >= 0:
        prefetch(dedup, _dedup_slot(_dedup_key(buf, p), dedup.shape[0] - 1))


@njit(cache=True, nogil=True, inline="always")
def _seen_before(dedup, dedup_meta, buf, sig_off):
    """Insert the first signature's leading 8 bytes; True if they were there already.

    The filter is cleared when half full (as agave's sigverify deduper is reset), so the
    memory is fixed and the result depends only on the capture.
    """
    key = _dedup_key(buf, sig_off)
    mask = dedup.shape[0] - 1
    s = _dedup_slot(key, mask)
    while True:
        v = dedup[s]
        if v == 0:
            if dedup_meta[0] >= (dedup.shape[0] >> 1):
                dedup[:] = 0
                dedup_meta[0] = 0
                s = _dedup_slot(key, mask)
            dedup[s] = key
            dedup_meta[0] += 1
            return False
        if v == key:
            return True
        s = (s + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def _has_queued(ds):
    """True if completed entry batches left transactions to drain."""
    return ds.meta[M_Q_HEAD] < ds.meta[M_Q_TAIL]


@njit(cache=True, nogil=True, _nrt=False)
def process_batch(batch, state, ds, out, start, mk, model):
    """Process frames ``[start, batch.n)``. Returns (next_frame, n_tx, n_prog_ids, shred_txns_queued);
    the swap and opportunity rows written are ``out.counts[N_SWAPS]`` and ``out.counts[N_OPPS]``.

    ``mk`` is the market (engine/market/) or None, ``model`` the scorer (engine/score/) or
    None: numba prunes the branches of an argument that is None, so a replay without a market
    never compiles the market code (much of the engine's compile time).

    ``next_frame < batch.n`` (or transactions still queued) means the output rows filled
    up: hand them on and call again. An empty batch only drains queued shred transactions.
    ``out`` (``new_batch_out(frames)``) must have rows for at least ``batch.n`` frames: each
    frame's status is written at its index in the batch (ValueError otherwise, before any frame).

    One loop takes the next transaction from wherever it comes: first the shred
    transactions already drained, then the reassembly's queue, then the next frame. So
    decode, features and the market run from ONE place in the code (one specialisation to
    compile, whether the bytes are the capture's or the reassembly slab's).
    """
    buf = batch.buf
    slab = ds.slab
    n = batch.off.shape[0]
    if n > out.pkt_status.shape[0]:     # each frame's status is written at its index in the batch
        raise ValueError("process_batch: the batch holds more frames than its output has rows for; "
                         "make the output with new_batch_out(frames) for at least batch.n frames")
    t_batch = monotonic_ns()
    sample_mask = state.params[P_SAMPLE_MASK]
    tip = state.params[P_TIP_LAMPORTS]
    tx_cap = out.tx.shape[0]
    sw_cap = out.swaps.shape[0] - SWAPS_PER_TX_MAX
    opp_cap = out.opps.shape[0] - OPPS_PER_TX_MAX
    txn = out.txn[0]
    counts = out.counts
    ctx = out.ctx
    n_tx, n_prog, n_sw, n_opp = 0, Z, Z, Z     # (market_tx and fill_features take them: int64, never a literal)
    i = start
    pf = batch.off[start] if start < n else 0
    # prefetch no further than the batch's last frame (a live ring block is much smaller
    # than the buffer it sits in)
    pf_end = batch.off[n - 1] + batch.caplen[n - 1] if n > 0 else 0
    while n_tx < tx_cap and n_sw <= sw_cap and n_opp <= opp_cap:
        # --- where the next transaction comes from ---------------------------------------
        timed = False
        frame = False
        st = 0
        t0 = 0
        if counts[R_POS] < counts[R_N]:                  # a drained shred transaction
            r = out.ready[counts[R_POS]]
            counts[R_POS] += 1
            tb = slab
            toff, tend = r.off, r.end
            pidx, ts, slot, origin, ots, entry = r.packet_index, r.ts_done_ns, r.slot, ORIGIN_SHRED, r.ts_first_ns, \
                np.int64(r.entry)
            failed = 0
            kind = PORT_TXN
        elif _has_queued(ds):                            # completed entry batches: drain a chunk
            k, _ = drain_ready(ds, out.ready, 0, min(tx_cap - n_tx, out.ready.shape[0]))
            counts[R_POS] = 0
            counts[R_N] = k
            continue
        elif i < n:                                      # the next frame
            frame = True
            off = batch.off[i]
            pf = prefetch_range(buf, max(pf, off), off, pf_end)   # stream the frames ahead into cache
            ahead = i + DEDUP_AHEAD
            if ahead < n:
                _prefetch_dedup(state.dedup, buf, batch.off[ahead], np.int64(batch.caplen[ahead]),
                                batch.linktype[ahead])
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
            pidx, ots, entry = batch.first_index + i, np.int64(-1), np.int64(-1)
            tb = buf
            if batch.linktype[i] == LINKTYPE_SOLANA_LANDED:   # a backfilled block's transaction: no ports
                st, poff, psz, slot, failed = landed_payload(buf, off, cl)
                origin = ORIGIN_BLOCK
                kind = PORT_TXN if st == 0 else PORT_IGNORE
            else:
                st, poff, psz, sport, dport = udp_payload(buf, off, cl, batch.linktype[i])
                slot, origin, failed = np.int64(-1), ORIGIN_UDP, 0
                kind = state.port_kind[dport] if st == 0 else PORT_IGNORE
                if st == 0 and kind == PORT_IGNORE:
                    st = ERR_NOT_SOLANA
            toff, tend = poff, poff + psz
        else:
            break
        # --- decode, features, market: the one place ---------------------------------------
        shred = frame and st == 0 and kind == PORT_SHRED
        if (not frame) or (st == 0 and kind != PORT_SHRED):
            r_st = decode_txn(tb, toff, tend, out.txn, Z, out.instrs, Z, out.luts, Z)
            if r_st < 0:
                if not frame:
                    state.counters[C_SHRED_TX_REJECTED] += 1
                elif kind == PORT_AUTO and shred_kind(buf, toff, tend - toff) != KIND_NONE:
                    shred = True
                else:
                    st = r_st
            elif frame and _seen_before(state.dedup, state.dedup_meta, tb, txn.sig_off):
                st = DUPLICATE
            else:
                if frame:
                    st = TXN
                row = out.tx[n_tx]
                row.tx_index = state.counters[C_TRANSACTIONS]
                row.packet_index = pidx
                row.ts_ns = ts
                row.slot = slot
                row.origin = origin
                row.origin_ts_ns = ots
                row.entry_index = entry
                n_prog += fill_features(tb, txn, out.instrs, state.keys, state.key_slots, state.key_meta, row,
                                        out.prog_ids, n_prog, state.prog_tx_counts, out.ins_pid)
                state.counters[C_TRANSACTIONS] += 1
                if mk is not None and (row.program_mask & DEX_MASK) != 0 and mk.meta[M_POOLS] > 0:
                    ctx[0] = ts
                    ctx[1] = pidx
                    ctx[2] = row.tx_index
                    ctx[3] = slot
                    ctx[5] = 0
                    ctx[6] = failed
                    o0 = n_opp
                    if model is not None:             # the trees toward L2 while the detectors work
                        prefetch_model(model)
                    n_sw, n_opp = market_tx(tb, txn, out.instrs, out.luts, out.ins_pid, row, state.keys,
                                            state.key_slots, mk, out.mscratch, out.swaps, n_sw, out.opps, n_opp,
                                            tip, state.dcount, state.ev_rejects, ctx, state.params[P_DETECT])
                    for j in range(o0, n_opp):
                        o = out.opps[j]
                        for b in range(64):              # (a loop: a slice copy would need NRT)
                            o._sig[b] = row._sig[b]
                        # (each histogram an int64, not a literal: one compile of record_call for all)
                        record_call(state.hist_counts, state.hist_stats, np.int64(HIST_DETECT_NS), o.detect_ns)
                        if model is not None:
                            t_s = monotonic_ns()
                            o.score = score_opportunity(model, o.features, out.mscratch.xx)
                            record_call(state.hist_counts, state.hist_stats, np.int64(HIST_SCORE_NS),
                                        monotonic_ns() - t_s)
                    state.dcount[D_OPPS] += n_opp - o0
                n_tx += 1
        if not frame:
            continue
        if shred:
            st = add_data_shred(ds, buf, toff, tend - toff, ts, pidx)
            if st == SHRED or st == DUPLICATE:
                state.counters[C_SHREDS] += 1
                if mk is not None:                       # the stream's slot clock (f_ms_since_slot_start)
                    see_slot(mk.meta, ds.hdr[0].slot, ts)
        out.pkt_status[i] = st
        state.status_counts[st - STATUS_MIN] += 1
        if timed:
            record_call(state.hist_counts, state.hist_stats, np.int64(HIST_PACKET_NS), monotonic_ns() - t0)
        i += 1
    counts[N_SWAPS] = n_sw
    counts[N_OPPS] = n_opp
    queued = 1 if (counts[R_POS] < counts[R_N] or _has_queued(ds)) else 0
    record_call(state.hist_counts, state.hist_stats, np.int64(HIST_BATCH_NS), monotonic_ns() - t_batch)
    return i, n_tx, n_prog, queued
