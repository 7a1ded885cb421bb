"""System program: Transfer, and the Jito tips among transfers.

Layout from agave ``SystemInstruction`` (bincode, little-endian): u32 tag 2 Transfer,
lamports u64; accounts 0 from (signer), 1 to. A transfer to one of the eight Jito tip
accounts (``wire/keys.py`` ``JITO_TIP_ACCOUNTS``) is a tip event. A destination loaded
from a lookup table cannot be told from the packet alone: a transfer event flagged
``F_TIP_DEST_UNRESOLVED``, never guessed to be or not to be a tip.
"""

from __future__ import annotations

from numba import njit

from ...binary import u32le, u64le
from .account_resolution import _acct, _is_tip_key, account_ref
from .events import (ACCT_IN_LUT, EV_BAD_ACCOUNT_COUNT, EV_OUTPUT_FULL, EV_SHORT_DATA, F_ACCT_IN_LUT,
                     F_EXTRA_ACCOUNTS, F_TIP_DEST_UNRESOLVED, F_TRAILING_DATA, IX_SYSTEM_TRANSFER, KIND_TIP,
                     KIND_TRANSFER, _new_event)

SYSTEM_TRANSFER = 2             # u32 tag: SystemInstruction::Transfer
SYSTEM_TRANSFER_DATA_SZ = 12    # bytes: u32 tag + u64 lamports


@njit(cache=True, nogil=True, _nrt=False)
def _decode_system(buf, txn, luts, ins, k, pid, events, e):
    dsz = ins.data_sz
    if dsz < 4:
        return 0
    d = ins.data_off
    if u32le(buf, d) != SYSTEM_TRANSFER:
        return 0
    if dsz < SYSTEM_TRANSFER_DATA_SZ:
        return EV_SHORT_DATA
    if ins.acct_cnt < 2:
        return EV_BAD_ACCOUNT_COUNT
    if e >= events.shape[0]:
        return EV_OUTPUT_FULL
    ev = _new_event(events, e, KIND_TRANSFER, IX_SYSTEM_TRANSFER, k, pid)
    lamports = u64le(buf, d + 4)
    ev.amount_in = lamports
    ev.amount_out = lamports
    if dsz > SYSTEM_TRANSFER_DATA_SZ:
        ev.flags |= F_TRAILING_DATA
    if ins.acct_cnt > 2:
        ev.flags |= F_EXTRA_ACCOUNTS
    src = _acct(buf, txn, luts, ins, 0, ev)
    ev.src_off = src
    ev.authority_off = src
    dst, _, _, _ = account_ref(buf, txn, luts, ins, 1)
    ev.dst_off = dst
    if dst == ACCT_IN_LUT:
        ev.flags |= F_ACCT_IN_LUT | F_TIP_DEST_UNRESOLVED
    elif _is_tip_key(buf, dst):
        ev.kind = KIND_TIP
    return 1
