"""Pool state and opportunity detection, per transaction, inside the jitted loop.

``market_tx`` runs for every decoded transaction that invokes a DEX program while a
market snapshot is loaded (engine/market.py). It reads the transaction's normalised
events (wire/programs.py), resolves each swap's pool (static key, or through the
snapshot's lookup tables) and its direction, applies the swaps to the pool table in
capture order, and runs the three detectors:

* **sandwich** (before a swap on a constant-product pool is applied): the largest
  front-run f of the victim's input token such that the victim still meets its limit
  (min out for exact-in, max in for exact-out), the back-run selling all the front-run's
  output after the victim, profit = back-run out - f in the victim's input token.
* **arbitrage** (after a swap is applied): for every other constant-product pool of the
  same pair, both orders, starting from the pair's quote token (WSOL, else USDC, else
  the trigger pool's mint b), the optimal input (amm.optimal_two_pool_arb_in, exact);
  and every three-pool cycle through the trigger pool (market.py indexes them), both
  directions, optimal input by the closed form of chained constant products
  (K d / (E + F d), d* = (sqrt(K E) - E) / F) polished on exact integer amounts.
* **liquidation** (after a swap is applied): each lending position priced by the
  swapped pool (its oracle pool, market.py) whose health crosses from >= 1 to < 1:
  repay half the debt, seize repay * (1 + bonus) worth of collateral (capped at the
  collateral); profit = repay * bonus in the debt token.

An opportunity is emitted when its profit in SOL exceeds the tip (``P_TIP_LAMPORTS``).

Transactions are atomic: a swap that would fail its limit fails its transaction, and no
swap of it is applied (a first pass applies them with an undo log; a second pass, only
when every swap passed, applies them again with the detectors; a transaction with one
swap skips the first pass).

Cost. numba reference-counts every array an argument carries on each call (two atomic
operations per array); a call passing the Market (29 arrays) and the scratch cost ~5 us
per swap that way. So market_tx and its per-swap helpers are inlined into process_batch
(which runs without NRT: ``_nrt=False``, nothing in it allocates), and only the exact
sizings, the decoders and the row writer stay calls. Measured on a 1M-packet market
capture (benchmarks/bench_detect.py): 9x slower with the calls, ~1.5x inlined.
Every candidate is first sized in float64 (closed forms, or a float bisection for
the sandwich) and dropped when its float profit is below the tip by more than the float
error can explain (``FLOAT_MARGIN``); only candidates that may pass pay for the exact
integer sizing. So quiet traffic costs a few float operations per swap.

Exactness. Amounts, reserves and profits are exact program integers (amm.py). Profits in
SOL are float64 (price = reserve ratio of the oracle pool). Whirlpools are tracked within
the current tick range (a swap that reaches its end is applied to there and flagged
``crosses_tick``); the detectors consider constant-product pools only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..metrics.clock import monotonic_ns
from ..wire.keys import lookup
from ..wire.programs import ACCT_IN_LUT, KIND_SWAP, decode_swaps, resolve_lut_account
from .amm import (AMM_OK, CEIL_PLAIN, CEIL_RAYDIUM, U0, U1, UMAX, WP_INCOMPLETE, cp_amount_in, cp_amount_out,
                  optimal_two_pool_arb_in, wp_swap_within_tick)
from .market import (M_SLOT, M_SLOT_TS, M_USDC, M_WSOL, PK_RAYDIUM_V4, PK_WHIRLPOOL, SWAP_HISTORY, WP_LIQ_H,
                     WP_LIQ_L, WP_LOWER_H, WP_LOWER_L, WP_PRICE_H, WP_PRICE_L, WP_UPPER_H, WP_UPPER_L)
from .opps import (F_DEPTH, F_NINS, F_NPROG, F_PRIO, F_PROFIT, F_S10, F_S100, F_S1000, F_SIZE, F_SLIPPAGE, F_SLOT_MS,
                   F_TIP, F_TYPE, OPP_ARBITRAGE, OPP_LIQUIDATION, OPP_SANDWICH, SW_AMM_ERROR, SW_APPLIED,
                   SW_CROSSES_TICK, SW_DIRECTION_UNRESOLVED, SW_REVERTED, SW_SLIPPAGE)

SWAPS_PER_TX_MAX = 64        # swap events handled per transaction (events scratch size)
OPPS_PER_TX_MAX = 512        # opportunity rows one transaction may add (room the caller keeps free)
FLOAT_MARGIN = 1e-9          # relative slack (of the input) on float profit estimates before the exact sizing:
                             # float64 sizing is good to ~1e-15 of the input; the exact integers differ from
                             # the real-valued profit by a few base units (the 8-unit term)
LIQ_CLOSE_DIVISOR = 2        # one liquidation repays debt // this (a close factor of 1/2)
ARB_POLISH3 = 4              # three-pool cycles: integer inputs tried each side of floor(d*)
MS = 1_000_000

# detection counters (rows of ``dcount``)
D_SWAPS = 0               # swap events on snapshot pools
D_UNKNOWN_POOL = 1        # swap events on pools not in the snapshot
D_POOL_UNRESOLVED = 2     # swap events whose pool is in a lookup table the snapshot lacks
D_APPLIED = 3
D_FAILED_TX = 4           # transactions whose swaps failed (none applied)
D_OPPS = 5
D_OPP_ROWS_FULL = 6       # opportunities not written for lack of rows (never with the caller's room)
D_EXACT_SANDWICH = 7      # sandwich candidates that passed the float filter (sized exactly)
D_UNPRICED = 8            # candidates skipped because a token has no SOL price
D_EVENT_REJECTS = 9       # instructions of a known program whose data did not fit its layout
D_EXACT_ARB2 = 10         # two-pool arbitrage candidates sized exactly
D_EXACT_ARB3 = 11         # three-pool cycles sized exactly
DETECT_COUNTER_NAMES = ("swaps", "swaps_unknown_pool", "swaps_pool_unresolved", "swaps_applied",
                        "swap_transactions_failed", "opportunities", "opportunity_rows_full", "exact_sandwich",
                        "unpriced_candidates", "event_rejects", "exact_arb2", "exact_arb3")
N_DETECT_COUNTERS = len(DETECT_COUNTER_NAMES)


# ============================================================================================
# prices and pool maths
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def oracle_price(mk, t):
    """Lamports per base unit of token row ``t`` from its oracle pool's reserves (NaN: none)."""
    if t < 0:
        return np.nan
    if t == mk.meta[M_WSOL]:
        return 1.0
    p = mk.token_oracle[t]
    if p < 0:
        return np.nan
    if mk.pool_mint[p, 0] == t:
        return np.float64(mk.pool_res[p, 1]) / np.float64(mk.pool_res[p, 0])
    return np.float64(mk.pool_res[p, 0]) / np.float64(mk.pool_res[p, 1])


@njit(cache=True, nogil=True, inline="always")
def price_sol(mk, t):
    """The same, cached in ``token_price`` (refreshed whenever an oracle pool moves)."""
    return mk.token_price[t] if t >= 0 else np.nan


@njit(cache=True, nogil=True)
def init_prices(mk):
    for t in range(mk.token_price.shape[0]):
        mk.token_price[t] = oracle_price(mk, t)


@njit(cache=True, nogil=True, inline="always")
def _below_tip(est, tipf, unit_price, size):
    """The float profit ``est`` (lamports) cannot beat the tip even allowing for float error
    (FLOAT_MARGIN of the input ``size``) and the exact integers' few base units (8 of them,
    at ``unit_price`` lamports each): the candidate is not worth its exact sizing."""
    return est < tipf * (1.0 - FLOAT_MARGIN) - 8.0 * unit_price - FLOAT_MARGIN * size * unit_price


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
    curve = CEIL_RAYDIUM
    gross = CEIL_RAYDIUM if mk.pool_kind[p] == PK_RAYDIUM_V4 else CEIL_PLAIN
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
# opportunity rows
# ============================================================================================

@njit(cache=True, nogil=True, _nrt=False)
def _emit(opps, n, kind, p0, p1, p2, npools, token, amount_in, amount_out, profit, price, tip, pos_row,
          ctx, fx, mk):
    """Write one opportunity row (if there is room). Returns the new count."""
    if n >= opps.shape[0]:
        return -1
    o = opps[n]
    o.ts_ns = ctx[0]
    o.packet_index = ctx[1]
    o.tx_index = ctx[2]
    o.slot = ctx[3]
    o.kind = kind
    o.pools[0] = p0
    o.pools[1] = p1
    o.pools[2] = p2
    o.n_pools = npools
    o.profit_token = token
    o.amount_in = amount_in
    o.amount_out = amount_out
    o.profit_quote = profit
    o.tip_lamports = tip
    eps = np.float64(profit) * price - np.float64(tip)
    o.expected_profit_lamports = np.int64(eps)
    o.expected_profit_sol = eps / 1e9
    o.position_row = pos_row
    o.seq = np.int32(ctx[5])
    ctx[5] += 1
    for j in range(fx.shape[0]):
        o.features[j] = fx[j]
    o.features[F_PROFIT] = eps / 1e9
    o.features[F_TYPE] = kind
    o.features[F_S10], o.features[F_S100], o.features[F_S1000] = _recent(mk, p0, ctx[0])
    pa, pb = mk.pool_mint[p0, 0], mk.pool_mint[p0, 1]
    o.features[F_DEPTH] = (np.float64(mk.pool_res[p0, 0]) * price_sol(mk, pa) +
                           np.float64(mk.pool_res[p0, 1]) * price_sol(mk, pb)) / 1e9
    if kind != OPP_SANDWICH:
        o.features[F_SLIPPAGE] = 0.0
    o.score = np.nan
    o.detect_ns = monotonic_ns() - ctx[4]
    return n + 1


# ============================================================================================
# sandwich
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _victim_ok(mk, p, i, x, y, f, exact_in, amount, limit):
    """The victim still meets its limit after a front-run of f (input side i, reserves x, y)."""
    of = _out(mk, p, i, f, x, y)
    if of == U0 or x + f < x:
        return False
    x1 = x + f
    y1 = y - of
    if exact_in == 1:
        ov = _out(mk, p, i, amount, x1, y1)
        return ov != U0 and ov >= limit
    if amount >= y1:
        return False
    a = _in(mk, p, amount, x1, y1)
    return a != U0 and a <= limit


@njit(cache=True, nogil=True, inline="always")
def _sandwich(mk, p, a_to_b, exact_in, amount, limit, tip, opps, n, ctx, fx):
    """Detect a sandwich of the swap about to be applied on constant-product pool p."""
    i = 0 if a_to_b else 1
    x = mk.pool_res[p, i]
    y = mk.pool_res[p, 1 - i]
    t_in = mk.pool_mint[p, i]
    t_out = mk.pool_mint[p, 1 - i]
    pin = price_sol(mk, t_in)
    pout = price_sol(mk, t_out)
    if not (pin > 0.0) or not (pout > 0.0):
        return n, -1                       # a token without a SOL price: counted, not sized
    g = _gamma(mk, p)
    xf = np.float64(x)
    yf = np.float64(y)
    af = np.float64(amount)
    lf = np.float64(limit)
    tipf = np.float64(tip)
    # the victim's slack bounds what a sandwich can take from it
    if exact_in == 1:
        expect = g * af * yf / (xf + g * af)
        slack_value = (expect - lf) * pout
        fx[F_SLIPPAGE] = 1.0 - lf / expect if expect > 0 else 0.0
    else:
        if af >= yf:
            return n, 0
        expect = xf * af / (g * (yf - af))
        slack_value = (lf - expect) * pin
        fx[F_SLIPPAGE] = lf / expect - 1.0 if expect > 0 else 0.0
    if slack_value * 2.0 < tipf:
        return n, 0
    # the largest front-run in closed form (continuous constant product, fee on the input):
    # exact in  (victim v, min out m):  (x + g f)(x + f + g v) = g v y x / m
    # exact out (victim w, max in M):   g w f^2 + (w x (1 + g) + M g^2 w) f + w x^2 - M g x (y - w) = 0
    # both a f^2 + b f + c = 0 with c < 0 when the victim has slack; f = -2c / (b + sqrt(b^2 - 4ac))
    if exact_in == 1:
        qa = g
        qb = xf * (1.0 + g) + g * g * af
        qc = xf * (xf + g * af) - g * af * yf * xf / max(lf, 1.0)
    else:
        qa = g * af
        qb = af * xf * (1.0 + g) + lf * g * g * af
        qc = af * xf * xf - lf * g * xf * (yf - af)
    if not (qc < 0.0):
        return n, 0
    lo = -2.0 * qc / (qb + np.sqrt(qb * qb - 4.0 * qa * qc))
    if lo > xf:                            # no real bound (a limit of ~0): the front-run is capped at the reserve
        lo = xf
    f = lo
    if f < 1.0:                            # the victim has no room for any front-run
        return n, 0
    of = g * f * yf / (xf + g * f)
    x1 = xf + f
    y1 = yf - of
    if exact_in == 1:
        ov = g * af * y1 / (x1 + g * af)
        va = af
    else:
        ov = af
        va = x1 * af / (g * (y1 - af))
    x2 = x1 + va
    y2 = y1 - ov
    back = g * of * x2 / (y2 + g * of)
    est = (back - f) * pin
    # a real-valued loss cannot round into a profit worth the tip (the integers differ by a few units)
    if est <= 0.0 or _below_tip(est, tipf, pin, f):
        return n, 0
    # exact: the largest integer front-run the victim survives, by bracketing around f
    fi = np.uint64(f) if f >= 1.0 else U1
    step = np.uint64(max(1.0, f * 1e-9))
    if _victim_ok(mk, p, i, x, y, fi, exact_in, amount, limit):
        ok = fi
        while True:
            cand = ok + step
            if cand < ok or cand > x or not _victim_ok(mk, p, i, x, y, cand, exact_in, amount, limit):
                bad = cand if cand >= ok else UMAX
                break
            ok = cand
            step += step
    else:
        bad = fi
        while True:
            if bad <= step:
                cand = U0
            else:
                cand = bad - step
            if cand == U0:
                ok = U0
                break
            if _victim_ok(mk, p, i, x, y, cand, exact_in, amount, limit):
                ok = cand
                break
            bad = cand
            step += step
    if ok == U0 and not _victim_ok(mk, p, i, x, y, U1, exact_in, amount, limit):
        return n, 1
    if ok == U0:
        ok = U1
    while bad - ok > U1:
        mid = ok + (bad - ok) // np.uint64(2)
        if _victim_ok(mk, p, i, x, y, mid, exact_in, amount, limit):
            ok = mid
        else:
            bad = mid
    front = ok
    of_i = _out(mk, p, i, front, x, y)
    x1i = x + front
    y1i = y - of_i
    if exact_in == 1:
        ov_i = _out(mk, p, i, amount, x1i, y1i)
        va_i = amount
    else:
        ov_i = amount
        va_i = _in(mk, p, amount, x1i, y1i)
    x2i = x1i + va_i
    y2i = y1i - ov_i
    back_i = _out(mk, p, 1 - i, of_i, y2i, x2i)
    profit = np.int64(back_i) - np.int64(front)
    if np.float64(profit) * pin <= tipf:
        return n, 1
    return _emit(opps, n, OPP_SANDWICH, p, -1, -1, 1, t_in, front, back_i, profit, pin, tip, -1, ctx, fx, mk), 1


# ============================================================================================
# arbitrage
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _side(mk, p, t):
    return 0 if mk.pool_mint[p, 0] == t else 1


@njit(cache=True, nogil=True, inline="always")
def _arb_two(mk, p, q, tip, opps, n, ctx, fx):
    """Best two-pool arbitrage between p and q (same pair), either order. Returns (n, sized)."""
    wsol = mk.meta[M_WSOL]
    usdc = mk.meta[M_USDC]
    a = mk.pool_mint[p, 0]
    b = mk.pool_mint[p, 1]
    X = wsol if (a == wsol or b == wsol) else (usdc if (a == usdc or b == usdc) else b)
    px = price_sol(mk, X)
    if not (px > 0.0):
        return n, 0
    tipf = np.float64(tip)
    best = np.int64(0)
    best_in = U0
    best_back = U0
    best_first = -1
    sized = 0
    for order in range(2):
        u = p if order == 0 else q          # X -> Y in u, Y -> X in v
        v = q if order == 0 else p
        su = _side(mk, u, X)
        sv = _side(mk, v, X)
        xa = np.float64(mk.pool_res[u, su])
        ya = np.float64(mk.pool_res[u, 1 - su])
        yb = np.float64(mk.pool_res[v, 1 - sv])
        xb = np.float64(mk.pool_res[v, sv])
        ga = _gamma(mk, u)
        gb = _gamma(mk, v)
        K = ga * gb * xb * ya
        E = xa * yb
        if K <= E:
            continue
        F = ga * (yb + gb * ya)
        d = (np.sqrt(K * E) - E) / F
        est = (K * d / (E + F * d) - d) * px
        if _below_tip(est, tipf, px, d):
            continue
        sized = 1
        fk = _fee_kind(mk, u)
        a_in, mid, back = optimal_two_pool_arb_in(mk.pool_res[u, su], mk.pool_res[u, 1 - su], mk.pool_fee[u, 0],
                                                  mk.pool_fee[u, 1], mk.pool_res[v, 1 - sv], mk.pool_res[v, sv],
                                                  mk.pool_fee[v, 0], mk.pool_fee[v, 1], fk)
        if a_in == U0:
            continue
        prof = np.int64(back) - np.int64(a_in)
        if prof > best:
            best = prof
            best_in = a_in
            best_back = back
            best_first = order
    if best_first < 0 or np.float64(best) * px <= tipf:
        return n, sized
    p0 = p if best_first == 0 else q
    p1 = q if best_first == 0 else p
    return _emit(opps, n, OPP_ARBITRAGE, p0, p1, -1, 2, X, best_in, best_back, best, px, tip, -1, ctx, fx, mk), sized


@njit(cache=True, nogil=True)
def _route_out(mk, route, sides, amount):
    """Exact output of ``amount`` through the three pools of ``route`` (0 on error)."""
    a = amount
    for k in range(3):
        p = route[k]
        s = sides[k]
        a = _out(mk, p, s, a, mk.pool_res[p, s], mk.pool_res[p, 1 - s])
        if a == U0:
            return U0
    return a


@njit(cache=True, nogil=True, inline="always")
def _arb_three(mk, c, tip, opps, n, ctx, fx, route, sides):
    """Best direction of three-pool cycle ``mk.cycles[c]`` from its start token. Returns (n, sized)."""
    start = mk.cycles[c, 3]
    px = price_sol(mk, start)
    if not (px > 0.0):
        return n, 0
    tipf = np.float64(tip)
    # the two pools holding the start token, and the third
    u = -1
    w = -1
    v = -1
    for k in range(3):
        p = mk.cycles[c, k]
        if mk.pool_mint[p, 0] == start or mk.pool_mint[p, 1] == start:
            if u < 0:
                u = p
            else:
                w = p
        else:
            v = p
    if u < 0 or w < 0 or v < 0:
        return n, 0
    best = np.int64(0)
    best_in = U0
    best_back = U0
    best_dir = -1
    sized = 0
    for direction in range(2):
        route[0] = u if direction == 0 else w
        route[1] = v
        route[2] = w if direction == 0 else u
        t = start
        K = 1.0
        E = 1.0
        F = 0.0
        for k in range(3):
            p = route[k]
            s = _side(mk, p, t)
            sides[k] = s
            x = np.float64(mk.pool_res[p, s])
            y = np.float64(mk.pool_res[p, 1 - s])
            g = _gamma(mk, p)
            K, E, F = g * y * K, x * E, x * F + g * K
            t = mk.pool_mint[p, 1 - s]
        if K <= E:
            continue
        d = (np.sqrt(K * E) - E) / F
        est = (K * d / (E + F * d) - d) * px
        if _below_tip(est, tipf, px, d):
            continue
        sized = 1
        base = np.uint64(d) if d >= 1.0 else U1
        lo = base - np.uint64(ARB_POLISH3) if base > np.uint64(ARB_POLISH3) else U1
        for j in range(2 * ARB_POLISH3 + 1):
            a_in = lo + np.uint64(j)
            back = _route_out(mk, route, sides, a_in)
            if back > a_in:
                prof = np.int64(back - a_in)
                if prof > best:
                    best = prof
                    best_in = a_in
                    best_back = back
                    best_dir = direction
    if best_dir < 0 or np.float64(best) * px <= tipf:
        return n, sized
    p0 = u if best_dir == 0 else w
    p2 = w if best_dir == 0 else u
    return _emit(opps, n, OPP_ARBITRAGE, p0, v, p2, 3, start, best_in, best_back, best, px, tip, -1, ctx, fx,
                 mk), sized


# ============================================================================================
# liquidation
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _health(mk, j):
    pc = price_sol(mk, mk.pos_mint[j, 0])
    pd = price_sol(mk, mk.pos_mint[j, 1])
    return (np.float64(mk.pos_amount[j, 0]) * pc * mk.pos_param[j, 0]) / (np.float64(mk.pos_amount[j, 1]) * pd)


@njit(cache=True, nogil=True)
def init_health(mk):
    """Prices from the oracle pools, then mark the positions below health 1 at load (they are
    not emitted until they recover)."""
    init_prices(mk)
    for j in range(mk.pos_id.shape[0]):
        h = _health(mk, j)
        mk.pos_healthy[j] = 0 if h < 1.0 else 1


@njit(cache=True, nogil=True, inline="always")
def _liquidations(mk, p, tip, opps, n, ctx, fx):
    tipf = np.float64(tip)
    for k in range(2):
        t = mk.pool_mint[p, k]
        if mk.token_oracle[t] != p:
            continue
        for r in range(mk.tok_pos_first[t], mk.tok_pos_first[t + 1]):
            j = mk.tok_pos[r]
            h = _health(mk, j)
            if not (h == h):
                continue
            if h >= 1.0:
                mk.pos_healthy[j] = 1
                continue
            if mk.pos_healthy[j] == 0:
                continue
            mk.pos_healthy[j] = 0
            pc = price_sol(mk, mk.pos_mint[j, 0])
            pd = price_sol(mk, mk.pos_mint[j, 1])
            repay = mk.pos_amount[j, 1] // np.uint64(LIQ_CLOSE_DIVISOR)
            value = np.float64(repay) * pd * (1.0 + mk.pos_param[j, 1])
            cap = np.float64(mk.pos_amount[j, 0]) * pc
            if value > cap:
                value = cap
            seized = np.uint64(value / pc)
            profit = np.int64(value / pd - np.float64(repay))
            if np.float64(profit) * pd <= tipf:
                continue
            n2 = _emit(opps, n, OPP_LIQUIDATION, p, -1, -1, 1, mk.pos_mint[j, 1], repay, seized, profit, pd, tip, j,
                       ctx, fx, mk)
            if n2 < 0:
                return -1
            n = n2
    return n


# ============================================================================================
# one transaction
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


@njit(cache=True, nogil=True, inline="always")
def market_tx(buf, txn, instrs, luts, ins_pid, row, keys, key_slots, mk, sc, swaps, ns, opps, no, tip,
              dcount, ev_rejects, ctx, detect):
    """Decode the swaps of one transaction, apply them, run the detectors.

    ``sc`` is the scratch (BatchOut fields: events, pools, dirs, undo, route, sides, fx);
    ``ctx`` int64[6]: ts_ns, packet_index, tx_index, slot, detection start (wall ns), seq.
    ``detect`` 0 tracks the pools without running the detectors (the benchmark's "off").
    Returns the new (ns, no).
    """
    events, pools, dirs, undo, fx = sc.events, sc.sw_pool, sc.sw_dir, sc.undo, sc.fx
    ne = decode_swaps(buf, txn, instrs, luts, ins_pid, events, 0, ev_rejects)
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
    if slot >= 0:
        if slot > mk.meta[M_SLOT]:
            mk.meta[M_SLOT] = slot
            mk.meta[M_SLOT_TS] = ts
        if slot == mk.meta[M_SLOT]:
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
