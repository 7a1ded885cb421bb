"""The event: one normalised row for every decoded swap, transfer and tip.

Every program decoder of this package writes rows of ``EVENT_DTYPE``, one structure of
arrays for every DEX and transfer kind, so detectors read events and never an
instruction layout. Here: the row, its enumerations (``KIND_*`` what happened, ``IX_*``
which instruction said so), its ``F_*`` flags, the ``ACCT_*`` offset sentinels, and the
``EV_*`` reject codes a decoder returns instead of an event.

Rejects are counted in a table of their own (``rejects[-code]``), not as packet
statuses: the packet is fine, one instruction in it contradicts its program's layout.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# --- event kinds, instruction kinds, flags --------------------------------------------------------
KIND_SWAP = 1
KIND_TRANSFER = 2
KIND_TIP = 3                    # a System transfer to a Jito tip account
KIND_NAMES = {KIND_SWAP: "swap", KIND_TRANSFER: "transfer", KIND_TIP: "tip"}

IX_RAY_SWAP_BASE_IN = 1
IX_RAY_SWAP_BASE_OUT = 2
IX_RAY_SWAP_BASE_IN_V2 = 3
IX_RAY_SWAP_BASE_OUT_V2 = 4
IX_CPMM_SWAP_BASE_INPUT = 5
IX_CPMM_SWAP_BASE_OUTPUT = 6
IX_WP_SWAP = 7
IX_WP_SWAP_V2 = 8
IX_SYSTEM_TRANSFER = 9
IX_TOKEN_TRANSFER = 10
IX_TOKEN_TRANSFER_CHECKED = 11
IX_NAMES = {
    IX_RAY_SWAP_BASE_IN: "raydium_amm_v4.swap_base_in", IX_RAY_SWAP_BASE_OUT: "raydium_amm_v4.swap_base_out",
    IX_RAY_SWAP_BASE_IN_V2: "raydium_amm_v4.swap_base_in_v2",
    IX_RAY_SWAP_BASE_OUT_V2: "raydium_amm_v4.swap_base_out_v2",
    IX_CPMM_SWAP_BASE_INPUT: "raydium_cpmm.swap_base_input", IX_CPMM_SWAP_BASE_OUTPUT: "raydium_cpmm.swap_base_output",
    IX_WP_SWAP: "orca_whirlpool.swap", IX_WP_SWAP_V2: "orca_whirlpool.swap_v2",
    IX_SYSTEM_TRANSFER: "system.transfer", IX_TOKEN_TRANSFER: "token.transfer",
    IX_TOKEN_TRANSFER_CHECKED: "token.transfer_checked",
}

F_POOL_IN_LUT = 1               # the pool account is loaded from a lookup table (pool_off == ACCT_IN_LUT)
F_ACCT_IN_LUT = 2               # another account of the event (vault, mint, user account) is in a lookup table
F_TIP_DEST_UNRESOLVED = 4       # System transfer whose destination is in a lookup table: maybe a tip
F_TRAILING_DATA = 8             # instruction data longer than the layout (the program ignores the rest)
F_RAY_NO_TARGET_ORDERS = 16     # Raydium v4 swap with 17 accounts (no target orders)
F_EXTRA_ACCOUNTS = 32           # more accounts than the layout lists (remaining accounts, multisig signers)
F_POOL_UNRESOLVED = 64          # resolve_events: the snapshot has no such table or index
F_POOL_RESOLVED = 128           # resolve_events: pool found in the snapshot (pool_lut_row)

ACCT_NONE = -1                  # offset sentinel: the layout has no such account
ACCT_IN_LUT = -2                # offset sentinel: the account is loaded from a lookup table

# --- event-level reject codes (rejects[-code] counts them) ----------------------------------------
EV_SHORT_DATA = -1              # a listed tag / discriminator, but fewer data bytes than its layout
EV_BAD_ACCOUNT_COUNT = -2       # fewer accounts than the layout (Raydium v4: not 17 or 18)
EV_BAD_DATA = -3                # a field the program would reject (a borsh bool other than 0/1)
EV_OUTPUT_FULL = -4             # the events array has no room (flush and decode the transaction again)
EV_REJECT_NAMES = {EV_SHORT_DATA: "short_data", EV_BAD_ACCOUNT_COUNT: "bad_account_count",
                   EV_BAD_DATA: "bad_data", EV_OUTPUT_FULL: "output_full"}
EV_REJECT_SLOTS = 5             # rejects array length (index -code; slot 0 unused)

EVENTS_PER_INSTR_MAX = 1        # events one instruction can yield (sizing of the events array)

# One event. Offsets (``*_off``) index the buffer the transaction lives in and point at a
# 32-byte key; ACCT_NONE (-1) = the layout has no such account, ACCT_IN_LUT (-2) = loaded
# from a lookup table.
EVENT_DTYPE = np.dtype([
    ("tx_index", np.int64),          # row of the transaction (set by the caller; -1 as decoded)
    ("amount_in", np.uint64),        # base units [0, 2**64): swap exact-in: the amount in; exact-out: the
                                     #   maximum in; transfer/tip: the amount (lamports or token base units)
    ("amount_out", np.uint64),       # base units: swap exact-in: the minimum out; exact-out: the amount out;
                                     #   transfer/tip: the amount (== amount_in)
    ("sqrt_price_limit_lo", np.uint64),  # Whirlpool sqrt_price_limit, Q64.64 u128, low 64 bits; 0 elsewhere
    ("sqrt_price_limit_hi", np.uint64),  # its high 64 bits (0 = no explicit limit when lo is 0 too)
    ("pool_off", np.int64),          # pool account key (Raydium AMM id, CPMM pool state, whirlpool);
                                     #   -1 not a swap, -2 in a lookup table (see pool_lut_*)
    ("pool_lut_key_off", np.int64),  # the lookup table's address (32 bytes) holding the pool; -1 static
    ("vault_a_off", np.int64),       # pool vault in pool order: Raydium coin, Whirlpool a; -1 not given
    ("vault_b_off", np.int64),       # Raydium pc vault, Whirlpool vault b; -1 not given
    ("vault_in_off", np.int64),      # vault receiving the input: CPMM input vault, Whirlpool by a_to_b; -1 unknown
    ("vault_out_off", np.int64),     # vault paying the output; -1 unknown
    ("mint_in_off", np.int64),       # input mint: CPMM, Whirlpool v2; transferChecked: the mint; -1 not given
    ("mint_out_off", np.int64),      # output mint: CPMM, Whirlpool v2; -1 not given
    ("src_off", np.int64),           # user source token account / transfer source (System: from)
    ("dst_off", np.int64),           # user destination token account / transfer destination (System: to)
    ("authority_off", np.int64),     # the signer moving the funds (owner, payer, token authority)
    ("flags", np.int32),             # F_* bits
    ("program_id", np.int32),        # interned key id of the program (wire/keys.py), [0, key capacity)
    ("pool_lut_row", np.int32),      # row of the pool's address in the snapshot tables (resolve_events); -1
    ("instr_index", np.int16),       # index of the instruction in its transaction, [0, instr_cnt)
    ("ix", np.int16),                # IX_* instruction kind
    ("pool_idx", np.int16),          # index of the pool account among the message's accounts, [0, 256); -1 none
    ("pool_lut_index", np.int16),    # index of the pool in its lookup table, [0, 256); -1 static
    ("decimals", np.int16),          # transferChecked decimals [0, 256); -1 otherwise
    ("kind", np.int8),               # KIND_SWAP 1, KIND_TRANSFER 2, KIND_TIP 3
    ("exact_in", np.int8),           # swaps: 1 exact input, 0 exact output; -1 not a swap
    ("a_to_b", np.int8),             # 1 pool token a (Raydium coin, token 0) -> b, 0 b -> a, -1 not told
], align=True)


@njit(cache=True, nogil=True, inline="always")
def _new_event(events, e, kind, ix, k, pid):
    ev = events[e]
    ev.tx_index = -1
    ev.amount_in = 0
    ev.amount_out = 0
    ev.sqrt_price_limit_lo = 0
    ev.sqrt_price_limit_hi = 0
    ev.pool_off = ACCT_NONE
    ev.pool_lut_key_off = -1
    ev.vault_a_off = ACCT_NONE
    ev.vault_b_off = ACCT_NONE
    ev.vault_in_off = ACCT_NONE
    ev.vault_out_off = ACCT_NONE
    ev.mint_in_off = ACCT_NONE
    ev.mint_out_off = ACCT_NONE
    ev.src_off = ACCT_NONE
    ev.dst_off = ACCT_NONE
    ev.authority_off = ACCT_NONE
    ev.flags = 0
    ev.program_id = pid
    ev.pool_lut_row = -1
    ev.instr_index = k
    ev.ix = ix
    ev.pool_idx = -1
    ev.pool_lut_index = -1
    ev.decimals = -1
    ev.kind = kind
    ev.exact_in = -1
    ev.a_to_b = -1
    return ev
