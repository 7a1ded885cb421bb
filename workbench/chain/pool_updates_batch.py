"""chain/pool_updates.py's rule over a whole chunk of Geyser account updates, in one jitted call.

``PoolTracker`` decodes one update per Python call; a Geyser stream of a busy market brings
hundreds of thousands a second, so this module keeps the same tracker state as arrays
(``TrackerArrays``) and ``track_updates`` takes every update that ``geyser_wire.walk_updates``
found in a chunk: the 32-byte pubkey looked up in the sorted table of the snapshot's
accounts (binary search), owner, size and discriminator checked as the account's ``Layout``
does, the fields the state needs read at the offsets of the layout modules' dtypes, and a
whole pool state written out once the pool's three accounts are in. The rules are
PoolTracker's, to the letter: an update older (by slot) than that account's last is stale; a
pool's updates wait until its pool account and both vaults have been seen; reserve = vault
balance less what the pool account says is owed; a Whirlpool's current range is its
tick-spacing interval (its sqrt prices computed exactly as chain/whirlpool.py's
``sqrt_price_at_tick``); the state's slot is the newest of the three accounts'; the state
carries the pool's fee (v4 swap_fee_numerator / denominator and a Whirlpool's fee_rate / 10^6
from the pool account; a CPMM pool's from the AmmConfig the tracker was seeded with, else
none: the engine keeps the snapshot's).

An update that cannot be what the snapshot says (unknown address, owner, size, discriminator,
a vault of another mint, a vault holding less than it owes, a Whirlpool tick or price out of
range, a fee outside [0, 1)) is counted ``rejected`` and its index returned with a code (``R_*``) and the numbers
behind it, so that Python (``reject_error``) names it with the very ChainError PoolTracker
raises; such updates are rare.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..errors import ChainError
from ..wide import mul64, mul128
from . import raydium_amm_v4 as v4
from . import raydium_cpmm as cpmm
from . import whirlpool as wp
from .account import Account, address_bytes, b58
from .geyser_wire import U_DATA_OFF, U_DATA_SZ, U_OWNER_OFF, U_OWNER_SZ, U_PUBKEY_OFF, U_PUBKEY_SZ, U_SLOT
from .pda import TOKEN_2022_PROGRAM, TOKEN_PROGRAM
from .pool_updates import _AMOUNT_OFF, _MINT_OFF, POOL_LAYOUTS, PROGRAM_OF_NAME, ROLE_POOL, PoolTracker, price_outside
from .token_2022 import ACCOUNT_LAYOUT

# pool kinds (rows of TrackerArrays.owners, too)
K_V4, K_CPMM, K_WP = 0, 1, 2
O_TOKEN, O_TOKEN_2022 = 3, 4
KIND_OF_PROGRAM = {v4.PROGRAM: K_V4, cpmm.PROGRAM: K_CPMM, wp.PROGRAM: K_WP}

# bits of TrackerArrays.have
HAVE_POOL, HAVE_A, HAVE_B = 1, 2, 4
HAVE_ALL = 7

# counters (PoolTracker.counters, same meaning)
C_UPDATES, C_STALE, C_WAITING, C_REJECTED = range(4)

# reject codes; aux columns say what each carries
R_UNKNOWN = 1       # neither a pool nor a vault of the snapshot (or a pubkey that is not 32 bytes)
R_LAYOUT = 2        # owner, size or discriminator does not fit the account's Layout
R_MINT = 3          # a vault holding another mint
R_OWED = 4          # a vault holding less than the pool owes out of it; aux: balance a, b, owed a, b, their carries
R_TICK = 5          # Whirlpool tick_spacing / tick_current_index out of range; aux: spacing, tick
R_PRICE = 6         # Whirlpool sqrt_price outside its current range; aux: spacing, tick, price hi, lo
R_FEE = 7           # a pool account whose fee is not in [0, 1); aux: numerator, denominator
AUX_COLS = 6

# field offsets, from the layouts' dtypes (their one home)
_off = lambda dt, name: dt.fields[name][1]  # noqa: E731
V4_OWED_OFF = (_off(v4.DTYPE, "base_need_take_pnl"), _off(v4.DTYPE, "quote_need_take_pnl"))
_CP = cpmm.POOL_LAYOUT.dtype
CPMM_OWED_OFF = np.array([[_off(_CP, f"{k}_fees_token{i}") for k in ("protocol", "fund", "creator")] for i in (0, 1)],
                         np.int64)
WP_OWED_OFF = (_off(wp.DTYPE, "protocol_fee_owed_a"), _off(wp.DTYPE, "protocol_fee_owed_b"))
WP_LIQ_OFF, WP_PRICE_OFF = _off(wp.DTYPE, "liquidity"), _off(wp.DTYPE, "sqrt_price")
WP_TICK_SPACING_OFF, WP_TICK_OFF = _off(wp.DTYPE, "tick_spacing"), _off(wp.DTYPE, "tick_current_index")
V4_FEE_OFF = (_off(v4.DTYPE, "swap_fee_numerator"), _off(v4.DTYPE, "swap_fee_denominator"))
WP_FEE_OFF, WP_FEE_DEN = _off(wp.DTYPE, "fee_rate"), wp.FEE_RATE_DENOMINATOR
POOL_SIZE = np.array([v4.SIZE, cpmm.POOL_SIZE, wp.SIZE], np.int64)
_DISC_LEN = max(len(L.discriminator) for L in (v4.LAYOUT, cpmm.POOL_LAYOUT, wp.LAYOUT))
POOL_DISC = np.zeros((3, _DISC_LEN), np.uint8)
POOL_DISC_SZ = np.zeros(3, np.int64)
for _k, _L in enumerate((v4.LAYOUT, cpmm.POOL_LAYOUT, wp.LAYOUT)):
    POOL_DISC[_k, :len(_L.discriminator)] = np.frombuffer(_L.discriminator, np.uint8)
    POOL_DISC_SZ[_k] = len(_L.discriminator)
TOKEN_ACCOUNT_SZ = ACCOUNT_LAYOUT.size

# the program's tick maths constants (chain/whirlpool.py), as (hi, lo) u64 words
_M64 = (1 << 64) - 1
POS_Q96 = np.array([[c >> 64, c & _M64] for c in wp.POS_Q96], np.uint64)
NEG_Q64 = np.array(wp.NEG_Q64, np.uint64)
POS_TICK1 = (np.uint64(wp.POS_Q96_TICK1 >> 64), np.uint64(wp.POS_Q96_TICK1 & _M64))
NEG_TICK1 = np.uint64(wp.NEG_Q64_TICK1)
TICK_MIN, TICK_MAX, FULL_RANGE_ONLY = wp.TICK_MIN, wp.TICK_MAX, wp.FULL_RANGE_ONLY_TICK_SPACING
# whirlpool words of a state (engine/market/layout.py WP_*: price, liquidity, lower, upper; each hi, lo)
N_STATE_WP = 8


class TrackerArrays(NamedTuple):
    """PoolTracker's state as arrays (A tracked accounts, P pools)."""
    keys: np.ndarray        # uint64[A, 4] account addresses as big-endian words, sorted
    acct_pool: np.ndarray   # int32[A] pool row
    acct_role: np.ndarray   # int8[A] 0 vault a, 1 vault b, ROLE_POOL the pool account
    acct_slot: np.ndarray   # int64[A] slot of the account's last update (-1: none yet)
    kind: np.ndarray        # int8[P] K_*
    mint: np.ndarray        # uint8[P, 2, 32] mints a, b (what each vault must hold)
    have: np.ndarray        # uint8[P] HAVE_* bits: which of the pool's accounts were seen
    bal: np.ndarray         # uint64[P, 2] vault balances a, b (base units)
    owed: np.ndarray        # uint64[P, 2] what the pool account says is owed out of each vault (low 64 bits)
    owed_hi: np.ndarray     # uint64[P, 2] its carry: a CPMM owes the sum of three u64 fees
    wp: np.ndarray          # uint64[P, 4] Whirlpool sqrt price hi, lo, liquidity hi, lo
    tick: np.ndarray        # int64[P, 2] Whirlpool tick_spacing, tick_current_index
    pool_slot: np.ndarray   # int64[P] newest slot of the pool's accounts
    owners: np.ndarray      # uint8[5, 32] programs: K_V4, K_CPMM, K_WP, O_TOKEN, O_TOKEN_2022
    counters: np.ndarray    # int64[4] C_*
    fee: np.ndarray         # uint64[P, 2] the pool's fee numerator, denominator; (0, 0): not known (CPMM, no config)


class StateRows(NamedTuple):
    """Pool states and rejected updates of one chunk (room for N of each)."""
    pool: np.ndarray        # int32[N]
    slot: np.ndarray        # int64[N]
    res: np.ndarray         # uint64[N, 2] reserves a, b
    wp: np.ndarray          # uint64[N, N_STATE_WP] Whirlpool words; zero for constant-product pools
    is_wp: np.ndarray       # bool[N]
    rj_upd: np.ndarray      # int64[N] row of the chunk's updates that was rejected
    rj_code: np.ndarray     # int32[N] R_*
    rj_aux: np.ndarray      # uint64[N, AUX_COLS]
    fee: np.ndarray         # uint64[N, 2] the state's fee (TrackerArrays.fee)


def new_state_rows(n: int) -> StateRows:
    return StateRows(np.zeros(n, np.int32), np.zeros(n, np.int64), np.zeros((n, 2), np.uint64),
                     np.zeros((n, N_STATE_WP), np.uint64), np.zeros(n, np.bool_), np.zeros(n, np.int64),
                     np.zeros(n, np.int32), np.zeros((n, AUX_COLS), np.uint64), np.zeros((n, 2), np.uint64))


def _words(raw: bytes) -> tuple[int, int, int, int]:
    return tuple(int.from_bytes(raw[8 * j:8 * j + 8], "big") for j in range(4))


def tracker_arrays(tracker: PoolTracker) -> TrackerArrays:
    """The arrays of ``tracker``'s pools, holding what ``tracker`` has taken so far (pool accounts,
    balances, slots), so that a tracker filled before the stream starts carries on here."""
    items = sorted(tracker.role.items(), key=lambda kv: address_bytes(kv[0]))
    A, P = len(items), len(tracker.pools)
    tr = TrackerArrays(
        np.array([_words(address_bytes(a)) for a, _ in items], np.uint64).reshape(A, 4),
        np.array([p for _, (p, _r) in items], np.int32), np.array([r for _, (_p, r) in items], np.int8),
        np.array([tracker._slot.get(a, -1) for a, _ in items], np.int64),
        np.array([KIND_OF_PROGRAM[PROGRAM_OF_NAME[t.program]] for t in tracker.pools], np.int8),
        np.array([[np.frombuffer(m, np.uint8) for m in pair] for pair in tracker._mint_raw], np.uint8).reshape(P, 2, 32),
        np.zeros(P, np.uint8), np.zeros((P, 2), np.uint64), np.zeros((P, 2), np.uint64), np.zeros((P, 2), np.uint64),
        np.zeros((P, 4), np.uint64),
        np.zeros((P, 2), np.int64), np.array(tracker._pool_slot, np.int64),
        np.array([np.frombuffer(address_bytes(o), np.uint8) for o in (v4.PROGRAM, cpmm.PROGRAM, wp.PROGRAM,
                                                                       TOKEN_PROGRAM, TOKEN_2022_PROGRAM)], np.uint8),
        np.zeros(4, np.int64),
        np.array([f if f is not None else (0, 0) for f in tracker._fee], np.uint64).reshape(P, 2))
    for p in range(P):
        if tracker._rec[p] is not None:
            _load_pool(tr, p, np.frombuffer(tracker._rec[p].tobytes(), np.uint8), 0)
        for side in (0, 1):
            if tracker._bal[p][side] is not None:
                tr.bal[p, side] = tracker._bal[p][side]
                tr.have[p] |= HAVE_A << side
    return tr


# --- exact u128 arithmetic of the tick maths -----------------------------------------------------
@njit(cache=True, nogil=True)
def _mul128_shr96(ah, al, bh, bl):
    """((a * b) >> 96) mod 2^128 of two u128, as (hi, lo): one step of the program's positive tick maths."""
    w3, w2, w1, _w0 = mul128(ah, al, bh, bl)
    s32 = np.uint64(32)
    return (w2 >> s32) | (w3 << s32), (w1 >> s32) | (w2 << s32)


@njit(cache=True, nogil=True)
def sqrt_price_at_tick(tick):
    """Q64.64 sqrt price of ``tick`` (in [TICK_MIN, TICK_MAX]) as (hi, lo): chain/whirlpool.py's
    ``sqrt_price_at_tick`` in u64 words, bit for bit."""
    if tick >= 0:
        if tick & 1:
            rh, rl = POS_TICK1
        else:
            rh, rl = np.uint64(1) << np.uint64(32), np.uint64(0)
        for i in range(1, 19):
            if (tick >> i) & 1:
                rh, rl = _mul128_shr96(rh, rl, POS_Q96[i - 1, 0], POS_Q96[i - 1, 1])
        return rh >> np.uint64(32), (rl >> np.uint64(32)) | (rh << np.uint64(32))
    t = -tick
    r = NEG_TICK1 if t & 1 else np.uint64(0)
    big = (t & 1) == 0           # ratio 2^64 itself: one more bit than a u64 holds
    for i in range(1, 19):
        if (t >> i) & 1:
            if big:
                r = NEG_Q64[i - 1]            # 2^64 * c >> 64
                big = False
            else:
                r, _ = mul64(r, NEG_Q64[i - 1])
    if big:
        return np.uint64(1), np.uint64(0)
    return np.uint64(0), r


# --- reading an update -----------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _u64(buf, off):
    v = np.uint64(0)
    for j in range(8):
        v |= np.uint64(buf[off + j]) << np.uint64(8 * j)
    return v


@njit(cache=True, nogil=True)
def _find(keys, buf, off):
    """Row of the 32-byte address at ``buf[off:]`` in the sorted ``keys``; -1 when absent."""
    w0 = np.uint64(0)
    w1 = np.uint64(0)
    w2 = np.uint64(0)
    w3 = np.uint64(0)
    for j in range(8):
        s = np.uint64(56 - 8 * j)
        w0 |= np.uint64(buf[off + j]) << s
        w1 |= np.uint64(buf[off + 8 + j]) << s
        w2 |= np.uint64(buf[off + 16 + j]) << s
        w3 |= np.uint64(buf[off + 24 + j]) << s
    lo, hi = 0, keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        k = keys[mid]
        if k[0] != w0:
            less = k[0] < w0
        elif k[1] != w1:
            less = k[1] < w1
        elif k[2] != w2:
            less = k[2] < w2
        elif k[3] != w3:
            less = k[3] < w3
        else:
            return mid
        if less:
            lo = mid + 1
        else:
            hi = mid
    return -1


@njit(cache=True, nogil=True, inline="always")
def _same(buf, off, ref):
    for j in range(ref.shape[0]):
        if buf[off + j] != ref[j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _fee_of(tr, p, buf, off):
    """(numerator, denominator) of pool ``p``'s fee with its account at ``buf[off:]`` (PoolTracker._pool_fee):
    v4 and Whirlpool read it there; a CPMM pool keeps the one its AmmConfig gave (an AmmConfig never
    comes on the stream, and a pool's amm_config never changes)."""
    k = tr.kind[p]
    if k == K_V4:
        return _u64(buf, off + V4_FEE_OFF[0]), _u64(buf, off + V4_FEE_OFF[1])
    if k == K_WP:
        return np.uint64(buf[off + WP_FEE_OFF]) | (np.uint64(buf[off + WP_FEE_OFF + 1]) * np.uint64(256)), \
            np.uint64(WP_FEE_DEN)
    return tr.fee[p, 0], tr.fee[p, 1]


@njit(cache=True, nogil=True)
def _load_pool(tr, p, buf, off):
    """The fields of pool ``p``'s account (already checked) at ``buf[off:]`` into the arrays."""
    k = tr.kind[p]
    tr.owed_hi[p, 0] = 0
    tr.owed_hi[p, 1] = 0
    if k == K_V4:
        tr.owed[p, 0] = _u64(buf, off + V4_OWED_OFF[0])
        tr.owed[p, 1] = _u64(buf, off + V4_OWED_OFF[1])
    elif k == K_CPMM:
        for side in range(2):
            s = np.uint64(0)
            for j in range(3):
                x = _u64(buf, off + CPMM_OWED_OFF[side, j])
                if s + x < s:
                    tr.owed_hi[p, side] += np.uint64(1)
                s = s + x
            tr.owed[p, side] = s
    else:
        tr.owed[p, 0] = _u64(buf, off + WP_OWED_OFF[0])
        tr.owed[p, 1] = _u64(buf, off + WP_OWED_OFF[1])
        tr.wp[p, 0] = _u64(buf, off + WP_PRICE_OFF + 8)
        tr.wp[p, 1] = _u64(buf, off + WP_PRICE_OFF)
        tr.wp[p, 2] = _u64(buf, off + WP_LIQ_OFF + 8)
        tr.wp[p, 3] = _u64(buf, off + WP_LIQ_OFF)
        tr.tick[p, 0] = np.int64(buf[off + WP_TICK_SPACING_OFF]) | (np.int64(buf[off + WP_TICK_SPACING_OFF + 1]) << 8)
        t = np.int64(buf[off + WP_TICK_OFF]) | (np.int64(buf[off + WP_TICK_OFF + 1]) << 8) \
            | (np.int64(buf[off + WP_TICK_OFF + 2]) << 16) | (np.int64(buf[off + WP_TICK_OFF + 3]) << 24)
        tr.tick[p, 1] = t - (np.int64(1) << 32) if t >= (np.int64(1) << 31) else t
    tr.have[p] |= HAVE_POOL


@njit(cache=True, nogil=True, inline="always")
def _reject(out, r, i, code, a0, a1, a2, a3):
    out.rj_upd[r] = i
    out.rj_code[r] = code
    out.rj_aux[r, 0] = a0
    out.rj_aux[r, 1] = a1
    out.rj_aux[r, 2] = a2
    out.rj_aux[r, 3] = a3
    out.rj_aux[r, 4] = 0
    out.rj_aux[r, 5] = 0
    return r + 1


@njit(cache=True, nogil=True)
def track_updates(tr, buf, upd, n, out):
    """Take updates ``upd[:n]`` (geyser_wire U_* rows into ``buf``) in order; write the pool states
    they complete and the rejected updates into ``out``, which has room for ``n`` of each.
    Returns (states, rejects); the counters are bumped in ``tr.counters``."""
    s = 0
    r = 0
    c = tr.counters
    z = np.uint64(0)
    for i in range(n):
        c[C_UPDATES] += 1
        if upd[i, U_PUBKEY_SZ] != 32:
            c[C_REJECTED] += 1
            r = _reject(out, r, i, R_UNKNOWN, z, z, z, z)
            continue
        a = _find(tr.keys, buf, upd[i, U_PUBKEY_OFF])
        if a < 0:
            c[C_REJECTED] += 1
            r = _reject(out, r, i, R_UNKNOWN, z, z, z, z)
            continue
        slot = upd[i, U_SLOT]
        if slot < tr.acct_slot[a]:
            c[C_STALE] += 1
            continue
        p = tr.acct_pool[a]
        role = tr.acct_role[a]
        k = tr.kind[p]
        d_off, d_sz = upd[i, U_DATA_OFF], upd[i, U_DATA_SZ]
        o_ok = upd[i, U_OWNER_SZ] == 32
        o_off = upd[i, U_OWNER_OFF]
        if role == ROLE_POOL:
            ok = o_ok and _same(buf, o_off, tr.owners[k]) and d_sz == POOL_SIZE[k]
            ok = ok and _same(buf, d_off, POOL_DISC[k, :POOL_DISC_SZ[k]])
            if not ok:
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_LAYOUT, z, z, z, z)
                continue
            fee_n, fee_d = _fee_of(tr, p, buf, d_off)
            if k != K_CPMM and (fee_d == 0 or fee_n >= fee_d):
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_FEE, fee_n, fee_d, z, z)
                continue
            _load_pool(tr, p, buf, d_off)
            tr.fee[p, 0] = fee_n
            tr.fee[p, 1] = fee_d
        else:
            ok = o_ok and (_same(buf, o_off, tr.owners[O_TOKEN]) or _same(buf, o_off, tr.owners[O_TOKEN_2022]))
            if not ok or d_sz < TOKEN_ACCOUNT_SZ:
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_LAYOUT, z, z, z, z)
                continue
            if not _same(buf, d_off + _MINT_OFF, tr.mint[p, role]):
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_MINT, z, z, z, z)
                continue
            tr.bal[p, role] = _u64(buf, d_off + _AMOUNT_OFF)
            tr.have[p] |= HAVE_A << role
        tr.acct_slot[a] = slot
        if slot > tr.pool_slot[p]:
            tr.pool_slot[p] = slot
        if tr.have[p] != HAVE_ALL:
            c[C_WAITING] += 1
            continue
        if tr.owed_hi[p, 0] or tr.owed_hi[p, 1] or tr.bal[p, 0] < tr.owed[p, 0] or tr.bal[p, 1] < tr.owed[p, 1]:
            c[C_REJECTED] += 1
            r = _reject(out, r, i, R_OWED, tr.bal[p, 0], tr.bal[p, 1], tr.owed[p, 0], tr.owed[p, 1])
            out.rj_aux[r - 1, 4] = tr.owed_hi[p, 0]
            out.rj_aux[r - 1, 5] = tr.owed_hi[p, 1]
            continue
        out.pool[s] = p
        out.slot[s] = tr.pool_slot[p]
        out.res[s, 0] = tr.bal[p, 0] - tr.owed[p, 0]
        out.res[s, 1] = tr.bal[p, 1] - tr.owed[p, 1]
        out.is_wp[s] = k == K_WP
        out.fee[s, 0] = tr.fee[p, 0]
        out.fee[s, 1] = tr.fee[p, 1]
        if k == K_WP:
            ts, tick = tr.tick[p, 0], tr.tick[p, 1]
            if ts == 0 or tick < TICK_MIN or tick > TICK_MAX:
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_TICK, np.uint64(ts), np.uint64(tick & 0xFFFFFFFF), z, z)
                continue
            if ts >= FULL_RANGE_ONLY:
                lo_t = -((-TICK_MIN) // ts) * ts
                hi_t = TICK_MAX // ts * ts
            else:
                lo_t = (tick // ts) * ts
                hi_t = min(lo_t + ts, TICK_MAX)
                lo_t = max(lo_t, TICK_MIN)
            lh, ll = sqrt_price_at_tick(lo_t)
            hh, hl = sqrt_price_at_tick(hi_t)
            ph, pl = tr.wp[p, 0], tr.wp[p, 1]
            below = ph < lh or (ph == lh and pl < ll)
            above = ph > hh or (ph == hh and pl > hl)
            if below or above:
                c[C_REJECTED] += 1
                r = _reject(out, r, i, R_PRICE, np.uint64(ts), np.uint64(tick & 0xFFFFFFFF), ph, pl)
                continue
            out.wp[s, 0], out.wp[s, 1], out.wp[s, 2], out.wp[s, 3] = ph, pl, tr.wp[p, 2], tr.wp[p, 3]
            out.wp[s, 4], out.wp[s, 5], out.wp[s, 6], out.wp[s, 7] = lh, ll, hh, hl
        s += 1
    return s, r


# --- naming a rejected update (Python, rare) -------------------------------------------------------
def address_text(raw: bytes) -> str:
    """An address field as base58 (hex when it is not 32 bytes), as the grpc client named it."""
    return b58(np.frombuffer(raw, np.uint8)) if len(raw) == 32 else raw.hex()


def reject_error(tracker: PoolTracker, code: int, aux, address: str, owner: str, data: bytes) -> ChainError:
    """The ChainError PoolTracker.update raises for this update (``code``, ``aux`` from ``track_updates``)."""
    try:
        if code == R_UNKNOWN:
            return ChainError(f"account {address}", "is neither a pool nor a vault of the snapshot")
        p, role = tracker.role[address]
        t = tracker.pools[p]
        program = PROGRAM_OF_NAME[t.program]
        if code == R_LAYOUT:
            (POOL_LAYOUTS[program] if role == ROLE_POOL else ACCOUNT_LAYOUT).check(Account(address, owner, data))
            return ChainError(f"account {address}", "does not fit its layout")      # unreachable when the checks agree
        if code == R_MINT:
            return tracker.wrong_mint(address, data[_MINT_OFF:_MINT_OFF + 32], p, role)
        aux = [int(x) for x in aux]
        if code == R_OWED:
            ba, bb, oa, ob, oa_hi, ob_hi = aux
            oa, ob = oa | oa_hi << 64, ob | ob_hi << 64
            if program == v4.PROGRAM:
                v4.reserves(t.address, {"base_need_take_pnl": oa, "quote_need_take_pnl": ob}, ba, bb)
            elif program == cpmm.PROGRAM:
                rec = {f"{k}_fees_token{i}": 0 for k in ("fund", "creator") for i in (0, 1)}
                cpmm.reserves(t.address, rec | {"protocol_fees_token0": oa, "protocol_fees_token1": ob}, ba, bb)
            else:
                wp.reserves(t.address, {"protocol_fee_owed_a": oa, "protocol_fee_owed_b": ob}, ba, bb)
            return ChainError(f"account {t.address}", "a vault holds less than it owes")   # unreachable when they agree
        if code == R_FEE:
            return ChainError(f"account {t.address}", f"fee {aux[0]}/{aux[1]} is not in [0, 1)")
        tick = aux[1] - (1 << 32) if aux[1] >= 1 << 31 else aux[1]
        lo, hi = wp.current_range(t.address, {"tick_spacing": aux[0], "tick_current_index": tick})
        if code == R_PRICE:
            return price_outside(t.address, aux[2] << 64 | aux[3], lo, hi, tick)
    except ChainError as e:
        return e
    return ChainError(f"account {address}", f"rejected (code {code})")
