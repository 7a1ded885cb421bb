"""Arbitrage detectors: run after a swap on a constant-product pool is applied.

* Two pools: for every other constant-product pool of the same pair, both orders,
  starting from the pair's quote token (WSOL, else USDC, else the trigger pool's mint b),
  the optimal input (constant_product.optimal_two_pool_arb_in, exact).
* Three-pool cycles: every cycle through the trigger pool (snapshot.py indexes them),
  both directions, optimal input by the closed form of chained constant products
  (K d / (E + F d), d* = (sqrt(K E) - E) / F) polished on exact integer amounts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..opps import OPP_ARBITRAGE
from .constant_product import optimal_two_pool_arb_in
from .emit import _below_tip, _emit
from .layout import M_USDC, M_WSOL
from .pools import _fee_kind, _gamma, _out
from .prices import price_sol
from ...wide import U0, U1

ARB_POLISH3 = 4              # three-pool cycles: integer inputs tried each side of floor(d*)


@njit(cache=True, nogil=True, inline="always")
def _side(mk, p, t):
    return 0 if mk.pool_mint[p, 0] == t else 1


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
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


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
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

