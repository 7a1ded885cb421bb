"""Raydium AMM v4 (``675kPX9M...``): the swap instructions.

Layout from raydium-io/raydium-amm ``program/src/instruction.rs`` (``AmmInstruction::unpack``,
the account lists of ``SwapBaseIn``/``SwapBaseOut``/``SwapBaseInV2``/``SwapBaseOutV2``) and
``program/src/processor.rs`` (``process_swap_base_in``/``_out``: exactly 17 or 18 accounts,
the target-orders account at 4 being optional). Data (little-endian): u8 tag, then two u64;
trailing bytes are ignored by the program.

    tag  9 SwapBaseIn     amount_in u64, minimum_amount_out u64      17 or 18 accounts
    tag 11 SwapBaseOut    max_amount_in u64, amount_out u64          17 or 18 accounts
    tag 16 SwapBaseInV2   amount_in u64, minimum_amount_out u64      8 accounts (no order book)
    tag 17 SwapBaseOutV2  max_amount_in u64, amount_out u64          8 accounts
    18 accounts: 0 token program, 1 AMM (the pool), 2 authority, 3 open orders,
                 4 target orders, 5 coin vault, 6 pc vault, 7 market program, 8 market,
                 9 bids, 10 asks, 11 event queue, 12 market coin vault, 13 market pc vault,
                 14 vault signer, 15 user source, 16 user destination, 17 user owner (signer)
    17 accounts: the same without target orders (coin vault 4, pc vault 5, ... owner 16);
                 the pool is account 1 and source/destination/owner the last three in both.
    V2 (8):      0 token program, 1 AMM, 2 authority, 3 coin vault, 4 pc vault,
                 5 user source, 6 user destination, 7 user owner
"""

from __future__ import annotations

from numba import njit

from ...binary import u64le
from ..keys import known_id
from .account_resolution import _acct, _set_pool
from .events import (EV_BAD_ACCOUNT_COUNT, EV_OUTPUT_FULL, EV_SHORT_DATA, F_EXTRA_ACCOUNTS, F_RAY_NO_TARGET_ORDERS,
                     F_TRAILING_DATA, IX_RAY_SWAP_BASE_IN, IX_RAY_SWAP_BASE_IN_V2, IX_RAY_SWAP_BASE_OUT,
                     IX_RAY_SWAP_BASE_OUT_V2, KIND_SWAP, _new_event)

ID_RAYDIUM_AMM_V4 = known_id("raydium_amm_v4")

RAY_SWAP_BASE_IN = 9            # u8 tag: SwapBaseIn
RAY_SWAP_BASE_OUT = 11          # u8 tag: SwapBaseOut
RAY_SWAP_BASE_IN_V2 = 16        # u8 tag: SwapBaseInV2 (order book disabled, 8 accounts)
RAY_SWAP_BASE_OUT_V2 = 17       # u8 tag: SwapBaseOutV2
RAY_SWAP_DATA_SZ = 17           # bytes: tag + 2 * u64
RAY_ACCTS_WITH_TARGET = 18      # accounts of SwapBaseIn/Out with the (optional) target orders
RAY_ACCTS_NO_TARGET = 17        # accounts without it
RAY_V2_ACCTS = 8                # accounts of the V2 swaps


@njit(cache=True, nogil=True, _nrt=False)
def _decode_raydium_v4(buf, txn, luts, ins, k, pid, events, e):
    dsz = ins.data_sz
    if dsz < 1:
        return 0
    d = ins.data_off
    tag = buf[d]
    if tag == RAY_SWAP_BASE_IN or tag == RAY_SWAP_BASE_OUT:
        v2 = False
    elif tag == RAY_SWAP_BASE_IN_V2 or tag == RAY_SWAP_BASE_OUT_V2:
        v2 = True
    else:
        return 0
    if dsz < RAY_SWAP_DATA_SZ:
        return EV_SHORT_DATA
    na = ins.acct_cnt
    if v2:
        if na < RAY_V2_ACCTS:
            return EV_BAD_ACCOUNT_COUNT
    elif na != RAY_ACCTS_WITH_TARGET and na != RAY_ACCTS_NO_TARGET:
        return EV_BAD_ACCOUNT_COUNT
    if e >= events.shape[0]:
        return EV_OUTPUT_FULL
    exact_in = tag == RAY_SWAP_BASE_IN or tag == RAY_SWAP_BASE_IN_V2
    if tag == RAY_SWAP_BASE_IN:
        ix = IX_RAY_SWAP_BASE_IN
    elif tag == RAY_SWAP_BASE_OUT:
        ix = IX_RAY_SWAP_BASE_OUT
    elif tag == RAY_SWAP_BASE_IN_V2:
        ix = IX_RAY_SWAP_BASE_IN_V2
    else:
        ix = IX_RAY_SWAP_BASE_OUT_V2
    ev = _new_event(events, e, KIND_SWAP, ix, k, pid)
    ev.exact_in = 1 if exact_in else 0
    ev.amount_in = u64le(buf, d + 1)       # amount_in | max_amount_in
    ev.amount_out = u64le(buf, d + 9)      # minimum_amount_out | amount_out
    if dsz > RAY_SWAP_DATA_SZ:
        ev.flags |= F_TRAILING_DATA
    _set_pool(buf, txn, luts, ins, 1, ev)
    if v2:
        coin = 3
        if na > RAY_V2_ACCTS:
            ev.flags |= F_EXTRA_ACCOUNTS
    else:
        coin = 5 if na == RAY_ACCTS_WITH_TARGET else 4
        if coin == 4:
            ev.flags |= F_RAY_NO_TARGET_ORDERS
    user = 5 if v2 else na - 3                 # user source, destination, owner
    ev.vault_a_off = _acct(buf, txn, luts, ins, coin, ev)
    ev.vault_b_off = _acct(buf, txn, luts, ins, coin + 1, ev)
    ev.src_off = _acct(buf, txn, luts, ins, user, ev)
    ev.dst_off = _acct(buf, txn, luts, ins, user + 1, ev)
    ev.authority_off = _acct(buf, txn, luts, ins, user + 2, ev)
    return 1
