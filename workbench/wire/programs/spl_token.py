"""SPL Token and Token-2022: Transfer and TransferChecked.

Layout from ``spl-token`` ``TokenInstruction`` (Token-2022 keeps the same tags),
little-endian: u8 tag 3 Transfer, amount u64; accounts 0 source, 1 destination,
2 authority (then multisig signers). u8 tag 12 TransferChecked, amount u64, decimals u8;
accounts 0 source, 1 mint, 2 destination, 3 authority.
"""

from __future__ import annotations

from numba import njit

from ...binary import u64le
from ..keys import known_id
from .account_resolution import _acct
from .events import (EV_BAD_ACCOUNT_COUNT, EV_OUTPUT_FULL, EV_SHORT_DATA, F_EXTRA_ACCOUNTS, F_TRAILING_DATA,
                     IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED, KIND_TRANSFER, _new_event)

ID_SPL_TOKEN = known_id("spl_token")
ID_TOKEN_2022 = known_id("token_2022")

TOKEN_TRANSFER = 3              # u8 tag: TokenInstruction::Transfer
TOKEN_TRANSFER_DATA_SZ = 9      # bytes: tag + u64
TOKEN_TRANSFER_CHECKED = 12     # u8 tag: TokenInstruction::TransferChecked
TOKEN_TRANSFER_CHECKED_DATA_SZ = 10  # bytes: tag + u64 + u8 decimals


@njit(cache=True, nogil=True, _nrt=False)
def _decode_token(buf, txn, luts, ins, k, pid, events, e):
    dsz = ins.data_sz
    if dsz < 1:
        return 0
    d = ins.data_off
    tag = buf[d]
    if tag == TOKEN_TRANSFER:
        need_sz = TOKEN_TRANSFER_DATA_SZ
        need_accts = 3
    elif tag == TOKEN_TRANSFER_CHECKED:
        need_sz = TOKEN_TRANSFER_CHECKED_DATA_SZ
        need_accts = 4
    else:
        return 0
    if dsz < need_sz:
        return EV_SHORT_DATA
    if ins.acct_cnt < need_accts:
        return EV_BAD_ACCOUNT_COUNT
    if e >= events.shape[0]:
        return EV_OUTPUT_FULL
    ev = _new_event(events, e, KIND_TRANSFER,
                    IX_TOKEN_TRANSFER if tag == TOKEN_TRANSFER else IX_TOKEN_TRANSFER_CHECKED, k, pid)
    amount = u64le(buf, d + 1)
    ev.amount_in = amount
    ev.amount_out = amount
    if dsz > need_sz:
        ev.flags |= F_TRAILING_DATA
    if ins.acct_cnt > need_accts:
        ev.flags |= F_EXTRA_ACCOUNTS
    ev.src_off = _acct(buf, txn, luts, ins, 0, ev)
    if tag == TOKEN_TRANSFER:
        ev.dst_off = _acct(buf, txn, luts, ins, 1, ev)
        ev.authority_off = _acct(buf, txn, luts, ins, 2, ev)
    else:
        ev.decimals = buf[d + 9]
        ev.mint_in_off = _acct(buf, txn, luts, ins, 1, ev)
        ev.dst_off = _acct(buf, txn, luts, ins, 2, ev)
        ev.authority_off = _acct(buf, txn, luts, ins, 3, ev)
    return 1
