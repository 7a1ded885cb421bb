"""Raydium CPMM (``CPMMoo8L...``): the swap instructions (an Anchor program).

Layout from raydium-io/raydium-cp-swap ``programs/cp-swap/src/lib.rs``
(``swap_base_input(amount_in, minimum_amount_out)``, ``swap_base_output(max_amount_in,
amount_out)``) and ``src/instructions/swap_base_input.rs`` (``struct Swap``). Integers
little-endian; ``disc`` = Anchor discriminator (``anchor.py``).

    disc("swap_base_input")  8f be 5a da c4 1e 33 de   amount_in u64, minimum_amount_out u64
    disc("swap_base_output") 37 d9 62 56 a3 4a b4 ad   max_amount_in u64, amount_out u64
    13 accounts: 0 payer (signer), 1 authority, 2 amm config, 3 pool state (the pool),
                 4 input token account, 5 output token account, 6 input vault,
                 7 output vault, 8 input token program, 9 output token program,
                 10 input mint, 11 output mint, 12 observation state
"""

from __future__ import annotations

from numba import njit

from ...binary import u64le
from ..keys import known_id
from .account_resolution import _acct, _set_pool
from .anchor import ANCHOR_DISC_SZ, check_discriminators, discriminator_from_hex
from .events import (EV_BAD_ACCOUNT_COUNT, EV_OUTPUT_FULL, EV_SHORT_DATA, F_EXTRA_ACCOUNTS, F_TRAILING_DATA,
                     IX_CPMM_SWAP_BASE_INPUT, IX_CPMM_SWAP_BASE_OUTPUT, KIND_SWAP, _new_event)

ID_RAYDIUM_CPMM = known_id("raydium_cpmm")

CPMM_SWAP_DATA_SZ = 24          # bytes: disc + 2 * u64
CPMM_SWAP_ACCTS = 13            # accounts of struct Swap (observation state last)
DISC_CPMM_SWAP_BASE_INPUT = discriminator_from_hex("8fbe5adac41e33de")
DISC_CPMM_SWAP_BASE_OUTPUT = discriminator_from_hex("37d96256a34ab4ad")
ANCHOR_DISCRIMINATORS = {"swap_base_input": DISC_CPMM_SWAP_BASE_INPUT,
                         "swap_base_output": DISC_CPMM_SWAP_BASE_OUTPUT}
check_discriminators(ANCHOR_DISCRIMINATORS)


@njit(cache=True, nogil=True, _nrt=False)
def _decode_raydium_cpmm(buf, txn, luts, ins, k, pid, events, e):
    dsz = ins.data_sz
    if dsz < ANCHOR_DISC_SZ:
        return 0
    d = ins.data_off
    disc = u64le(buf, d)
    if disc == DISC_CPMM_SWAP_BASE_INPUT:
        ix = IX_CPMM_SWAP_BASE_INPUT
    elif disc == DISC_CPMM_SWAP_BASE_OUTPUT:
        ix = IX_CPMM_SWAP_BASE_OUTPUT
    else:
        return 0
    if dsz < CPMM_SWAP_DATA_SZ:
        return EV_SHORT_DATA
    na = ins.acct_cnt
    if na < CPMM_SWAP_ACCTS:
        return EV_BAD_ACCOUNT_COUNT
    if e >= events.shape[0]:
        return EV_OUTPUT_FULL
    ev = _new_event(events, e, KIND_SWAP, ix, k, pid)
    ev.exact_in = 1 if ix == IX_CPMM_SWAP_BASE_INPUT else 0
    ev.amount_in = u64le(buf, d + 8)       # amount_in | max_amount_in
    ev.amount_out = u64le(buf, d + 16)     # minimum_amount_out | amount_out
    if dsz > CPMM_SWAP_DATA_SZ:
        ev.flags |= F_TRAILING_DATA
    if na > CPMM_SWAP_ACCTS:
        ev.flags |= F_EXTRA_ACCOUNTS
    _set_pool(buf, txn, luts, ins, 3, ev)
    ev.authority_off = _acct(buf, txn, luts, ins, 0, ev)
    ev.src_off = _acct(buf, txn, luts, ins, 4, ev)
    ev.dst_off = _acct(buf, txn, luts, ins, 5, ev)
    ev.vault_in_off = _acct(buf, txn, luts, ins, 6, ev)
    ev.vault_out_off = _acct(buf, txn, luts, ins, 7, ev)
    ev.mint_in_off = _acct(buf, txn, luts, ins, 10, ev)
    ev.mint_out_off = _acct(buf, txn, luts, ins, 11, ev)
    return 1
