"""Exact Orca Whirlpool maths within the current tick (concentrated liquidity, Q64.64 prices).

One scalar jitted function per formula (STYLE rule 12). Every function returns a status
first (amm_status.py) and never raises. Token deltas and price steps are computed in u256
kept exact as 64-bit limbs (wide.py), so results equal the program's bit for bit, as the
tests check against Python-integer twins (``tests/reference/amm_ref.py``).

Source: orca-so/whirlpools ``programs/whirlpool/src/math/swap_math.rs``
(``compute_swap``), ``math/token_math.rs`` (``get_amount_delta_a/b``,
``get_next_sqrt_price_from_a_round_up``, ``..._from_b_round_down``), fee rate in
hundredths of a basis point (``FEE_RATE_MUL_VALUE`` = 1e6), prices Q64.64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .amm_status import (AMM_ERR_BAD_FEE, AMM_ERR_DIV_ZERO, AMM_ERR_EXCEEDS_U64, AMM_ERR_LIMIT_DIRECTION,
                         AMM_ERR_OVERFLOW, AMM_ERR_PRICE_BOUNDS, AMM_ERR_ZERO_AMOUNT, AMM_OK)
from ...wide import (CEIL_PLAIN, U0, U1, UMAX, add128, add256, ceil_div128, divmod128, divmod256, lt128, lt256, mul64,
                   mul128, sub128, sub256)

WP_FEE_RATE_DEN = 1_000_000    # FEE_RATE_MUL_VALUE: Whirlpool fee_rate in hundredths of a bip
WP_MIN_SQRT_PRICE_X64 = 4295048016                      # Q64.64, tick -443636
WP_MAX_SQRT_PRICE_X64 = 79226673515401279992447579055   # Q64.64, tick 443636

# Whirlpool within-tick flags
WP_CROSSES_TICK = 1            # the price reaches the next initialized tick: the program crosses it
WP_INCOMPLETE = 2              # amount is left after this tick: the real swap continues past it
WP_AT_LIMIT = 4                # the price stopped at sqrt_price_limit

# uint64 forms of the constants above (uint64 operands only: see wide.py)
WP_FEE_DEN_U = np.uint64(WP_FEE_RATE_DEN)
WP_MIN_H, WP_MIN_L = np.uint64(WP_MIN_SQRT_PRICE_X64 >> 64), np.uint64(WP_MIN_SQRT_PRICE_X64 & (2**64 - 1))
WP_MAX_H, WP_MAX_L = np.uint64(WP_MAX_SQRT_PRICE_X64 >> 64), np.uint64(WP_MAX_SQRT_PRICE_X64 & (2**64 - 1))


@njit(cache=True, nogil=True)
def wp_amount_delta_a(p0h, p0l, p1h, p1l, lh, ll, round_up):
    """Token a between two sqrt prices: L (upper - lower) / (upper lower) in Q64.64.

    (status, amount): AMM_ERR_OVERFLOW when L * diff << 64 leaves u256 (the program's
    MultiplicationOverflow); AMM_ERR_EXCEEDS_U64 is the program's
    ``AmountDeltaU64::ExceedsMax`` (the amount does not fit u64).
    """
    if lt128(p0h, p0l, p1h, p1l):
        loh, lol, uph, upl = p0h, p0l, p1h, p1l
    else:
        loh, lol, uph, upl = p1h, p1l, p0h, p0l
    dh, dl, _ = sub128(uph, upl, loh, lol)
    n3, n2, n1, n0 = mul128(lh, ll, dh, dl)
    if n3 != U0:
        return AMM_ERR_OVERFLOW, U0
    m3, m2, m1, m0 = mul128(uph, upl, loh, lol)
    if m3 == U0 and m2 == U0 and m1 == U0 and m0 == U0:
        return AMM_ERR_DIV_ZERO, U0
    q3, q2, q1, q0, r3, r2, r1, r0 = divmod256(n2, n1, n0, U0, m3, m2, m1, m0)
    if round_up and (r3 | r2 | r1 | r0) != U0:
        q3, q2, q1, q0, _ = add256(q3, q2, q1, q0, U0, U0, U0, U1)
    if q3 != U0 or q2 != U0 or q1 != U0:
        return AMM_ERR_EXCEEDS_U64, U0
    return AMM_OK, q0


@njit(cache=True, nogil=True)
def wp_amount_delta_b(p0h, p0l, p1h, p1l, lh, ll, round_up):
    """Token b between two sqrt prices: L (upper - lower) >> 64.

    (status, amount); AMM_ERR_EXCEEDS_U64 is the program's ExceedsMax (L * diff
    leaves u128, or the rounded result leaves u64).
    """
    if lt128(p0h, p0l, p1h, p1l):
        dh, dl, _ = sub128(p1h, p1l, p0h, p0l)
    else:
        dh, dl, _ = sub128(p0h, p0l, p1h, p1l)
    if (lh == U0 and ll == U0) or (dh == U0 and dl == U0):
        return AMM_OK, U0
    w3, w2, w1, w0 = mul128(lh, ll, dh, dl)
    if w3 != U0 or w2 != U0:
        return AMM_ERR_EXCEEDS_U64, U0
    result = w1
    if round_up and w0 != U0:
        if result == UMAX:
            return AMM_ERR_EXCEEDS_U64, U0
        result += U1
    return AMM_OK, result


@njit(cache=True, nogil=True)
def wp_next_sqrt_price_from_a_round_up(ph, pl, lh, ll, amount, is_input):
    """sqrt_price_new = ceil((L p << 64) / ((L << 64) +- p amount)): (status, hi, lo)."""
    if amount == U0:
        return AMM_OK, ph, pl
    pr3, pr2, pr1, pr0 = mul128(ph, pl, U0, amount)
    n3, n2, n1, n0 = mul128(lh, ll, ph, pl)
    if n3 != U0:
        return AMM_ERR_OVERFLOW, U0, U0
    # L << 64 as u256: (0, lh, ll, 0)
    if not is_input:
        if not lt256(pr3, pr2, pr1, pr0, U0, lh, ll, U0):     # L << 64 <= product
            return AMM_ERR_DIV_ZERO, U0, U0
        d3, d2, d1, d0, _ = sub256(U0, lh, ll, U0, pr3, pr2, pr1, pr0)
    else:
        d3, d2, d1, d0, _ = add256(U0, lh, ll, U0, pr3, pr2, pr1, pr0)
    if d3 == U0 and d2 == U0 and d1 == U0 and d0 == U0:
        return AMM_ERR_DIV_ZERO, U0, U0
    q3, q2, q1, q0, r3, r2, r1, r0 = divmod256(n2, n1, n0, U0, d3, d2, d1, d0)
    if (r3 | r2 | r1 | r0) != U0:
        q3, q2, q1, q0, _ = add256(q3, q2, q1, q0, U0, U0, U0, U1)
    if q3 != U0 or q2 != U0:
        return AMM_ERR_OVERFLOW, U0, U0
    if lt128(q1, q0, WP_MIN_H, WP_MIN_L) or lt128(WP_MAX_H, WP_MAX_L, q1, q0):
        return AMM_ERR_PRICE_BOUNDS, U0, U0
    return AMM_OK, q1, q0


@njit(cache=True, nogil=True)
def wp_next_sqrt_price_from_b_round_down(ph, pl, lh, ll, amount, is_input):
    """sqrt_price +- (amount << 64) / L, the quotient rounded up when removing b: (status, hi, lo)."""
    if lh == U0 and ll == U0:
        return AMM_ERR_DIV_ZERO, U0, U0
    qh, ql, rh, rl = divmod128(amount, U0, lh, ll)
    if not is_input and (rh != U0 or rl != U0):
        ql += U1
        if ql == U0:
            qh += U1
            if qh == U0:
                return AMM_ERR_OVERFLOW, U0, U0
    if is_input:
        h, l, c = add128(ph, pl, qh, ql)
        if c != U0:
            return AMM_ERR_OVERFLOW, U0, U0
    else:
        h, l, b = sub128(ph, pl, qh, ql)
        if b != U0:
            return AMM_ERR_OVERFLOW, U0, U0
    return AMM_OK, h, l


@njit(cache=True, nogil=True)
def wp_compute_swap(amount_remaining, fee_rate, lh, ll, ph, pl, th, tl, is_input, a_to_b):
    """One step of Whirlpool's ``compute_swap`` from price p towards target t.

    Returns (status, amount_in, amount_out, next_hi, next_lo, fee_amount), as
    swap_math.rs: the fee is taken from the input (floor(amount (1e6 - fee_rate) / 1e6)
    is what moves the price); a fixed-token delta to the target beyond u64 means "not a
    max swap" (AmountDeltaU64::ExceedsMax), any other overflow is an error.
    """
    fee = np.uint64(fee_rate)
    if fee >= WP_FEE_DEN_U:
        return AMM_ERR_BAD_FEE, U0, U0, U0, U0, U0
    fixed_is_a = a_to_b == is_input
    if fixed_is_a:
        st, fixed0 = wp_amount_delta_a(ph, pl, th, tl, lh, ll, is_input)
    else:
        st, fixed0 = wp_amount_delta_b(ph, pl, th, tl, lh, ll, is_input)
    exceeds = st == AMM_ERR_EXCEEDS_U64
    if st != AMM_OK and not exceeds:
        return st, U0, U0, U0, U0, U0
    amount_calc = amount_remaining
    if is_input:
        mh, ml = mul64(amount_remaining, WP_FEE_DEN_U - fee)
        _, amount_calc, _, _ = divmod128(mh, ml, U0, WP_FEE_DEN_U)
    if not exceeds and fixed0 <= amount_calc:
        nh, nl = th, tl
    else:
        if fixed_is_a:
            st, nh, nl = wp_next_sqrt_price_from_a_round_up(ph, pl, lh, ll, amount_calc, is_input)
        else:
            st, nh, nl = wp_next_sqrt_price_from_b_round_down(ph, pl, lh, ll, amount_calc, is_input)
        if st != AMM_OK:
            return st, U0, U0, U0, U0, U0
    is_max = nh == th and nl == tl
    if fixed_is_a:
        st, unfixed = wp_amount_delta_b(ph, pl, nh, nl, lh, ll, not is_input)
    else:
        st, unfixed = wp_amount_delta_a(ph, pl, nh, nl, lh, ll, not is_input)
    if st != AMM_OK:
        return (AMM_ERR_OVERFLOW if st == AMM_ERR_EXCEEDS_U64 else st), U0, U0, U0, U0, U0
    fixed = fixed0
    if not is_max or exceeds:
        if fixed_is_a:
            st, fixed = wp_amount_delta_a(ph, pl, nh, nl, lh, ll, is_input)
        else:
            st, fixed = wp_amount_delta_b(ph, pl, nh, nl, lh, ll, is_input)
        if st != AMM_OK:
            return (AMM_ERR_OVERFLOW if st == AMM_ERR_EXCEEDS_U64 else st), U0, U0, U0, U0, U0
    if is_input:
        amount_in = fixed
        amount_out = unfixed
    else:
        amount_in = unfixed
        amount_out = fixed
        if amount_out > amount_remaining:
            amount_out = amount_remaining
    if is_input and not is_max:
        fee_amount = amount_remaining - amount_in
    else:
        fh, fl = mul64(amount_in, fee)
        qh, ql, ovf = ceil_div128(fh, fl, U0, WP_FEE_DEN_U - fee, CEIL_PLAIN)
        if ovf or qh != U0:
            return AMM_ERR_OVERFLOW, U0, U0, U0, U0, U0
        fee_amount = ql
    return AMM_OK, amount_in, amount_out, nh, nl, fee_amount


@njit(cache=True, nogil=True)
def wp_swap_within_tick(amount, fee_rate, lh, ll, ph, pl, limit_h, limit_l, tick_h, tick_l, is_input, a_to_b):
    """Apply a Whirlpool swap to the pool as far as the next initialized tick.

    ``liquidity`` (lh, ll), ``sqrt_price`` (ph, pl) Q64.64, ``sqrt_price_limit`` as in the
    instruction (0 = none), ``tick`` = sqrt price of the next initialized tick in the
    swap's direction (below the price for a_to_b, above otherwise; the caller knows it from
    the tick arrays, or passes the price bound to assume one liquidity range).
    Validates like swap_manager.rs (limit in bounds and on the right side, amount > 0),
    then runs one compute_swap step to min/max(tick, limit).

    Returns (status, amount_in, amount_out, fee_amount, next_hi, next_lo, flags):
    amount_in excludes the fee (the vault receives amount_in + fee_amount); flags
    WP_CROSSES_TICK (the price reached the tick: the program crosses it there and the
    liquidity changes), WP_INCOMPLETE (amount is left: the real swap continues beyond the
    tick, these amounts cover only the current range), WP_AT_LIMIT.
    """
    if amount == U0:
        return AMM_ERR_ZERO_AMOUNT, U0, U0, U0, U0, U0, 0
    if limit_h == U0 and limit_l == U0:
        if a_to_b:
            limit_h, limit_l = WP_MIN_H, WP_MIN_L
        else:
            limit_h, limit_l = WP_MAX_H, WP_MAX_L
    if lt128(limit_h, limit_l, WP_MIN_H, WP_MIN_L) or lt128(WP_MAX_H, WP_MAX_L, limit_h, limit_l):
        return AMM_ERR_PRICE_BOUNDS, U0, U0, U0, U0, U0, 0
    if a_to_b:
        if not lt128(limit_h, limit_l, ph, pl):
            return AMM_ERR_LIMIT_DIRECTION, U0, U0, U0, U0, U0, 0
        if lt128(tick_h, tick_l, limit_h, limit_l):         # target = max(tick, limit)
            th, tl, at_tick = limit_h, limit_l, False
        else:
            th, tl, at_tick = tick_h, tick_l, True
    else:
        if not lt128(ph, pl, limit_h, limit_l):
            return AMM_ERR_LIMIT_DIRECTION, U0, U0, U0, U0, U0, 0
        if lt128(limit_h, limit_l, tick_h, tick_l):         # target = min(tick, limit)
            th, tl, at_tick = limit_h, limit_l, False
        else:
            th, tl, at_tick = tick_h, tick_l, True
    st, a_in, a_out, nh, nl, fee_amount = wp_compute_swap(amount, fee_rate, lh, ll, ph, pl, th, tl,
                                                          is_input, a_to_b)
    if st != AMM_OK:
        return st, U0, U0, U0, U0, U0, 0
    flags = 0
    if nh == th and nl == tl:
        if at_tick:
            flags |= WP_CROSSES_TICK
        if nh == limit_h and nl == limit_l:
            flags |= WP_AT_LIMIT
    if is_input:
        used = a_in + fee_amount
    else:
        used = a_out
    if used < amount and (flags & WP_AT_LIMIT) == 0:
        flags |= WP_INCOMPLETE
    return AMM_OK, a_in, a_out, fee_amount, nh, nl, flags

