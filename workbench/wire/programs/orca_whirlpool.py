"""Orca Whirlpool (``whirLbMi...``): the swap instructions (an Anchor program).

Layout from orca-so/whirlpools ``programs/whirlpool/src/instructions/swap.rs`` (``struct
Swap``, handler arguments) and ``instructions/v2/swap.rs`` (``struct SwapV2``). Data after
the discriminator (``anchor.py``), little-endian: amount u64, other_amount_threshold u64,
sqrt_price_limit u128 (Q64.64), amount_specified_is_input bool, a_to_b bool (borsh bools:
a byte 0 or 1, anything else is rejected by the program); swap_v2 then carries
Option<RemainingAccountsInfo> (at least its 1-byte tag).

    disc("swap")    f8 c6 9e 91 e1 75 87 c8   42 bytes at least, 11 accounts:
                    0 token program, 1 token authority (signer), 2 whirlpool (the pool),
                    3 owner account a, 4 vault a, 5 owner account b, 6 vault b,
                    7-9 tick arrays 0-2, 10 oracle
    disc("swap_v2") 2b 04 ed 0b 1a c9 1e 62   43 bytes at least, 15 accounts:
                    0 token program a, 1 token program b, 2 memo program,
                    3 token authority (signer), 4 whirlpool, 5 mint a, 6 mint b,
                    7 owner account a, 8 vault a, 9 owner account b, 10 vault b,
                    11-13 tick arrays 0-2, 14 oracle (then remaining accounts)
    amount_specified_is_input: amount is the exact input and other_amount_threshold the
    minimum output; otherwise amount is the exact output and the threshold the maximum input.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...binary import u64le
from ..keys import known_id
from .account_resolution import _acct, _set_pool
from .anchor import ANCHOR_DISC_SZ, check_discriminators, discriminator_from_hex
from .events import (ACCT_NONE, EV_BAD_ACCOUNT_COUNT, EV_BAD_DATA, EV_OUTPUT_FULL, EV_SHORT_DATA,
                     F_EXTRA_ACCOUNTS, F_TRAILING_DATA, IX_WP_SWAP, IX_WP_SWAP_V2, KIND_SWAP, _new_event)

ID_ORCA_WHIRLPOOL = known_id("orca_whirlpool")

WP_SWAP_DATA_SZ = 42            # bytes: disc + u64 + u64 + u128 + bool + bool
WP_SWAP_V2_DATA_SZ = 43         # bytes: the same + the Option tag of remaining_accounts_info
WP_SWAP_ACCTS = 11              # accounts of struct Swap
WP_SWAP_V2_ACCTS = 15           # accounts of struct SwapV2
DISC_WP_SWAP = discriminator_from_hex("f8c69e91e17587c8")
DISC_WP_SWAP_V2 = discriminator_from_hex("2b04ed0b1ac91e62")
ANCHOR_DISCRIMINATORS = {"swap": DISC_WP_SWAP, "swap_v2": DISC_WP_SWAP_V2}
check_discriminators(ANCHOR_DISCRIMINATORS)


@njit(cache=True, nogil=True, _nrt=False)
def _decode_whirlpool(buf, txn, luts, ins, k, pid, events, e):
    dsz = ins.data_sz
    if dsz < ANCHOR_DISC_SZ:
        return 0
    d = ins.data_off
    disc = u64le(buf, d)
    if disc == DISC_WP_SWAP:
        v2 = False
        need_sz = WP_SWAP_DATA_SZ
        need_accts = WP_SWAP_ACCTS
    elif disc == DISC_WP_SWAP_V2:
        v2 = True
        need_sz = WP_SWAP_V2_DATA_SZ
        need_accts = WP_SWAP_V2_ACCTS
    else:
        return 0
    if dsz < need_sz:
        return EV_SHORT_DATA
    na = ins.acct_cnt
    if na < need_accts:
        return EV_BAD_ACCOUNT_COUNT
    is_input = buf[d + 40]
    a_to_b = buf[d + 41]
    if is_input > 1 or a_to_b > 1:
        return EV_BAD_DATA
    if v2 and buf[d + 42] > 1:             # Option tag of remaining_accounts_info
        return EV_BAD_DATA
    if e >= events.shape[0]:
        return EV_OUTPUT_FULL
    ev = _new_event(events, e, KIND_SWAP, IX_WP_SWAP_V2 if v2 else IX_WP_SWAP, k, pid)
    amount = u64le(buf, d + 8)
    threshold = u64le(buf, d + 16)
    ev.sqrt_price_limit_lo = u64le(buf, d + 24)
    ev.sqrt_price_limit_hi = u64le(buf, d + 32)
    ev.exact_in = np.int8(is_input)
    ev.a_to_b = np.int8(a_to_b)
    if is_input == 1:
        ev.amount_in = amount              # exact input; threshold = minimum output
        ev.amount_out = threshold
    else:
        ev.amount_in = threshold           # maximum input; amount = exact output
        ev.amount_out = amount
    if dsz > need_sz and not v2:           # v2's option payload is variable: not "trailing"
        ev.flags |= F_TRAILING_DATA
    if na > need_accts:
        ev.flags |= F_EXTRA_ACCOUNTS
    base = 4 if v2 else 2                      # the whirlpool; v2 puts the two mints after it
    _set_pool(buf, txn, luts, ins, base, ev)
    ev.authority_off = _acct(buf, txn, luts, ins, base - 1, ev)
    if v2:
        mint_a = _acct(buf, txn, luts, ins, 5, ev)
        mint_b = _acct(buf, txn, luts, ins, 6, ev)
        own = 7
    else:
        mint_a = np.int64(ACCT_NONE)
        mint_b = np.int64(ACCT_NONE)
        own = 3
    owner_a = _acct(buf, txn, luts, ins, own, ev)
    vault_a = _acct(buf, txn, luts, ins, own + 1, ev)
    owner_b = _acct(buf, txn, luts, ins, own + 2, ev)
    vault_b = _acct(buf, txn, luts, ins, own + 3, ev)
    ev.vault_a_off = vault_a
    ev.vault_b_off = vault_b
    if a_to_b == 1:
        ev.src_off = owner_a
        ev.dst_off = owner_b
        ev.vault_in_off = vault_a
        ev.vault_out_off = vault_b
        ev.mint_in_off = mint_a
        ev.mint_out_off = mint_b
    else:
        ev.src_off = owner_b
        ev.dst_off = owner_a
        ev.vault_in_off = vault_b
        ev.vault_out_off = vault_a
        ev.mint_in_off = mint_b
        ev.mint_out_off = mint_a
    return 1
