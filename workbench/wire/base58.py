"""Base58 (Bitcoin alphabet, as Solana uses) encoding of fixed-width byte strings, in numba.

The number is held as big-endian 32-bit limbs and divided by 58**5 per pass (a constant
division the compiler turns into a multiply), five digits at a time: ~20 passes of 16
limbs for a 64-byte signature instead of 64 * 88 byte steps. Used once per batch to turn
signatures and keys into Arrow strings without a Python object per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ALPHABET = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", np.uint8).copy()
B58_5 = 58 ** 5               # 656_356_768 < 2**32


@njit(cache=True, nogil=True)
def encode_into(src, off, n, out, o, limbs, digits):
    """Base58 of ``src[off:off+n]`` written at ``out[o:]``; returns the characters written.

    ``limbs`` (uint64[>= (n+3)//4]) and ``digits`` (uint8[>= 2*n]) are scratch space.
    """
    z = 0
    while z < n and src[off + z] == 0:
        z += 1
    # load big-endian limbs, most significant first; a partial first limb if n % 4
    nl = (n + 3) // 4
    first = n - (nl - 1) * 4
    p = off
    for i in range(nl):
        w = 4 if i > 0 else first
        v = np.uint64(0)
        for _ in range(w):
            v = (v << np.uint64(8)) | np.uint64(src[p])
            p += 1
        limbs[i] = v
    nd = 0
    lo = 0
    while lo < nl:
        rem = np.uint64(0)
        for i in range(lo, nl):
            cur = (rem << np.uint64(32)) | limbs[i]
            limbs[i] = cur // np.uint64(B58_5)
            rem = cur - limbs[i] * np.uint64(B58_5)
        for _ in range(5):
            digits[nd] = rem % np.uint64(58)
            rem //= np.uint64(58)
            nd += 1
        while lo < nl and limbs[lo] == 0:
            lo += 1
    while nd > 0 and digits[nd - 1] == 0:
        nd -= 1
    for i in range(z):
        out[o + i] = ALPHABET[0]
    for i in range(nd):
        out[o + z + i] = ALPHABET[digits[nd - 1 - i]]
    return z + nd


SIG_LIMBS = 16                # 64 bytes as big-endian u32 limbs
SIG_INTER = 18                # base 58**5 digits of a 512-bit number (58**90 > 2**512)


def _limb_table(limbs: int, inter: int) -> np.ndarray:
    """Row i: 2**(32*(limbs-1-i)) written in base 58**5, most significant digit first."""
    t = np.zeros((limbs, inter), np.uint64)
    for i in range(limbs):
        v = 1 << (32 * (limbs - 1 - i))
        for j in range(inter - 1, -1, -1):
            v, t[i, j] = divmod(v, B58_5)
        assert v == 0
    return t


SIG_TABLE = _limb_table(SIG_LIMBS, SIG_INTER)


@njit(cache=True, nogil=True, inline="always")
def _carry(inter):
    for j in range(SIG_INTER - 1, 0, -1):
        inter[j - 1] += inter[j] // np.uint64(B58_5)
        inter[j] = inter[j] % np.uint64(B58_5)


@njit(cache=True, nogil=True)
def encode64_into(src, off, out, o, inter, digits):
    """Base58 of the 64 bytes at ``src[off:]`` (a signature) written at ``out[o:]``.

    Firedancer's method (fd_base58): the number is a sum of u32 limbs times powers of
    2**32, each power tabulated in base 58**5; multiply-adds into 18 u64 accumulators,
    with a carry pass after each 8 limbs (8 * (2**32) * (58**5) < 2**64), then 5 base-58
    digits per accumulator. No long division, the costly step of ``encode_into``: signatures
    are most of the base58 a run writes. One signature at a time; ``encode64_column`` runs
    the same steps across a block of signatures (tests compare the two).
    """
    for j in range(SIG_INTER):
        inter[j] = 0
    for half in range(2):
        for i in range(half * 8, half * 8 + 8):
            p = off + 4 * i
            limb = (np.uint64(src[p]) << np.uint64(24)) | (np.uint64(src[p + 1]) << np.uint64(16)) | \
                (np.uint64(src[p + 2]) << np.uint64(8)) | np.uint64(src[p + 3])
            for j in range(SIG_INTER):
                inter[j] += limb * SIG_TABLE[i, j]
        _carry(inter)
    for j in range(SIG_INTER):
        v = inter[j]
        for k in range(4, -1, -1):
            digits[5 * j + k] = v % np.uint64(58)
            v //= np.uint64(58)
    z = 0
    while z < 64 and src[off + z] == 0:
        z += 1
    first = 0
    nd = 5 * SIG_INTER
    while first < nd and digits[first] == 0:
        first += 1
    for i in range(z):
        out[o + i] = ALPHABET[0]
    for i in range(first, nd):
        out[o + z + i - first] = ALPHABET[digits[i]]
    return z + nd - first


SIG_BLOCK = 64                # signatures encoded side by side: the inner loops run across them (SIMD)


@njit(cache=True, nogil=True)
def encode64_column(src, offs, data, offsets):
    """``encode_column`` for 64-byte values, ``SIG_BLOCK`` at a time.

    The same method as ``encode64_into``, with the accumulators of a block of signatures
    laid side by side, so that the multiply-adds and digit splits of one step run across
    the block as vector instructions instead of one signature after another.
    """
    m = offs.shape[0]
    limbs = np.empty((SIG_LIMBS, SIG_BLOCK), np.uint64)
    inter = np.empty((SIG_INTER, SIG_BLOCK), np.uint64)
    digits = np.empty((5 * SIG_INTER, SIG_BLOCK), np.uint8)
    b58_5 = np.uint64(B58_5)
    o = 0
    offsets[0] = 0
    for r0 in range(0, m, SIG_BLOCK):
        nb = min(SIG_BLOCK, m - r0)
        for b in range(nb):
            p = offs[r0 + b]
            for i in range(SIG_LIMBS):
                q = p + 4 * i
                limbs[i, b] = (np.uint64(src[q]) << np.uint64(24)) | (np.uint64(src[q + 1]) << np.uint64(16)) | \
                    (np.uint64(src[q + 2]) << np.uint64(8)) | np.uint64(src[q + 3])
        inter[:, :] = 0
        for half in range(2):
            for i in range(half * 8, half * 8 + 8):
                for j in range(SIG_INTER):
                    t = SIG_TABLE[i, j]
                    for b in range(SIG_BLOCK):
                        inter[j, b] += limbs[i, b] * t
            for j in range(SIG_INTER - 1, 0, -1):
                for b in range(SIG_BLOCK):
                    q = inter[j, b] // b58_5
                    inter[j - 1, b] += q
                    inter[j, b] -= q * b58_5
        for j in range(SIG_INTER):
            for b in range(SIG_BLOCK):
                v = np.uint32(inter[j, b])
                for k in range(4, -1, -1):
                    q = v // np.uint32(58)
                    digits[5 * j + k, b] = np.uint8(v - q * np.uint32(58))
                    v = q
        for b in range(nb):
            p = offs[r0 + b]
            z = 0
            while z < 64 and src[p + z] == 0:
                z += 1
            first = 0
            while first < 5 * SIG_INTER and digits[first, b] == 0:
                first += 1
            for i in range(z):
                data[o + i] = ALPHABET[0]
            o += z
            for i in range(first, 5 * SIG_INTER):
                data[o] = ALPHABET[digits[i, b]]
                o += 1
            offsets[r0 + b + 1] = o
    return o


@njit(cache=True, nogil=True)
def encode_column(src, offs, n, data, offsets):
    """Base58 of ``src[offs[i]:offs[i]+n]`` for every i, as an Arrow string column.

    ``data`` (uint8[len(offs) * (2n)]) receives the characters, ``offsets`` (int32[len+1])
    the Arrow offsets. Returns the bytes of ``data`` used.
    """
    if n == 64:
        return encode64_column(src, offs, data, offsets)
    limbs = np.empty((n + 3) // 4, np.uint64)
    digits = np.empty(2 * n + 8, np.uint8)
    o = np.int64(0)          # (an int64 from the start: a literal 0 compiles the callees once more)
    offsets[0] = 0
    for i in range(offs.shape[0]):
        o += encode_into(src, offs[i], n, data, o, limbs, digits)
        offsets[i + 1] = o
    return o



# --------------------------------------------------------------------------------------------
# decoding many 32-byte keys at once (numpy, for snapshot files: tens of thousands of addresses)
# --------------------------------------------------------------------------------------------

KEY_SZ = 32
KEY_TEXT_MAX = 44             # characters of the base58 of 32 bytes, at most (58**44 > 2**256)
_KEY_GROUPS = 9               # the text read as 9 groups of 5 digits (45 >= 44), one base-58**5 digit each
_KEY_LIMBS = KEY_SZ // 4 + 1  # little-endian u32 limbs, one past 256 bits to see a number too large
_DIGIT = np.full(256, 255, np.uint8)
_DIGIT[ALPHABET] = np.arange(58, dtype=np.uint8)
_GROUP_WEIGHTS = 58 ** np.arange(4, -1, -1, dtype=np.uint64)


def decode32_texts(texts) -> tuple[np.ndarray, np.ndarray]:
    """``(raw, ok)``: ``raw[i]`` (uint8 [n, 32]) is what ``base58.b58decode(texts[i])`` gives, where
    ``ok[i]``: a str of base58 digits that decodes to exactly 32 bytes. Other values (not str,
    empty, other characters, another length) are ``ok`` False, left to a per-value check that
    can say what is wrong with them. The texts are multiplied in side by side, five digits
    (one base 58**5 digit, as ``encode_into`` divides) per step, instead of a Python big-number
    loop per text."""
    n = len(texts)
    raw = np.zeros((n, KEY_SZ), np.uint8)
    ok = np.fromiter((isinstance(t, str) and 0 < len(t) <= KEY_TEXT_MAX and t.isascii() for t in texts),
                     np.bool_, n)
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        return raw, ok
    picked = [texts[i] for i in rows]
    # left-padding with '1' (digit 0) leaves the number as it is; the text's own leading '1's are zero bytes
    width = 5 * _KEY_GROUPS
    text = np.frombuffer("".join(t.rjust(width, "1") for t in picked).encode("ascii"), np.uint8)
    digits = _DIGIT[text.reshape(-1, width)]
    good = (digits != 255).all(axis=1)
    groups = np.where(digits == 255, 0, digits).astype(np.uint64).reshape(-1, _KEY_GROUPS, 5) @ _GROUP_WEIGHTS
    limbs = np.zeros((rows.size, _KEY_LIMBS), np.uint64)
    for j in range(_KEY_GROUPS):
        carry = groups[:, j]
        for k in range(_KEY_LIMBS):                  # limb * 58**5 + carry < 2**63
            v = limbs[:, k] * np.uint64(B58_5) + carry
            limbs[:, k] = v & np.uint64(0xFFFFFFFF)
            carry = v >> np.uint64(32)
    be = np.ascontiguousarray(limbs[:, KEY_SZ // 4 - 1::-1]).astype(">u4").view(np.uint8).reshape(-1, KEY_SZ)
    nonzero = be != 0
    number_bytes = KEY_SZ - np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), KEY_SZ)
    leading_ones = np.fromiter((len(t) - len(t.lstrip("1")) for t in picked), np.int64, rows.size)
    good &= (limbs[:, KEY_SZ // 4] == 0) & (leading_ones + number_bytes == KEY_SZ)
    ok[rows] = good
    raw[rows[good]] = be[good]
    return raw, ok
