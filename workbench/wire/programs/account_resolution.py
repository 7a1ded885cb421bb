"""Where an instruction's accounts are: static keys of the packet, or lookup-table entries.

Message account indexes run over the static keys, then every lookup's writable indexes
(lookup order), then every lookup's readonly indexes. An account loaded from an address
lookup table has no key in the packet: its offset field holds ``ACCT_IN_LUT`` (-2). For
the pool the event also records which table (``pool_lut_key_off``, the table's address in
the buffer) and which entry (``pool_lut_index``), and ``resolve_lut_account`` looks it up
in the lookup tables of a market snapshot; what the snapshot does not hold stays flagged
``F_POOL_UNRESOLVED`` and is counted, never guessed.

Also here, because it is a test on an account's key: whether a transfer's destination is
one of the Jito tip accounts (``wire/keys.py`` ``JITO_TIP_ACCOUNTS``).
"""

from __future__ import annotations

import base58
import numpy as np
from numba import njit

from ..keys import JITO_TIP_ACCOUNTS, PUBKEY_SZ
from .events import ACCT_IN_LUT, F_ACCT_IN_LUT, F_POOL_IN_LUT, F_POOL_RESOLVED, F_POOL_UNRESOLVED

# the eight Jito tip accounts, raw (a frozen constant in the kernels)
TIP_KEYS = np.array([np.frombuffer(base58.b58decode(a), np.uint8) for a in JITO_TIP_ACCOUNTS], np.uint8)
N_TIP_KEYS = TIP_KEYS.shape[0]


# ============================================================================================
# helpers (inline="always": numba does not inline one jitted function's call into another,
# and these small ones run once per account, where the call costs more than the body)
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def account_ref(buf, txn, luts, ins, j):
    """Where account ``j`` of instruction ``ins`` is: (key_off, lut_key_off, lut_index, msg_idx).

    A static key: (its offset, -1, -1, idx). Loaded from a lookup table: (ACCT_IN_LUT, the
    table address's offset, the index byte's value, idx). ``j`` must be < ``ins.acct_cnt``;
    decode_txn has checked every index against the account total.
    """
    idx = np.int64(buf[ins.acct_off + j])
    static = np.int64(txn.acct_cnt)
    if idx < static:
        return txn.acct_off + PUBKEY_SZ * idx, np.int64(-1), np.int64(-1), idx
    r = idx - static
    loaded_w = np.int64(txn.loaded_writable_cnt)
    readonly = r >= loaded_w
    if readonly:
        r -= loaded_w
    for t in range(txn.lut_cnt):     # one loop for both halves (LLVM made two loops here far slower)
        lr = luts[txn.lut_first + t]
        cnt = np.int64(lr.readonly_cnt) if readonly else np.int64(lr.writable_cnt)
        if r < cnt:
            off = lr.readonly_off if readonly else lr.writable_off
            return np.int64(ACCT_IN_LUT), lr.key_off, np.int64(buf[off + r]), idx
        r -= cnt
    return np.int64(ACCT_IN_LUT), np.int64(-1), np.int64(-1), idx   # unreachable after sanitize


@njit(cache=True, nogil=True, inline="always")
def _acct(buf, txn, luts, ins, j, ev):
    """Offset of account ``j`` (or ACCT_IN_LUT, flagging the event)."""
    off, _, _, _ = account_ref(buf, txn, luts, ins, j)
    if off == ACCT_IN_LUT:
        ev.flags |= F_ACCT_IN_LUT
    return off


@njit(cache=True, nogil=True, inline="always")
def _set_pool(buf, txn, luts, ins, j, ev):
    off, lut_key, lut_idx, idx = account_ref(buf, txn, luts, ins, j)
    ev.pool_off = off
    ev.pool_idx = idx
    if off == ACCT_IN_LUT:
        ev.flags |= F_POOL_IN_LUT
        ev.pool_lut_key_off = lut_key
        ev.pool_lut_index = lut_idx


@njit(cache=True, nogil=True, inline="always")
def _is_tip_key(buf, off):
    for t in range(N_TIP_KEYS):
        same = True
        for j in range(PUBKEY_SZ):
            if TIP_KEYS[t, j] != buf[off + j]:
                same = False
                break
        if same:
            return True
    return False


# ============================================================================================
# lookup tables of a market snapshot
# ============================================================================================
#
# The snapshot's address lookup tables as arrays:
#   tbl_keys   uint8[T, 32]  address of each table
#   tbl_first  int64[T]      its first row in tbl_addrs
#   tbl_cnt    int32[T]      its number of addresses
#   tbl_addrs  uint8[N, 32]  the addresses, table after table
# (A linear scan over T: fine for the few hundred tables of a snapshot; a snapshot that
# grows should index them through the key-interning table instead.)

@njit(cache=True, nogil=True)
def resolve_lut_account(buf, lut_key_off, index, tbl_keys, tbl_first, tbl_cnt):
    """Row in ``tbl_addrs`` of entry ``index`` of the table whose address is at
    ``buf[lut_key_off:+32]``; -1 when the snapshot has no such table, -2 when the table is
    shorter than ``index``."""
    if lut_key_off < 0 or index < 0:
        return -1
    for t in range(tbl_keys.shape[0]):
        same = True
        for j in range(PUBKEY_SZ):
            if tbl_keys[t, j] != buf[lut_key_off + j]:
                same = False
                break
        if same:
            if index >= tbl_cnt[t]:
                return -2
            return tbl_first[t] + index
    return -1


@njit(cache=True, nogil=True)
def resolve_events(buf, events, e0, e1, tbl_keys, tbl_first, tbl_cnt):
    """Resolve the pool of every event in ``[e0, e1)`` flagged F_POOL_IN_LUT through the
    snapshot tables: sets ``pool_lut_row`` and F_POOL_RESOLVED, or F_POOL_UNRESOLVED.
    Returns the number left unresolved."""
    missed = 0
    for e in range(e0, e1):
        ev = events[e]
        if ev.flags & F_POOL_IN_LUT:
            row = resolve_lut_account(buf, ev.pool_lut_key_off, np.int64(ev.pool_lut_index),
                                      tbl_keys, tbl_first, tbl_cnt)
            if row >= 0:
                ev.pool_lut_row = row
                ev.flags |= F_POOL_RESOLVED
            else:
                ev.flags |= F_POOL_UNRESOLVED
                missed += 1
    return missed
