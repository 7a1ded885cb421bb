"""Pool state, per swap: which pool, which direction, what the program would do, applying it.

A swap event (wire/programs/) names its pool by a static account or through a lookup
table of the snapshot (``_resolve``); its direction is the instruction's when it carries
one (Whirlpool), else the mint of a source/destination account, vault or mint account
(``_direction``). ``_swap_result`` runs the program's exact maths (constant_product.py,
whirlpool.py) on the current state without changing it; ``_apply`` moves the reserves
(and a Whirlpool's price) and refreshes the oracle prices the pool sets. Whirlpools are
tracked within the current tick range: a swap that reaches its end is applied to there
and flagged ``crosses_tick``. ``_swap_row`` writes the swaps.parquet row; ``_recent``
counts a pool's recent swaps from its history ring (a model feature).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...wire.keys import lookup
from ...wire.programs.account_resolution import resolve_lut_account
from ...wire.programs.events import ACCT_IN_LUT
from ..opps import SW_AMM_ERROR, SW_APPLIED, SW_CROSSES_TICK, SW_SLIPPAGE
from .amm_status import AMM_OK
from .constant_product import cp_amount_in, cp_amount_out
from .layout import (PK_RAYDIUM_V4, PK_WHIRLPOOL, SWAP_HISTORY, WP_LIQ_H, WP_LIQ_L, WP_LOWER_H, WP_LOWER_L, WP_PRICE_H,
                     WP_PRICE_L, WP_UPPER_H, WP_UPPER_L)
from .prices import oracle_price
from .whirlpool import WP_INCOMPLETE, wp_swap_within_tick
from ...wide import CEIL_PLAIN, CEIL_RAYDIUM, U0

MS = 1_000_000               # ns per ms


# ============================================================================================
# exact pool maths
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _fee_kind(mk, p):
    return CEIL_RAYDIUM if mk.pool_kind[p] == PK_RAYDIUM_V4 else CEIL_PLAIN


@njit(cache=True, nogil=True, inline="always")
def _gamma(mk, p):
    return mk.pool_gamma[p]


@njit(cache=True, nogil=True)
def _out(mk, p, side_in, amount, r_in, r_out):
    """Exact output of ``amount`` into pool p's side ``side_in`` at reserves (r_in, r_out); 0 on error."""
    st, out, _ = cp_amount_out(amount, r_in, r_out, mk.pool_fee[p, 0], mk.pool_fee[p, 1], _fee_kind(mk, p))
    return out if st == AMM_OK else U0


@njit(cache=True, nogil=True)
def _in(mk, p, amount_out, r_in, r_out):
    """Exact input the program charges for ``amount_out`` (0 on error)."""
    curve = np.int64(CEIL_RAYDIUM)
    gross = np.int64(CEIL_RAYDIUM if mk.pool_kind[p] == PK_RAYDIUM_V4 else CEIL_PLAIN)
    st, a, _ = cp_amount_in(amount_out, r_in, r_out, mk.pool_fee[p, 0], mk.pool_fee[p, 1], curve, gross)
    return a if st == AMM_OK else U0


@njit(cache=True, nogil=True, inline="always")
def _swap_result(mk, p, a_to_b, exact_in, amount, limit, lim_h, lim_l):
    """What the program would do: (status, amount_in, amount_out, new price hi, lo) on the
    current state, without changing it. For Whirlpool amount_in includes the fee."""
    i = 0 if a_to_b else 1
    if mk.pool_kind[p] == PK_WHIRLPOOL:
        w = mk.pool_wp[p]
        if a_to_b:
            th, tl = w[WP_LOWER_H], w[WP_LOWER_L]
        else:
            th, tl = w[WP_UPPER_H], w[WP_UPPER_L]
        st, a_in, a_out, fee, nh, nl, flags = wp_swap_within_tick(amount, mk.pool_fee[p, 0], w[WP_LIQ_H], w[WP_LIQ_L],
                                                                  w[WP_PRICE_H], w[WP_PRICE_L], lim_h, lim_l, th, tl,
                                                                  exact_in == 1, a_to_b == 1)
        if st != AMM_OK:
            return SW_AMM_ERROR, U0, U0, U0, U0
        paid = a_in + fee
        if flags & WP_INCOMPLETE:
            return SW_CROSSES_TICK, paid, a_out, nh, nl
        if (exact_in == 1 and a_out < limit) or (exact_in == 0 and paid > limit):
            return SW_SLIPPAGE, paid, a_out, U0, U0
        return SW_APPLIED, paid, a_out, nh, nl
    r_in = mk.pool_res[p, i]
    r_out = mk.pool_res[p, 1 - i]
    if exact_in == 1:
        out = _out(mk, p, i, amount, r_in, r_out)
        if out == U0:
            return SW_AMM_ERROR, amount, U0, U0, U0
        if out < limit:
            return SW_SLIPPAGE, amount, out, U0, U0
        if r_in + amount < r_in:
            return SW_AMM_ERROR, amount, out, U0, U0
        return SW_APPLIED, amount, out, U0, U0
    a = _in(mk, p, amount, r_in, r_out)
    if a == U0:
        return SW_AMM_ERROR, U0, amount, U0, U0
    if a > limit:
        return SW_SLIPPAGE, a, amount, U0, U0
    if r_in + a < r_in:
        return SW_AMM_ERROR, a, amount, U0, U0
    return SW_APPLIED, a, amount, U0, U0


@njit(cache=True, nogil=True, inline="always")
def _apply(mk, p, a_to_b, a_in, a_out, nh, nl):
    i = 0 if a_to_b else 1
    mk.pool_res[p, i] += a_in
    r = mk.pool_res[p, 1 - i]
    mk.pool_res[p, 1 - i] = r - a_out if a_out <= r else U0
    if mk.pool_kind[p] == PK_WHIRLPOOL:
        mk.pool_wp[p, WP_PRICE_H] = nh
        mk.pool_wp[p, WP_PRICE_L] = nl
    for k in range(2):
        t = mk.pool_mint[p, k]
        if mk.token_oracle[t] == p:
            mk.token_price[t] = oracle_price(mk, t)


@njit(cache=True, nogil=True)
def _recent(mk, p, t):
    """Applied swaps on pool p with event time in [t - w, t) for w = 10, 100, 1000 ms (one
    backward pass over its ring of the last SWAP_HISTORY; the trigger's own time excluded)."""
    n = mk.pool_nswaps[p]
    c10 = 0
    c100 = 0
    c1000 = 0
    j = n - 1
    lo = max(np.int64(0), n - SWAP_HISTORY)
    while j >= lo:
        s = mk.pool_swaps[p, j & (SWAP_HISTORY - 1)]
        j -= 1
        if s >= t:
            continue
        if s < t - 1000 * MS:
            break
        c1000 += 1
        if s >= t - 100 * MS:
            c100 += 1
            if s >= t - 10 * MS:
                c10 += 1
    return np.float64(c10), np.float64(c100), np.float64(c1000)



# ============================================================================================
# a swap event's pool, direction, amounts and row
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _resolve(buf, ev, keys, key_slots, mk):
    """Pool row of a swap event: >= 0, -1 not in the snapshot, -2 its lookup table is unknown."""
    if ev.pool_off >= 0:
        kid = lookup(keys, key_slots, buf, ev.pool_off)
    elif ev.pool_off == ACCT_IN_LUT:
        row = resolve_lut_account(buf, ev.pool_lut_key_off, np.int64(ev.pool_lut_index), mk.tbl_keys, mk.tbl_first,
                                  mk.tbl_cnt)
        if row < 0:
            return -2
        kid = mk.tbl_kid[row]
    else:
        return -1
    if kid < 0:
        return -1
    return mk.pool_of_key[kid]


@njit(cache=True, nogil=True, inline="always")
def _mint_at(buf, off, keys, key_slots, mk):
    if off < 0:
        return -1
    kid = lookup(keys, key_slots, buf, off)
    return mk.mint_of_key[kid] if kid >= 0 else -1


@njit(cache=True, nogil=True, inline="always")
def _direction(buf, ev, p, keys, key_slots, mk):
    """1 token a in, 0 token b in, -1 unknown."""
    if ev.a_to_b >= 0:
        return np.int64(ev.a_to_b)
    a = mk.pool_mint[p, 0]
    b = mk.pool_mint[p, 1]
    for off, into in ((ev.src_off, True), (ev.vault_in_off, True), (ev.mint_in_off, True),
                      (ev.dst_off, False), (ev.vault_out_off, False), (ev.mint_out_off, False)):
        t = _mint_at(buf, off, keys, key_slots, mk)
        if t >= 0 and (t == a or t == b):
            return np.int64(1 if (t == a) == into else 0)
    return np.int64(-1)


@njit(cache=True, nogil=True, inline="always")
def _amount_limit(ev):
    """(amount, limit) of a swap event: exact in (amount in, min out) or exact out (amount out, max in)."""
    if ev.exact_in == 1:
        return ev.amount_in, ev.amount_out
    return ev.amount_out, ev.amount_in


@njit(cache=True, nogil=True, inline="always")
def _swap_row(swaps, ns, ev, p, d, status, a_in, a_out, mk, ctx):
    if ns >= swaps.shape[0]:
        return ns
    s = swaps[ns]
    s.ts_ns = ctx[0]
    s.packet_index = ctx[1]
    s.tx_index = ctx[2]
    s.slot = ctx[3]
    s.pool_row = p
    s.instr_index = ev.instr_index
    s.program = mk.pool_kind[p]
    s.a_to_b = d
    s.exact_in = ev.exact_in
    s.limit = ev.amount_out if ev.exact_in == 1 else ev.amount_in
    s.amount_in = a_in
    s.amount_out = a_out
    s.reserve_a = mk.pool_res[p, 0]
    s.reserve_b = mk.pool_res[p, 1]
    s.status = status
    return ns + 1

