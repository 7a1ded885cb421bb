"""Sandwich detector: run before a swap on a constant-product pool is applied.

The largest front-run f of the victim's input token such that the victim still meets its
limit (min out for exact-in, max in for exact-out), the back-run selling all the
front-run's output after the victim, profit = back-run out - f in the victim's input
token. f comes from a closed form on the continuous constant product, then the exact
integer bound is found by bracketing and bisection on the program's amounts.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..opps import F_SLIPPAGE, OPP_SANDWICH
from .emit import _below_tip, _emit
from .pools import _gamma, _in, _out
from .prices import price_sol
from ...wide import U0, U1, UMAX

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


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
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

