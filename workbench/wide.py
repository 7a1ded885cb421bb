"""u128 and u256 integers without a wider integer type, for the exact AMM maths.

numba has no 128-bit integer. The programs compute in u128 (Raydium ``U128``, Rust
``u128``) and Whirlpool in u256 (``U256Muldiv``). Here every such value is kept EXACT as
unsigned 64-bit limbs, most significant first: a u128 is ``(hi, lo)``, a u256
``(w3, w2, w1, w0)``. ``mul64`` forms the full 128-bit product of two u64 from 32-bit
halves; ``divlu`` divides a u128 by a u64 with Hacker's Delight's ``divlu`` (2nd ed.,
fig. 9-3: normalise, two 32-bit quotient digits, each corrected at most twice);
``divmod128`` divides u128 by u128 (Hacker's Delight 9-5 "udivti3": one ``divlu`` on the
normalised top words, then at most one correction); ``divmod256`` is binary long
division (only Whirlpool's price steps use it).

All uint64 arithmetic here uses uint64 operands only (the ``U*`` constants): numba turns
a uint64 mixed with an int64 into float64, which would silently round.

Rounding of ``ceil_div128``: Raydium's ``checked_ceil_div`` (math.rs of raydium-amm at
b186b06, and raydium-cp-swap ``programs/cp-swap/src/utils/math.rs``) is not a plain
ceiling: when the quotient is 0 it returns 1 if ``2 * a >= b`` else 0 (rounds half up),
otherwise ``ceil(a / b)``. ``CEIL_RAYDIUM`` selects it, ``CEIL_PLAIN`` the ordinary
ceiling (what later raydium-amm revisions use). They differ only when ``a < b``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CEIL_PLAIN = 0                 # ceil(a / b)
CEIL_RAYDIUM = 1               # Raydium CheckedCeilDiv: a < b -> (2a >= b), else ceil(a / b)

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


def split128(x: int):
    """Python int in [0, 2**128) -> (hi, lo) np.uint64."""
    return np.uint64(x >> 64), np.uint64(x & 0xFFFFFFFFFFFFFFFF)


def join128(hi, lo) -> int:
    return (int(hi) << 64) | int(lo)


# --- u64 / u128 ---------------------------------------------------------------------------------

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


# --- u256 --------------------------------------------------------------------------------------

# compiled once and inlined by LLVM (forceinline): numba's inline="always" copied its IR (four mul64
# inlined in it) into each of its callers' compiles, the costliest inline of a first run
@njit(cache=True, nogil=True, forceinline=True)
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

