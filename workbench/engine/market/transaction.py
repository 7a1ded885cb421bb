"""``market_tx``: one transaction's swaps through the pool state and the detectors.

``market_tx`` runs for every decoded transaction that invokes a DEX program while a
market snapshot is loaded (snapshot.py). It reads the transaction's normalised events
(wire/programs/), resolves each swap's pool and its direction (pools.py), applies the
swaps to the pool table in capture order, and runs the detectors: sandwich before a
swap on a constant-product pool is applied, two- and three-pool arbitrage and
liquidation after it (sandwich.py, arbitrage.py, liquidation.py).

Transactions are atomic: a swap that would fail its limit fails its transaction, and no
swap of it is applied (a first pass applies them with an undo log; a second pass, only
when every swap passed, applies them again with the detectors; a transaction with one
swap skips the first pass).

Calls and inlining. numba reference-counts every array an argument carries on each call
(two atomic operations per array) in a function compiled with NRT, and the Market is a
tuple of some thirty arrays. So market_tx and the functions it calls per swap run
without NRT (``_nrt=False``: nothing in them allocates), which makes a call cost only
its arguments. market_tx is one call per DEX transaction from process_batch, compiled
on its own: inlined, its body made process_batch's compile several times longer, and a
first run compiles market_tx in a process of its own while the rest of the engine
compiles beside it (engine/precompile.py). Its small per-swap helpers are ``inline="always"``
into it; the exact sizings, the decoders and the opportunity row writer stay calls
(benchmarks/bench_detect.py measures detection on and off). The detectors (sandwich,
arbitrage, liquidation) are compiled on their own and ``forceinline``: numba types and
lowers each once, in a first run's worker of its own, and LLVM inlines the machine-level
function when it links market_tx, so the hot path makes no call per swap (numba's own
``inline="always"`` copies and retypes the callee's IR inside market_tx's compile, which
made that the longest single step of a first run).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...capture.clock import monotonic_ns
from ...wire.programs.dispatch import decode_swaps
from ...wire.programs.events import KIND_SWAP
from ..opps import (F_NINS, F_NPROG, F_PRIO, F_SIZE, F_SLIPPAGE, F_SLOT_MS, F_TIP, SW_AMM_ERROR, SW_APPLIED,
                    SW_DIRECTION_UNRESOLVED, SW_REVERTED, SW_SLIPPAGE)
from .arbitrage import _arb_three, _arb_two
from .counters import (D_APPLIED, D_EXACT_ARB2, D_EXACT_ARB3, D_EXACT_SANDWICH, D_FAILED_TX, D_OPP_ROWS_FULL,
                       D_POOL_UNRESOLVED, D_SWAPS, D_UNKNOWN_POOL, D_UNPRICED)
from .layout import M_SLOT, M_SLOT_TS, PK_WHIRLPOOL, SWAP_HISTORY, WP_PRICE_H, WP_PRICE_L
from .liquidation import _liquidations
from .pools import MS, _amount_limit, _apply, _direction, _resolve, _swap_result, _swap_row
from .sandwich import _sandwich
from ...wide import U0

SWAPS_PER_TX_MAX = 64        # swap events handled per transaction (events scratch size)
OPPS_PER_TX_MAX = 512        # opportunity rows one transaction may add (room the caller keeps free)


@njit(cache=True, nogil=True, inline="always")
def see_slot(meta, slot, ts):
    """Advance the slot clock: a slot above the latest seen starts at ``ts`` (event time of the
    first shred or shred transaction of it); -1 (a UDP transaction) and older slots leave it."""
    if slot > meta[M_SLOT]:
        meta[M_SLOT] = slot
        meta[M_SLOT_TS] = ts


@njit(cache=True, nogil=True, _nrt=False)
def market_tx(buf, txn, instrs, luts, ins_pid, row, keys, key_slots, mk, sc, swaps, ns, opps, no, tip,
              dcount, ev_rejects, ctx, detect):
    """Decode the swaps of one transaction, apply them, run the detectors.

    ``sc`` is the scratch (BatchOut fields: events, pools, dirs, undo, route, sides, fx);
    ``ctx`` int64[7]: ts_ns, packet_index, tx_index, slot, detection start (wall ns), seq, landed failed
    (1: a backfilled transaction that failed on chain: its swaps are recorded 'reverted', none applied).
    ``detect`` 0 tracks the pools without running the detectors (the benchmark's "off").
    Returns the new (ns, no).
    """
    events, pools, dirs, undo, fx = sc.events, sc.sw_pool, sc.sw_dir, sc.undo, sc.fx
    ne = decode_swaps(buf, txn, instrs, luts, ins_pid, events, np.int64(0), ev_rejects)
    if ne <= 0:
        return ns, no
    # resolve pools and directions
    m = 0
    for e in range(ne):
        ev = events[e]
        if ev.kind != KIND_SWAP:
            pools[e] = -1
            continue
        p = _resolve(buf, ev, keys, key_slots, mk)
        if p == -2:
            dcount[D_POOL_UNRESOLVED] += 1
        elif p < 0:
            dcount[D_UNKNOWN_POOL] += 1
        pools[e] = p
        if p >= 0:
            dcount[D_SWAPS] += 1
            dirs[e] = _direction(buf, ev, p, keys, key_slots, mk)
            if dirs[e] >= 0:
                m += 1
    if ctx[6] != 0:       # landed with an error (a backfilled block): the chain applied none of its swaps
        for e in range(ne):
            if pools[e] >= 0:
                ns = _swap_row(swaps, ns, events[e], pools[e], dirs[e] if dirs[e] >= 0 else -1, SW_REVERTED,
                               events[e].amount_in, events[e].amount_out, mk, ctx)
        return ns, no
    if m == 0:
        for e in range(ne):
            if pools[e] >= 0:
                ns = _swap_row(swaps, ns, events[e], pools[e], -1, SW_DIRECTION_UNRESOLVED, U0, U0, mk, ctx)
        return ns, no
    # first pass: do they all pass their limits? (several swaps: applied with an undo log, so
    # each sees the one before it, then rolled back)
    failed = -1
    fail_status = SW_APPLIED
    k = 0
    for e in range(ne):
        p = pools[e]
        if p < 0 or dirs[e] < 0:
            continue
        ev = events[e]
        amount, limit = _amount_limit(ev)
        st, a_in, a_out, nh, nl = _swap_result(mk, p, dirs[e], ev.exact_in, amount, limit,
                                               ev.sqrt_price_limit_hi, ev.sqrt_price_limit_lo)
        if st == SW_SLIPPAGE or st == SW_AMM_ERROR:
            failed = e
            fail_status = st
            break
        if m > 1:
            undo[k, 0] = np.uint64(p)
            undo[k, 1] = mk.pool_res[p, 0]
            undo[k, 2] = mk.pool_res[p, 1]
            undo[k, 3] = mk.pool_wp[p, WP_PRICE_H]
            undo[k, 4] = mk.pool_wp[p, WP_PRICE_L]
            k += 1
            _apply(mk, p, dirs[e], a_in, a_out, nh, nl)
    for j in range(k - 1, -1, -1):
        p = np.int64(undo[j, 0])
        mk.pool_res[p, 0] = undo[j, 1]
        mk.pool_res[p, 1] = undo[j, 2]
        mk.pool_wp[p, WP_PRICE_H] = undo[j, 3]
        mk.pool_wp[p, WP_PRICE_L] = undo[j, 4]
    if failed >= 0:
        dcount[D_FAILED_TX] += 1
        for e in range(ne):
            p = pools[e]
            if p < 0:
                continue
            ev = events[e]
            st = fail_status if e == failed else (SW_DIRECTION_UNRESOLVED if dirs[e] < 0 else SW_REVERTED)
            ns = _swap_row(swaps, ns, ev, p, dirs[e], st, ev.amount_in, ev.amount_out, mk, ctx)
        return ns, no
    # second pass: apply with the detectors
    fx[:] = np.nan
    fx[F_PRIO] = np.float64(row.priority_fee_lamports)
    fx[F_TIP] = np.float64(row.jito_tip_lamports)
    fx[F_SIZE] = np.float64(row.size)
    fx[F_NINS] = np.float64(row.num_instructions)
    fx[F_NPROG] = np.float64(row.num_programs)
    ts = ctx[0]
    slot = ctx[3]
    see_slot(mk.meta, slot, ts)
    # a UDP transaction (slot -1) is placed in the current slot: the latest the stream's shreds
    # showed, which is what a searcher watching both the TPU and a ShredStream knows
    if mk.meta[M_SLOT] >= 0 and (slot < 0 or slot == mk.meta[M_SLOT]):
        fx[F_SLOT_MS] = np.float64(ts - mk.meta[M_SLOT_TS]) / MS
    for e in range(ne):
        p = pools[e]
        if p < 0:
            continue
        ev = events[e]
        d = dirs[e]
        if d < 0:
            ns = _swap_row(swaps, ns, ev, p, d, SW_DIRECTION_UNRESOLVED, ev.amount_in, ev.amount_out, mk, ctx)
            continue
        ctx[4] = monotonic_ns()            # detection cost: from here to each row (apply included)
        fx[F_SLIPPAGE] = 0.0
        amount, limit = _amount_limit(ev)
        cp = mk.pool_kind[p] != PK_WHIRLPOOL and detect != 0
        if cp and no + OPPS_PER_TX_MAX // 2 <= opps.shape[0]:
            no, sized = _sandwich(mk, p, d, ev.exact_in, amount, limit, tip, opps, no, ctx, fx)
            if sized < 0:
                dcount[D_UNPRICED] += 1
            else:
                dcount[D_EXACT_SANDWICH] += sized
        st, a_in, a_out, nh, nl = _swap_result(mk, p, d, ev.exact_in, amount, limit, ev.sqrt_price_limit_hi,
                                               ev.sqrt_price_limit_lo)
        _apply(mk, p, d, a_in, a_out, nh, nl)
        dcount[D_APPLIED] += 1
        ns = _swap_row(swaps, ns, ev, p, d, st, a_in, a_out, mk, ctx)
        mk.pool_swaps[p, mk.pool_nswaps[p] & (SWAP_HISTORY - 1)] = ts
        mk.pool_nswaps[p] += 1
        if not cp:
            continue
        fx[F_SLIPPAGE] = 0.0
        for r in range(mk.sib_first[p], mk.sib_first[p + 1]):
            if no >= opps.shape[0]:
                dcount[D_OPP_ROWS_FULL] += 1
                break
            no, sized = _arb_two(mk, p, mk.sibs[r], tip, opps, no, ctx, fx)
            dcount[D_EXACT_ARB2] += sized
        for c in range(mk.cyc_first[p], mk.cyc_first[p + 1]):
            if no >= opps.shape[0]:
                dcount[D_OPP_ROWS_FULL] += 1
                break
            no, sized = _arb_three(mk, c, tip, opps, no, ctx, fx, sc.route, sc.sides)
            dcount[D_EXACT_ARB3] += sized
        if mk.pos_id.shape[0] > 0 and detect != 0:
            n2 = _liquidations(mk, p, tip, opps, no, ctx, fx)
            if n2 < 0:
                dcount[D_OPP_ROWS_FULL] += 1
            else:
                no = n2
    return ns, no

