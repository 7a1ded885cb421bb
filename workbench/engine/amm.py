"""Exact AMM maths: constant product (Raydium AMM v4, Raydium CPMM) and Whirlpool within a tick.

One scalar jitted function per formula (STYLE rule 12). Every function returns a status
first (``AMM_OK`` or an ``AMM_ERR_*`` code: the on-chain program would fail) and never
raises.

u128 and u256 without a wider integer type
------------------------------------------
numba has no 128-bit integer. The programs compute in u128 (Raydium ``U128``, Rust
``u128``) and Whirlpool in u256 (``U256Muldiv``). Here every such value is kept EXACT as
unsigned 64-bit limbs, most significant first: a u128 is ``(hi, lo)``, a u256
``(w3, w2, w1, w0)``. ``mul64`` forms the full 128-bit product of two u64 from 32-bit
halves; ``divlu`` divides a u128 by a u64 with Hacker's Delight's ``divlu`` (2nd ed.,
fig. 9-3: normalise, two 32-bit quotient digits, each corrected at most twice);
``divmod128`` divides u128 by u128 (Hacker's Delight 9-5 "udivti3": one ``divlu`` on the
normalised top words, then at most one correction); ``divmod256`` is binary long
division (only Whirlpool's price steps use it). No float64 touches an amount, a reserve
or a price: results equal the programs' bit for bit, as the tests check against
Python-integer twins (``tests/reference/amm_ref.py``) on seeded random inputs and edges.
Only ``price_impact`` and the closed-form START of ``optimal_two_pool_arb_in`` use
float64 (see their docstrings for the bound); the arbitrage amounts and profit they
return are evaluated exactly.

All uint64 arithmetic here uses uint64 operands only (the ``U*`` constants): numba turns
a uint64 mixed with an int64 into float64, which would silently round.

Sources (public repositories, read through the stored code index):

* Raydium AMM v4, raydium-io/raydium-amm ``program/src/processor.rs``
  (``process_swap_base_in``: ``swap_fee = ceil_div(amount_in * swap_fee_numerator,
  swap_fee_denominator)``; ``process_swap_base_out``: gross-up ``ceil_div(before_fee *
  den, den - num)``), ``program/src/math.rs`` (``Calculator::swap_token_amount_base_in``:
  ``floor(out_reserve * in / (in_reserve + in))``; ``swap_token_amount_base_out``:
  ``ceil_div(in_reserve * out, out_reserve - out)``; ``CheckedCeilDiv``). Default fee
  25 / 10000 (``state.rs`` ``Fees``). Reserves are ``total_*_without_take_pnl`` (vault
  amount minus ``need_take_pnl``, plus open-orders funds while the order book is on).
* Raydium's ``checked_ceil_div`` (math.rs of raydium-amm at b186b06, and
  raydium-cp-swap ``programs/cp-swap/src/utils/math.rs``) is not a plain ceiling: when the
  quotient is 0 it returns 1 if ``2 * a >= b`` else 0 (rounds half up), otherwise
  ``ceil(a / b)``. ``CEIL_RAYDIUM`` selects it, ``CEIL_PLAIN`` the ordinary ceiling (what
  later raydium-amm revisions use). They differ only when ``a < b``.
* Raydium CPMM, raydium-io/raydium-cp-swap ``src/curve/calculator.rs``
  (``swap_base_input``/``swap_base_output``), ``src/curve/constant_product.rs``,
  ``src/curve/fees.rs`` (``trading_fee = ceil(amount * rate / 1e6)`` plain,
  ``calculate_pre_fee_amount = ceil(x * 1e6 / (1e6 - rate))`` plain, rate in ppm from
  the AmmConfig). Reserves are ``vault_amount_without_fee`` (vault minus protocol and
  fund fees owed). Creator fees of the newest revision are not modelled.
* Orca Whirlpool, orca-so/whirlpools ``programs/whirlpool/src/math/swap_math.rs``
  (``compute_swap``), ``math/token_math.rs`` (``get_amount_delta_a/b``,
  ``get_next_sqrt_price_from_a_round_up``, ``..._from_b_round_down``), fee rate in
  hundredths of a basis point (``FEE_RATE_MUL_VALUE`` = 1e6), prices Q64.64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- status codes ---------------------------------------------------------------------------
AMM_OK = 0
AMM_ERR_ZERO_AMOUNT = -1       # amount 0, or an exact-out swap that would take 0 in (programs reject both)
AMM_ERR_DIV_ZERO = -2          # a division by zero the program would hit (empty reserve, zero liquidity)
AMM_ERR_OVERFLOW = -3          # an intermediate or the result leaves its Rust type (the program panics / errors)
AMM_ERR_INSUFFICIENT = -4      # the output would empty the reserve (exact-out amount >= reserve; empty input side)
AMM_ERR_ZERO_OUT = -5          # the swap yields 0 out (CPMM require_gt!(amount_received, 0))
AMM_ERR_BAD_FEE = -6           # fee numerator > denominator, or a zero denominator
AMM_ERR_PRICE_BOUNDS = -7      # Whirlpool: a price outside [MIN_SQRT_PRICE_X64, MAX_SQRT_PRICE_X64]
AMM_ERR_LIMIT_DIRECTION = -8   # Whirlpool: sqrt_price_limit on the wrong side of the current price
AMM_ERR_EXCEEDS_U64 = -9       # Whirlpool: a token delta beyond u64 (AmountDeltaU64::ExceedsMax)
AMM_STATUS_NAMES = {AMM_OK: "ok", AMM_ERR_ZERO_AMOUNT: "zero_amount", AMM_ERR_DIV_ZERO: "div_zero",
                    AMM_ERR_OVERFLOW: "overflow", AMM_ERR_INSUFFICIENT: "insufficient_reserve",
                    AMM_ERR_ZERO_OUT: "zero_out", AMM_ERR_BAD_FEE: "bad_fee",
                    AMM_ERR_PRICE_BOUNDS: "price_out_of_bounds", AMM_ERR_LIMIT_DIRECTION: "limit_direction",
                    AMM_ERR_EXCEEDS_U64: "exceeds_u64"}

CEIL_PLAIN = 0                 # ceil(a / b)
CEIL_RAYDIUM = 1               # Raydium CheckedCeilDiv: a < b -> (2a >= b), else ceil(a / b)

RAYDIUM_V4_FEE_NUM = 25        # swap_fee_numerator of a standard pool
RAYDIUM_V4_FEE_DEN = 10_000    # swap_fee_denominator
CPMM_FEE_RATE_DEN = 1_000_000  # FEE_RATE_DENOMINATOR_VALUE: CPMM trade_fee_rate is in ppm
WP_FEE_RATE_DEN = 1_000_000    # FEE_RATE_MUL_VALUE: Whirlpool fee_rate in hundredths of a bip
WP_MIN_SQRT_PRICE_X64 = 4295048016                      # Q64.64, tick -443636
WP_MAX_SQRT_PRICE_X64 = 79226673515401279992447579055   # Q64.64, tick 443636

# Whirlpool within-tick flags
WP_CROSSES_TICK = 1            # the price reaches the next initialized tick: the program crosses it
WP_INCOMPLETE = 2              # amount is left after this tick: the real swap continues past it
WP_AT_LIMIT = 4                # the price stopped at sqrt_price_limit

# uint64 constants (never mix uint64 with int64 literals, see above)
U0 = np.uint64(0)
U1 = np.uint64(1)
U2 = np.uint64(2)
U32 = np.uint64(32)
U63 = np.uint64(63)
U64 = np.uint64(64)
M32 = np.uint64(0xFFFFFFFF)
B32 = np.uint64(1 << 32)
UMAX = np.uint64(0xFFFFFFFFFFFFFFFF)
TOP_BIT = np.uint64(1 << 63)
WP_FEE_DEN_U = np.uint64(WP_FEE_RATE_DEN)
WP_MIN_H, WP_MIN_L = np.uint64(WP_MIN_SQRT_PRICE_X64 >> 64), np.uint64(WP_MIN_SQRT_PRICE_X64 & (2**64 - 1))
WP_MAX_H, WP_MAX_L = np.uint64(WP_MAX_SQRT_PRICE_X64 >> 64), np.uint64(WP_MAX_SQRT_PRICE_X64 & (2**64 - 1))


def split128(x: int):
    """Python int in [0, 2**128) -> (hi, lo) np.uint64."""
    return np.uint64(x >> 64), np.uint64(x & 0xFFFFFFFFFFFFFFFF)


def join128(hi, lo) -> int:
    return (int(hi) << 64) | int(lo)


# ============================================================================================
# 64/128/256-bit limb arithmetic
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def nlz64(x):
    """Leading zero bits of a uint64 (64 for 0), as uint64."""
    if x == U0:
        return U64
    n = U0
    if x <= np.uint64(0x00000000FFFFFFFF):
        n += U32
        x <<= U32
    if x <= np.uint64(0x0000FFFFFFFFFFFF):
        n += np.uint64(16)
        x <<= np.uint64(16)
    if x <= np.uint64(0x00FFFFFFFFFFFFFF):
        n += np.uint64(8)
        x <<= np.uint64(8)
    if x <= np.uint64(0x0FFFFFFFFFFFFFFF):
        n += np.uint64(4)
        x <<= np.uint64(4)
    if x <= np.uint64(0x3FFFFFFFFFFFFFFF):
        n += U2
        x <<= U2
    if x <= np.uint64(0x7FFFFFFFFFFFFFFF):
        n += U1
    return n


@njit(cache=True, nogil=True, inline="always")
def mul64(a, b):
    """Full product of two uint64: (hi, lo)."""
    a0 = a & M32
    a1 = a >> U32
    b0 = b & M32
    b1 = b >> U32
    p00 = a0 * b0
    p01 = a0 * b1
    p10 = a1 * b0
    p11 = a1 * b1
    mid = (p00 >> U32) + (p01 & M32) + (p10 & M32)      # < 3 * 2**32
    lo = (mid << U32) | (p00 & M32)
    hi = p11 + (p01 >> U32) + (p10 >> U32) + (mid >> U32)
    return hi, lo


@njit(cache=True, nogil=True, inline="always")
def add128(ah, al, bh, bl):
    """(hi, lo, carry) of a + b."""
    lo = al + bl
    c = U1 if lo < al else U0
    h1 = ah + bh
    c2 = U1 if h1 < ah else U0
    hi = h1 + c
    c3 = U1 if hi < h1 else U0
    return hi, lo, c2 | c3


@njit(cache=True, nogil=True, inline="always")
def sub128(ah, al, bh, bl):
    """(hi, lo, borrow) of a - b (mod 2**128)."""
    lo = al - bl
    b = U1 if al < bl else U0
    h1 = ah - bh
    b2 = U1 if ah < bh else U0
    hi = h1 - b
    b3 = U1 if h1 < b else U0
    return hi, lo, b2 | b3


@njit(cache=True, nogil=True, inline="always")
def lt128(ah, al, bh, bl):
    return ah < bh or (ah == bh and al < bl)


@njit(cache=True, nogil=True)
def divlu(u1, u0, v):
    """(q, r) of (u1 * 2**64 + u0) // v for uint64 v > u1 (so q fits 64 bits).

    Hacker's Delight 2nd ed. fig. 9-3 (divlu): normalise v, two 32-bit quotient digits.
    """
    s = nlz64(v)
    v = v << s
    vn1 = v >> U32
    vn0 = v & M32
    if s == U0:
        un32 = u1
    else:
        un32 = (u1 << s) | (u0 >> (U64 - s))
    un10 = u0 << s
    un1 = un10 >> U32
    un0 = un10 & M32
    q1 = un32 // vn1
    rhat = un32 - q1 * vn1
    while q1 >= B32 or q1 * vn0 > ((rhat << U32) | un1):
        q1 -= U1
        rhat += vn1
        if rhat >= B32:
            break
    un21 = (un32 << U32) + un1 - q1 * v
    q0 = un21 // vn1
    rhat = un21 - q0 * vn1
    while q0 >= B32 or q0 * vn0 > ((rhat << U32) | un0):
        q0 -= U1
        rhat += vn1
        if rhat >= B32:
            break
    r = ((un21 << U32) + un0 - q0 * v) >> s
    return (q1 << U32) | q0, r


@njit(cache=True, nogil=True)
def divmod128(uh, ul, vh, vl):
    """(qh, ql, rh, rl) of u // v, u % v for u128 u and u128 v != 0.

    Hacker's Delight 2nd ed. sec. 9-5 (udivti3 on 64-bit words).
    """
    if vh == U0:
        if uh < vl:
            q, r = divlu(uh, ul, vl)
            return U0, q, U0, r
        qh = uh // vl
        k = uh - qh * vl
        ql, r = divlu(k, ul, vl)
        return qh, ql, U0, r
    n = nlz64(vh)                                   # 0..63
    if n == U0:
        v1 = vh
    else:
        v1 = (vh << n) | (vl >> (U64 - n))          # top 64 bits of v << n
    u1h = uh >> U1                                  # u >> 1, so u1h < 2**63 <= v1
    u1l = (ul >> U1) | (uh << U63)
    q1, _ = divlu(u1h, u1l, v1)
    q0 = q1 >> (U63 - n)                            # (q1 << n) >> 63
    if q0 != U0:
        q0 -= U1
    th, tl = mul64(q0, vl)                          # q0 * v <= u: fits 128 bits
    th += q0 * vh
    rh, rl, _ = sub128(uh, ul, th, tl)
    if not lt128(rh, rl, vh, vl):
        q0 += U1
        rh, rl, _ = sub128(rh, rl, vh, vl)
    return U0, q0, rh, rl


@njit(cache=True, nogil=True, inline="always")
def ceil_div128(nh, nl, dh, dl, kind):
    """(qh, ql, overflow) of n / d rounded up as ``kind`` says (d != 0).

    CEIL_PLAIN: ceil(n / d). CEIL_RAYDIUM: Raydium's CheckedCeilDiv -- a zero quotient
    becomes 1 when 2n >= d (None, i.e. overflow, when 2n does not fit u128), else
    ceil(n / d).
    """
    qh, ql, rh, rl = divmod128(nh, nl, dh, dl)
    if kind == CEIL_RAYDIUM and qh == U0 and ql == U0:
        if nh >= TOP_BIT:
            return U0, U0, True
        th = (nh << U1) | (nl >> U63)
        tl = nl << U1
        if lt128(th, tl, dh, dl):
            return U0, U0, False
        return U0, U1, False
    if rh != U0 or rl != U0:
        ql += U1
        if ql == U0:
            qh += U1
            if qh == U0:
                return U0, U0, True
    return qh, ql, False


# --- u256 (Whirlpool) ---------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def mul128(ah, al, bh, bl):
    """Full product of two u128: (w3, w2, w1, w0)."""
    p0h, p0l = mul64(al, bl)
    p1h, p1l = mul64(al, bh)
    p2h, p2l = mul64(ah, bl)
    p3h, p3l = mul64(ah, bh)
    w0 = p0l
    # w1 = p0h + p1l + p2l
    w1 = p0h + p1l
    c = U1 if w1 < p0h else U0
    t = w1 + p2l
    c += U1 if t < w1 else U0
    w1 = t
    # w2 = p1h + p2h + p3l + c
    w2 = p1h + p2h
    c2 = U1 if w2 < p1h else U0
    t = w2 + p3l
    c2 += U1 if t < w2 else U0
    w2 = t
    t = w2 + c
    c2 += U1 if t < w2 else U0
    w2 = t
    w3 = p3h + c2
    return w3, w2, w1, w0


@njit(cache=True, nogil=True, inline="always")
def add256(a3, a2, a1, a0, b3, b2, b1, b0):
    """(w3, w2, w1, w0, carry) of a + b."""
    w0 = a0 + b0
    c = U1 if w0 < a0 else U0
    t = a1 + b1
    c1 = U1 if t < a1 else U0
    w1 = t + c
    c1 += U1 if w1 < t else U0
    t = a2 + b2
    c2 = U1 if t < a2 else U0
    w2 = t + c1
    c2 += U1 if w2 < t else U0
    t = a3 + b3
    c3 = U1 if t < a3 else U0
    w3 = t + c2
    c3 += U1 if w3 < t else U0
    return w3, w2, w1, w0, c3 != U0


@njit(cache=True, nogil=True, inline="always")
def sub256(a3, a2, a1, a0, b3, b2, b1, b0):
    """(w3, w2, w1, w0, borrow) of a - b (mod 2**256)."""
    w0 = a0 - b0
    b = U1 if a0 < b0 else U0
    t = a1 - b1
    bb = U1 if a1 < b1 else U0
    w1 = t - b
    bb += U1 if t < b else U0
    t = a2 - b2
    b2_ = U1 if a2 < b2 else U0
    w2 = t - bb
    b2_ += U1 if t < bb else U0
    t = a3 - b3
    b3_ = U1 if a3 < b3 else U0
    w3 = t - b2_
    b3_ += U1 if t < b2_ else U0
    return w3, w2, w1, w0, b3_ != U0


@njit(cache=True, nogil=True, inline="always")
def lt256(a3, a2, a1, a0, b3, b2, b1, b0):
    if a3 != b3:
        return a3 < b3
    if a2 != b2:
        return a2 < b2
    if a1 != b1:
        return a1 < b1
    return a0 < b0


@njit(cache=True, nogil=True, inline="always")
def _bitlen256(a3, a2, a1, a0):
    if a3 != U0:
        return np.int64(256) - np.int64(nlz64(a3))
    if a2 != U0:
        return np.int64(192) - np.int64(nlz64(a2))
    if a1 != U0:
        return np.int64(128) - np.int64(nlz64(a1))
    return np.int64(64) - np.int64(nlz64(a0))


@njit(cache=True, nogil=True, inline="always")
def _bit256(a3, a2, a1, a0, i):
    w = i >> 6
    s = np.uint64(i & 63)
    if w == 0:
        return (a0 >> s) & U1
    if w == 1:
        return (a1 >> s) & U1
    if w == 2:
        return (a2 >> s) & U1
    return (a3 >> s) & U1


@njit(cache=True, nogil=True)
def divmod256(n3, n2, n1, n0, d3, d2, d1, d0):
    """(q3, q2, q1, q0, r3, r2, r1, r0) of n // d, n % d for u256 (d != 0).

    Binary long division over the quotient's bits only (bitlen(n) - bitlen(d) + 1 steps).
    """
    q3 = q2 = q1 = q0 = U0
    ln = _bitlen256(n3, n2, n1, n0)
    ld = _bitlen256(d3, d2, d1, d0)
    if ln < ld:
        return q3, q2, q1, q0, n3, n2, n1, n0
    r3 = r2 = r1 = r0 = U0
    for i in range(ln - 1, -1, -1):
        top = r3 >> U63                             # bit shifted out: r >= 2**256 > d
        r3 = (r3 << U1) | (r2 >> U63)
        r2 = (r2 << U1) | (r1 >> U63)
        r1 = (r1 << U1) | (r0 >> U63)
        r0 = (r0 << U1) | _bit256(n3, n2, n1, n0, i)
        if top != U0 or not lt256(r3, r2, r1, r0, d3, d2, d1, d0):
            r3, r2, r1, r0, _ = sub256(r3, r2, r1, r0, d3, d2, d1, d0)
            w = i >> 6
            bit = U1 << np.uint64(i & 63)
            if w == 0:
                q0 |= bit
            elif w == 1:
                q1 |= bit
            elif w == 2:
                q2 |= bit
            else:
                q3 |= bit
    return q3, q2, q1, q0, r3, r2, r1, r0


@njit(cache=True, nogil=True, inline="always")
def u256_to_float(a3, a2, a1, a0):
    """float64 of a u256 (relative error <= 2**-52)."""
    return ((np.float64(a3) * 18446744073709551616.0 + np.float64(a2)) * 18446744073709551616.0
            + np.float64(a1)) * 18446744073709551616.0 + np.float64(a0)


# ============================================================================================
# constant product (Raydium AMM v4, Raydium CPMM)
# ============================================================================================

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
    st, a, before = cp_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den, CEIL_RAYDIUM, CEIL_RAYDIUM)
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
    st, a, before = cp_amount_in(amount_out, reserve_in, reserve_out, trade_fee_rate, den, CEIL_RAYDIUM, CEIL_PLAIN)
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
    st, g, _ = cp_amount_in(amount_out, reserve_in, reserve_out, fee_num, fee_den, CEIL_PLAIN, CEIL_PLAIN)
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


# ============================================================================================
# Orca Whirlpool, within the current tick
# ============================================================================================

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
