"""Exact constant-product maths (Raydium AMM v4, Raydium CPMM) and two-pool arbitrage sizing.

One scalar jitted function per formula (STYLE rule 12). Every function returns a status
first (amm_status.py) and never raises. Intermediates are u128 kept exact as 64-bit limbs
(wide.py): no float64 touches an amount, a reserve or a price, so results equal the
programs' bit for bit, as the tests check against Python-integer twins
(``tests/reference/amm_ref.py``) on seeded random inputs and edges. Only ``price_impact``
and the closed-form START of ``optimal_two_pool_arb_in`` use float64 (see their
docstrings for the bound); the arbitrage amounts and profit they return are evaluated
exactly. uint64 operands only (wide.py's ``U*`` constants): numba turns a uint64 mixed
with an int64 into float64, which would silently round.

Sources (public repositories, read through the stored code index):

* Raydium AMM v4, raydium-io/raydium-amm ``program/src/processor.rs``
  (``process_swap_base_in``: ``swap_fee = ceil_div(amount_in * swap_fee_numerator,
  swap_fee_denominator)``; ``process_swap_base_out``: gross-up ``ceil_div(before_fee *
  den, den - num)``), ``program/src/math.rs`` (``Calculator::swap_token_amount_base_in``:
  ``floor(out_reserve * in / (in_reserve + in))``; ``swap_token_amount_base_out``:
  ``ceil_div(in_reserve * out, out_reserve - out)``; ``CheckedCeilDiv``, whose rounding
  ``CEIL_RAYDIUM`` selects: see wide.py). Default fee 25 / 10000 (``state.rs`` ``Fees``).
  Reserves are ``total_*_without_take_pnl`` (vault amount minus ``need_take_pnl``, plus
  open-orders funds while the order book is on).
* Raydium CPMM, raydium-io/raydium-cp-swap ``src/curve/calculator.rs``
  (``swap_base_input``/``swap_base_output``), ``src/curve/constant_product.rs``,
  ``src/curve/fees.rs`` (``trading_fee = ceil(amount * rate / 1e6)`` plain,
  ``calculate_pre_fee_amount = ceil(x * 1e6 / (1e6 - rate))`` plain, rate in ppm from
  the AmmConfig). Reserves are ``vault_amount_without_fee`` (vault minus protocol and
  fund fees owed). Creator fees of the newest revision are not modelled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .amm_status import (AMM_ERR_BAD_FEE, AMM_ERR_DIV_ZERO, AMM_ERR_INSUFFICIENT, AMM_ERR_OVERFLOW,
                         AMM_ERR_ZERO_AMOUNT, AMM_ERR_ZERO_OUT, AMM_OK)
from ...wide import (CEIL_PLAIN, CEIL_RAYDIUM, U0, U1, U2, UMAX, ceil_div128, divmod128, lt256, mul64, mul128, sub256,
                   u256_to_float)

RAYDIUM_V4_FEE_NUM = 25        # swap_fee_numerator of a standard pool
RAYDIUM_V4_FEE_DEN = 10_000    # swap_fee_denominator
CPMM_FEE_RATE_DEN = 1_000_000  # FEE_RATE_DENOMINATOR_VALUE: CPMM trade_fee_rate is in ppm


# --- one swap ----------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def cp_fee(amount, fee_num, fee_den, kind):
    """(status, fee) = amount * fee_num / fee_den rounded up as ``kind`` (CEIL_*) says.

    Raydium v4 ``swap_fee`` (kind CEIL_RAYDIUM), CPMM ``trading_fee`` (CEIL_PLAIN).
    """
    if fee_den == U0 or fee_num > fee_den:
        return AMM_ERR_BAD_FEE, U0
    ph, pl = mul64(amount, fee_num)
    qh, ql, ovf = ceil_div128(ph, pl, U0, fee_den, kind)
    return AMM_OK, ql          # <= amount since fee_num <= fee_den


@njit(cache=True, nogil=True)
def cp_amount_out(amount_in, reserve_in, reserve_out, fee_num, fee_den, fee_kind):
    """Constant product, exact input, fee taken from the input. (status, amount_out, fee).

    fee = ceil_kind(amount_in * fee_num / fee_den); net = amount_in - fee;
    amount_out = floor(reserve_out * net / (reserve_in + net)) (u128 / u65, exact).
    Raydium v4: fee_kind CEIL_RAYDIUM, fee 25/10000; CPMM: CEIL_PLAIN, rate/1e6.
    """
    if amount_in == U0:
        return AMM_ERR_ZERO_AMOUNT, U0, U0
    st, fee = cp_fee(amount_in, fee_num, fee_den, fee_kind)
    if st != AMM_OK:
        return st, U0, U0
    net = amount_in - fee
    dl = reserve_in + net
    dh = U1 if dl < reserve_in else U0
    if dh == U0 and dl == U0:
        return AMM_ERR_DIV_ZERO, U0, fee
    nh, nl = mul64(reserve_out, net)
    qh, ql, _, _ = divmod128(nh, nl, dh, dl)
    if ql >= reserve_out and reserve_out != U0:
        return AMM_ERR_INSUFFICIENT, ql, fee     # only with reserve_in == 0
    if ql == U0:
        return AMM_ERR_ZERO_OUT, U0, fee
    return AMM_OK, ql, fee


@njit(cache=True, nogil=True)
def cp_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den, curve_kind, gross_kind):
    """Constant product, exact output. (status, amount_in, amount_in_before_fee).

    before = ceil_curve(reserve_in * amount_out / (reserve_out - amount_out));
    amount_in = ceil_gross(before * fee_den / (fee_den - fee_num)), both exact in u128.
    Raydium v4: curve CEIL_RAYDIUM, gross CEIL_RAYDIUM; CPMM: curve CEIL_RAYDIUM (its
    CheckedCeilDiv), gross CEIL_PLAIN (calculate_pre_fee_amount). Results past u64 are
    AMM_ERR_OVERFLOW (the programs cast to u64 and fail).
    """
    if amount_out == U0:
        return AMM_ERR_ZERO_AMOUNT, U0, U0
    if fee_den == U0 or fee_num >= fee_den:
        return AMM_ERR_BAD_FEE, U0, U0
    if amount_out >= reserve_out:
        return AMM_ERR_INSUFFICIENT, U0, U0
    nh, nl = mul64(reserve_in, amount_out)
    bh, bl, ovf = ceil_div128(nh, nl, U0, reserve_out - amount_out, curve_kind)
    if ovf or bh != U0:
        return AMM_ERR_OVERFLOW, U0, U0
    gh, gl = mul64(bl, fee_den)
    ah, al, ovf = ceil_div128(gh, gl, U0, fee_den - fee_num, gross_kind)
    if ovf or ah != U0:
        return AMM_ERR_OVERFLOW, U0, bl
    if al == U0:                                  # Raydium: InvalidInput (an empty input reserve)
        return AMM_ERR_ZERO_AMOUNT, U0, bl
    return AMM_OK, al, bl


@njit(cache=True, nogil=True)
def raydium_v4_amount_out(amount_in, reserve_in, reserve_out, fee_num, fee_den):
    """Raydium AMM v4 SwapBaseIn: (status, amount_out, swap_fee)."""
    return cp_amount_out(amount_in, reserve_in, reserve_out, fee_num, fee_den, CEIL_RAYDIUM)


@njit(cache=True, nogil=True)
def raydium_v4_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den):
    """Raydium AMM v4 SwapBaseOut: (status, amount_in, swap_fee = amount_in - before_fee)."""
    st, a, before = cp_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den, np.int64(CEIL_RAYDIUM),
                                    np.int64(CEIL_RAYDIUM))
    if st != AMM_OK:
        return st, U0, U0
    return st, a, a - before


@njit(cache=True, nogil=True)
def cpmm_amount_out(amount_in, reserve_in, reserve_out, trade_fee_rate):
    """Raydium CPMM swap_base_input (no transfer fee): (status, amount_out, trade_fee)."""
    return cp_amount_out(amount_in, reserve_in, reserve_out, trade_fee_rate, np.uint64(CPMM_FEE_RATE_DEN),
                         CEIL_PLAIN)


@njit(cache=True, nogil=True)
def cpmm_amount_in(amount_out, reserve_in, reserve_out, trade_fee_rate):
    """Raydium CPMM swap_base_output: (status, amount_in, trade_fee = ceil(amount_in * rate / 1e6))."""
    den = np.uint64(CPMM_FEE_RATE_DEN)
    st, a, before = cp_amount_in(amount_out, reserve_in, reserve_out, trade_fee_rate, den, np.int64(CEIL_RAYDIUM),
                                    np.int64(CEIL_PLAIN))
    if st != AMM_OK:
        return st, U0, U0
    _, fee = cp_fee(a, trade_fee_rate, den, CEIL_PLAIN)
    return st, a, fee


@njit(cache=True, nogil=True)
def price_impact(amount_in, amount_out, reserve_in, reserve_out):
    """1 - execution price / spot price = 1 - (amount_out * reserve_in) / (amount_in * reserve_out).

    float64: the four u64 -> float64 conversions, two products, the quotient and the
    subtraction each round once, so with r = (amount_out reserve_in) / (amount_in
    reserve_out) the result is within 2**-53 (7 r + |1 - r|) (first order) of the exact
    value (tested against fractions).
    Fee and rounding included: a fee of f gives an impact >= f. 0 / 0 inputs give 0.
    """
    if amount_in == U0 or reserve_out == U0:
        return 0.0
    num = np.float64(amount_out) * np.float64(reserve_in)
    den = np.float64(amount_in) * np.float64(reserve_out)
    return 1.0 - num / den


# --- two-pool arbitrage sizing ---------------------------------------------------------------

@njit(cache=True, nogil=True)
def two_pool_round_trip(amount_in, x_a, y_a, fee_num_a, fee_den_a, y_b, x_b, fee_num_b, fee_den_b, fee_kind):
    """X -> Y in pool A (reserves x_a, y_a), then Y -> X in pool B (y_b, x_b), exact.

    Returns (status, amount_mid, amount_back).
    """
    st, mid, _ = cp_amount_out(amount_in, x_a, y_a, fee_num_a, fee_den_a, fee_kind)
    if st != AMM_OK:
        return st, U0, U0
    st, back, _ = cp_amount_out(mid, y_b, x_b, fee_num_b, fee_den_b, fee_kind)
    if st != AMM_OK:
        return st, mid, U0
    return AMM_OK, mid, back


@njit(cache=True, nogil=True, inline="always")
def _out_or_zero(amount_in, reserve_in, reserve_out, fee_num, fee_den, fee_kind):
    st, out, _ = cp_amount_out(amount_in, reserve_in, reserve_out, fee_num, fee_den, fee_kind)
    return out if st == AMM_OK else U0


@njit(cache=True, nogil=True)
def min_amount_in_for_out(amount_out, reserve_in, reserve_out, fee_num, fee_den, fee_kind):
    """(status, amount_in): the least EXACT-INPUT amount whose cp_amount_out reaches amount_out.

    (Not the exact-output instruction's amount, cp_amount_in, which rounds its own way.)
    Starts from the exact-out formula with plain ceilings, brackets by doubling steps and
    bisects on the exact, non-decreasing cp_amount_out: a few evaluations near the guess.
    """
    if amount_out == U0:
        return AMM_ERR_ZERO_AMOUNT, U0
    st, g, _ = cp_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den, np.int64(CEIL_PLAIN),
                             np.int64(CEIL_PLAIN))
    if st != AMM_OK:
        return st, U0
    hi = g
    if _out_or_zero(hi, reserve_in, reserve_out, fee_num, fee_den, fee_kind) < amount_out:
        lo = hi
        step = U1
        while True:
            if hi > UMAX - step:
                hi = UMAX
            else:
                hi = lo + step
            if _out_or_zero(hi, reserve_in, reserve_out, fee_num, fee_den, fee_kind) >= amount_out:
                break
            if hi == UMAX:
                return AMM_ERR_INSUFFICIENT, U0
            lo = hi
            step = step + step
    else:
        step = U1
        while True:
            cand = hi - step if hi > step else U0
            if cand == U0 or _out_or_zero(cand, reserve_in, reserve_out, fee_num, fee_den, fee_kind) < amount_out:
                lo = cand
                break
            hi = cand
            step = step + step
    while hi - lo > U1:                   # out(lo) < amount_out <= out(hi)
        mid = lo + (hi - lo) // U2
        if _out_or_zero(mid, reserve_in, reserve_out, fee_num, fee_den, fee_kind) >= amount_out:
            hi = mid
        else:
            lo = mid
    return AMM_OK, hi


ARB_POLISH = 4                 # candidates each side of the closed-form optimum, in input and in mid units


@njit(cache=True, nogil=True)
def optimal_two_pool_arb_in(x_a, y_a, fee_num_a, fee_den_a, y_b, x_b, fee_num_b, fee_den_b, fee_kind):
    """Input of X that maximises the X back after X -> Y in pool A and Y -> X in pool B.

    Returns (amount_in, amount_mid, amount_back), all exact program amounts (cp_amount_out
    with ``fee_kind``); (0, 0, 0) when no input is profitable.

    Closed form: with g = 1 - fee, the round trip of a real input d returns
    K d / (E + F d), K = g_a g_b x_b y_a, E = x_a y_b, F = g_a (y_b + g_b y_a), so the
    profit is largest at d* = (sqrt(K E) - E) / F, and positive iff K > E. d* is computed
    as E (K - E) / (F (sqrt(K E) + E)) with K - E formed EXACTLY in u256 (no cancellation
    when the pools are close; relative error of d* a few 2**-53).

    Integer polish: the exact profit is a jagged function of the input (two floors and a
    fee ceiling). Candidates are the inputs within ARB_POLISH of floor(d*), and, for every
    mid amount m within ARB_POLISH of out_A(floor(d*)), the least input reaching m
    (min_amount_in_for_out) -- the one that matters when a unit of Y is worth many units
    of X. The best candidate is kept.

    Guarantee (tests/test_amm.py: brute force over every input on small pools, probes at
    mainnet scale): the profit is within 2 + ceil(x_b / y_b) base units of X of the best
    integer input. The slack is pool B's fee ceiling on the mid amount (up to one unit of
    Y, worth x_b / y_b units of X) and the final floor: the real-valued profit is flat over
    ~sqrt(reserve) inputs, and some input on that plateau may round luckier -- dust next to
    any real opportunity, and not worth scanning the plateau for.
    """
    if fee_den_a == U0 or fee_den_b == U0 or fee_num_a >= fee_den_a or fee_num_b >= fee_den_b:
        return U0, U0, U0
    # K' = (da - na)(db - nb) x_b y_a and E' = da db x_a y_b, exact (K = K'/(da db), E = E'/(da db))
    k1h, k1l = mul64(fee_den_a - fee_num_a, y_a)
    k2h, k2l = mul64(fee_den_b - fee_num_b, x_b)
    K3, K2, K1, K0 = mul128(k1h, k1l, k2h, k2l)
    e1h, e1l = mul64(fee_den_a, x_a)
    e2h, e2l = mul64(fee_den_b, y_b)
    E3, E2, E1, E0 = mul128(e1h, e1l, e2h, e2l)
    if not lt256(E3, E2, E1, E0, K3, K2, K1, K0):
        return U0, U0, U0
    D3, D2, D1, D0, _ = sub256(K3, K2, K1, K0, E3, E2, E1, E0)
    dd = np.float64(fee_den_a) * np.float64(fee_den_b)
    kme = u256_to_float(D3, D2, D1, D0) / dd
    ef = np.float64(x_a) * np.float64(y_b)
    kf = u256_to_float(K3, K2, K1, K0) / dd
    ga = (np.float64(fee_den_a) - np.float64(fee_num_a)) / np.float64(fee_den_a)
    gb = (np.float64(fee_den_b) - np.float64(fee_num_b)) / np.float64(fee_den_b)
    ff = ga * (np.float64(y_b) + gb * np.float64(y_a))
    d = ef * kme / (ff * (np.sqrt(kf) * np.sqrt(ef) + ef))
    if not (d >= 1.0):
        d = 1.0
    if d > 1.8e19:
        d = 1.8e19
    base = np.uint64(d)
    w = np.uint64(ARB_POLISH)
    best_in = U0
    best_mid = U0
    best_back = U0
    best_profit = U0
    for pass_ in range(2):
        if pass_ == 0:                    # inputs around floor(d*)
            lo = base - w if base > w else U1
            hi = base + w if base < UMAX - w else UMAX
        else:                             # least inputs reaching the mids around out_A(floor(d*))
            m0 = _out_or_zero(base, x_a, y_a, fee_num_a, fee_den_a, fee_kind)
            lo = m0 - w if m0 > w else U1
            hi = m0 + w if m0 < UMAX - w else UMAX
        c = lo
        while True:
            if pass_ == 0:
                a = c
            else:
                st, a = min_amount_in_for_out(c, x_a, y_a, fee_num_a, fee_den_a, fee_kind)
                if st != AMM_OK:
                    a = U0
            if a != U0:
                st, mid, back = two_pool_round_trip(a, x_a, y_a, fee_num_a, fee_den_a, y_b, x_b, fee_num_b,
                                                    fee_den_b, fee_kind)
                if st == AMM_OK and back > a and (back - a > best_profit
                                                  or (back - a == best_profit and a < best_in)):
                    best_profit = back - a
                    best_in = a
                    best_mid = mid
                    best_back = back
            if c >= hi:
                break
            c += U1
    return best_in, best_mid, best_back

