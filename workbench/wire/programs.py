"""Program instruction decoders: swaps, transfers and Jito tips as one table of events.

Every decoder reads one top-level instruction of a decoded transaction (``wire/txn.py``
rows) and writes zero or more rows of ``EVENT_DTYPE`` -- one normalised structure of
arrays for every DEX and transfer kind. Detectors read only these rows, so supporting
one more DEX is one more decoder here and nothing else (see "Adding a decoder").

Layouts (all integers little-endian; ``disc`` = Anchor discriminator, the first 8 bytes
of sha256("global:<name>"); account lists are instruction account positions):

Raydium AMM v4 (``675kPX9M...``), raydium-io/raydium-amm ``program/src/instruction.rs``
(``AmmInstruction::unpack``, the account lists of ``SwapBaseIn``/``SwapBaseOut``/
``SwapBaseInV2``/``SwapBaseOutV2``) and ``program/src/processor.rs``
(``process_swap_base_in``/``_out``: exactly 17 or 18 accounts, the target-orders account
at 4 being optional). Data: u8 tag, then two u64; trailing bytes are ignored by the program.

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

Raydium CPMM (``CPMMoo8L...``), raydium-io/raydium-cp-swap ``programs/cp-swap/src/lib.rs``
(``swap_base_input(amount_in, minimum_amount_out)``, ``swap_base_output(max_amount_in,
amount_out)``) and ``src/instructions/swap_base_input.rs`` (``struct Swap``):

    disc("swap_base_input")  8f be 5a da c4 1e 33 de   amount_in u64, minimum_amount_out u64
    disc("swap_base_output") 37 d9 62 56 a3 4a b4 ad   max_amount_in u64, amount_out u64
    13 accounts: 0 payer (signer), 1 authority, 2 amm config, 3 pool state (the pool),
                 4 input token account, 5 output token account, 6 input vault,
                 7 output vault, 8 input token program, 9 output token program,
                 10 input mint, 11 output mint, 12 observation state

Orca Whirlpool (``whirLbMi...``), orca-so/whirlpools ``programs/whirlpool/src/
instructions/swap.rs`` (``struct Swap``, handler arguments) and ``instructions/v2/swap.rs``
(``struct SwapV2``). Data after the discriminator: amount u64, other_amount_threshold u64,
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

System program (agave ``SystemInstruction``, bincode): u32 tag 2 Transfer, lamports u64;
accounts 0 from (signer), 1 to. A transfer to one of the eight Jito tip accounts
(``wire/keys.py`` ``JITO_TIP_ACCOUNTS``) is a tip event. A destination loaded from a
lookup table cannot be told from the packet alone: a transfer event flagged
``F_TIP_DEST_UNRESOLVED``, never guessed to be or not to be a tip.

SPL Token and Token-2022 (``spl-token`` ``TokenInstruction``): u8 tag 3 Transfer, amount
u64; accounts 0 source, 1 destination, 2 authority (then multisig signers). u8 tag 12
TransferChecked, amount u64, decimals u8; accounts 0 source, 1 mint, 2 destination,
3 authority.

Accounts loaded from address lookup tables. Message account indexes run over the static
keys, then every lookup's writable indexes (lookup order), then every lookup's readonly
indexes. An account loaded from a table has no key in the packet: its offset field holds
``ACCT_IN_LUT`` (-2). For the pool the event also records which table (``pool_lut_key_off``,
the table's address in the buffer) and which entry (``pool_lut_index``), and
``resolve_lut_account`` looks it up in the lookup tables of a market snapshot; what the
snapshot does not hold stays flagged ``F_POOL_UNRESOLVED`` and is counted, never guessed.

Rejects. Decoders never raise. An instruction of a known program whose tag or
discriminator is not one listed here yields no event and no reject. One whose tag is
listed but whose data or accounts contradict the layout yields no event and bumps
``rejects[-code]`` with one of the ``EV_*`` codes below (a table of its own: these are not
packet statuses, the packet is fine).

Adding a decoder (one more DEX): write ``_decode_<dex>(buf, txn, luts, ins, k, pid,
events, e)`` in the style of the ones below (check ``data_sz`` and ``acct_cnt`` before
reading; return events written or an ``EV_*`` code), give its program a fixed id in
``wire/keys.py`` ``KNOWN_PROGRAMS``, add one ``elif pid == ID_<DEX>`` line to
``decode_events`` and one row to ``DECODERS``; tests build its instructions with solders
(``tests/test_programs.py`` fails on a registered decoder without one).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import base58
import numpy as np
from numba import njit

from ..binary import u32le, u64le
from .keys import JITO_TIP_ACCOUNTS, PUBKEY_SZ, known_id, lookup

# --- program ids (fixed ids of wire/keys.py KNOWN_PROGRAMS) --------------------------------------
ID_SYSTEM = known_id("system")
ID_SPL_TOKEN = known_id("spl_token")
ID_TOKEN_2022 = known_id("token_2022")
ID_RAYDIUM_AMM_V4 = known_id("raydium_amm_v4")
ID_RAYDIUM_CPMM = known_id("raydium_cpmm")
ID_ORCA_WHIRLPOOL = known_id("orca_whirlpool")

# --- instruction tags and Anchor discriminators --------------------------------------------------
RAY_SWAP_BASE_IN = 9            # u8 tag: SwapBaseIn
RAY_SWAP_BASE_OUT = 11          # u8 tag: SwapBaseOut
RAY_SWAP_BASE_IN_V2 = 16        # u8 tag: SwapBaseInV2 (order book disabled, 8 accounts)
RAY_SWAP_BASE_OUT_V2 = 17       # u8 tag: SwapBaseOutV2
RAY_SWAP_DATA_SZ = 17           # bytes: tag + 2 * u64
RAY_ACCTS_WITH_TARGET = 18      # accounts of SwapBaseIn/Out with the (optional) target orders
RAY_ACCTS_NO_TARGET = 17        # accounts without it
RAY_V2_ACCTS = 8                # accounts of the V2 swaps
SYSTEM_TRANSFER = 2             # u32 tag: SystemInstruction::Transfer
SYSTEM_TRANSFER_DATA_SZ = 12    # bytes: u32 tag + u64 lamports
TOKEN_TRANSFER = 3              # u8 tag: TokenInstruction::Transfer
TOKEN_TRANSFER_DATA_SZ = 9      # bytes: tag + u64
TOKEN_TRANSFER_CHECKED = 12     # u8 tag: TokenInstruction::TransferChecked
TOKEN_TRANSFER_CHECKED_DATA_SZ = 10  # bytes: tag + u64 + u8 decimals
ANCHOR_DISC_SZ = 8              # bytes of an Anchor discriminator
CPMM_SWAP_DATA_SZ = 24          # bytes: disc + 2 * u64
CPMM_SWAP_ACCTS = 13            # accounts of struct Swap (observation state last)
WP_SWAP_DATA_SZ = 42            # bytes: disc + u64 + u64 + u128 + bool + bool
WP_SWAP_V2_DATA_SZ = 43         # bytes: the same + the Option tag of remaining_accounts_info
WP_SWAP_ACCTS = 11              # accounts of struct Swap
WP_SWAP_V2_ACCTS = 15           # accounts of struct SwapV2

# Anchor discriminators as u64 LE of their 8 bytes, checked at import against
# sha256("global:<name>")[:8] (tests/test_programs.py checks them once more).
DISC_CPMM_SWAP_BASE_INPUT = np.uint64(int.from_bytes(bytes.fromhex("8fbe5adac41e33de"), "little"))
DISC_CPMM_SWAP_BASE_OUTPUT = np.uint64(int.from_bytes(bytes.fromhex("37d96256a34ab4ad"), "little"))
DISC_WP_SWAP = np.uint64(int.from_bytes(bytes.fromhex("f8c69e91e17587c8"), "little"))
DISC_WP_SWAP_V2 = np.uint64(int.from_bytes(bytes.fromhex("2b04ed0b1ac91e62"), "little"))
ANCHOR_NAMES = {              # discriminator constant -> the Anchor instruction name it hashes
    "DISC_CPMM_SWAP_BASE_INPUT": "swap_base_input",
    "DISC_CPMM_SWAP_BASE_OUTPUT": "swap_base_output",
    "DISC_WP_SWAP": "swap",
    "DISC_WP_SWAP_V2": "swap_v2",
}


def anchor_discriminator(name: str) -> np.uint64:
    """The first 8 bytes of sha256("global:<name>") as a little-endian u64."""
    return np.uint64(int.from_bytes(hashlib.sha256(f"global:{name}".encode()).digest()[:8], "little"))


for _const, _name in ANCHOR_NAMES.items():
    assert globals()[_const] == anchor_discriminator(_name), (_const, _name)

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


class Decoder(NamedTuple):
    """One registered decoder (the Python-side table; the jitted dispatch is decode_events)."""
    program: str        # name in wire/keys.py KNOWN_PROGRAMS
    ix: tuple           # IX_* kinds it emits
    source: str         # where its layout was read


DECODERS = (
    Decoder("raydium_amm_v4", (IX_RAY_SWAP_BASE_IN, IX_RAY_SWAP_BASE_OUT, IX_RAY_SWAP_BASE_IN_V2,
                               IX_RAY_SWAP_BASE_OUT_V2),
            "raydium-io/raydium-amm program/src/instruction.rs, program/src/processor.rs"),
    Decoder("raydium_cpmm", (IX_CPMM_SWAP_BASE_INPUT, IX_CPMM_SWAP_BASE_OUTPUT),
            "raydium-io/raydium-cp-swap programs/cp-swap/src/lib.rs, src/instructions/swap_base_input.rs"),
    Decoder("orca_whirlpool", (IX_WP_SWAP, IX_WP_SWAP_V2),
            "orca-so/whirlpools programs/whirlpool/src/instructions/swap.rs, instructions/v2/swap.rs"),
    Decoder("system", (IX_SYSTEM_TRANSFER,), "agave SystemInstruction::Transfer (bincode u32 tag 2)"),
    Decoder("spl_token", (IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED), "spl-token TokenInstruction (tags 3, 12)"),
    Decoder("token_2022", (IX_TOKEN_TRANSFER, IX_TOKEN_TRANSFER_CHECKED), "spl-token-2022 (same tags)"),
)

# the eight Jito tip accounts, raw (a frozen constant in the kernels)
TIP_KEYS = np.array([np.frombuffer(base58.b58decode(a), np.uint8) for a in JITO_TIP_ACCOUNTS], np.uint8)
N_TIP_KEYS = TIP_KEYS.shape[0]


# ============================================================================================
# helpers (inline="always": numba does not inline one jitted function's call into another,
# and these small ones, called per account, cost 4x as calls -- measured on txn5)
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
    for t in range(txn.lut_cnt):     # one loop for both halves (two loops here cost 20x in LLVM)
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
# decoders: each returns the number of events written at events[e] (0 or 1) or an EV_* code
# ============================================================================================

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


# ============================================================================================
# the registry: one dispatch over the program id of every instruction
# ============================================================================================

@njit(cache=True, nogil=True, inline="always")
def _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, swaps_only):
    """The registry's dispatch over every top-level instruction (``swaps_only``: DEX programs)."""
    e = e0
    for k in range(txn.instr_cnt):
        pid = program_ids[txn.instr_first + k]
        ins = instrs[txn.instr_first + k]
        if pid == ID_RAYDIUM_AMM_V4:
            r = _decode_raydium_v4(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_RAYDIUM_CPMM:
            r = _decode_raydium_cpmm(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_ORCA_WHIRLPOOL:
            r = _decode_whirlpool(buf, txn, luts, ins, k, pid, events, e)
        elif swaps_only:
            r = 0
        elif pid == ID_SYSTEM:
            r = _decode_system(buf, txn, luts, ins, k, pid, events, e)
        elif pid == ID_SPL_TOKEN or pid == ID_TOKEN_2022:
            r = _decode_token(buf, txn, luts, ins, k, pid, events, e)
        else:
            r = 0
        if r == EV_OUTPUT_FULL:
            rejects[-EV_OUTPUT_FULL] += 1
            return EV_OUTPUT_FULL
        if r < 0:
            rejects[-r] += 1
        else:
            e += r
    return e - e0


@njit(cache=True, nogil=True, _nrt=False)
def decode_events(buf, txn, instrs, luts, program_ids, events, e0, rejects):
    """Decode every top-level instruction of ``txn`` into ``events[e0:]``.

    ``instrs`` / ``luts`` are the rows decode_txn filled (``txn.instr_first`` /
    ``txn.lut_first`` index them); ``program_ids[txn.instr_first + k]`` is the interned key
    id of instruction k's program (``program_ids_of`` fills it), -1 unknown.
    ``rejects`` (int64[EV_REJECT_SLOTS]) counts rejected instructions at ``-code``.
    Returns the number of events written, or EV_OUTPUT_FULL when ``events`` had no room
    for all of them (rows from ``e0`` may be partly written: flush, then call again).
    Events come in instruction order (capture order within the transaction).
    """
    return _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, False)


@njit(cache=True, nogil=True, _nrt=False)
def decode_swaps(buf, txn, instrs, luts, program_ids, events, e0, rejects):
    """``decode_events`` for the DEX programs only (what pool tracking needs): transfers and
    tips are skipped without being decoded. Same returns."""
    return _decode_all(buf, txn, instrs, luts, program_ids, events, e0, rejects, True)


@njit(cache=True, nogil=True)
def program_ids_of(buf, txn, instrs, keys, key_slots, program_ids):
    """Fill ``program_ids[txn.instr_first + k]`` with the key id of each instruction's
    program (``lookup`` in the interning table: -1 when never interned)."""
    for k in range(txn.instr_cnt):
        ins = instrs[txn.instr_first + k]
        program_ids[txn.instr_first + k] = lookup(keys, key_slots, buf,
                                                  txn.acct_off + PUBKEY_SZ * np.int64(ins.program_idx))


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


# ============================================================================================
# Python face
# ============================================================================================

def events_of(payload: bytes):
    """Notebooks and tests: decode one transaction and its events.

    Returns (status, events, rejects): ``status`` 0 or the negative packet status of
    wire/status.py, ``events`` an EVENT_DTYPE array (offsets index ``payload``),
    ``rejects`` {name: count} of EV_* rejects.
    """
    from .txn import INSTR_DTYPE, LUT_DTYPE, TXN_DTYPE, decode_txn
    buf = np.frombuffer(payload, np.uint8)
    txns = np.zeros(1, TXN_DTYPE)
    instrs = np.zeros(max(1, len(payload)), INSTR_DTYPE)
    luts = np.zeros(max(1, len(payload) // 34 + 1), LUT_DTYPE)
    r = decode_txn(buf, 0, buf.shape[0], txns, 0, instrs, 0, luts, 0)
    if r < 0:
        return int(r), np.zeros(0, EVENT_DTYPE), {}
    keys, slots, _ = _known_keys()
    t = txns[0]
    pids = np.full(instrs.shape[0], -1, np.int32)
    program_ids_of(buf, t, instrs, keys, slots, pids)
    events = np.zeros(max(1, int(t["instr_cnt"]) * EVENTS_PER_INSTR_MAX), EVENT_DTYPE)
    rejects = np.zeros(EV_REJECT_SLOTS, np.int64)
    n = decode_events(buf, t, instrs, luts, pids, events, 0, rejects)
    rej = {EV_REJECT_NAMES[-i]: int(c) for i, c in enumerate(rejects) if i and c}
    return 0, events[:max(0, n)].copy(), rej


_KNOWN_KEYS = None


def _known_keys():
    """A key table holding only the preregistered keys (so program ids are the fixed ones)."""
    global _KNOWN_KEYS
    if _KNOWN_KEYS is None:
        from .keys import N_PREREGISTERED, new_key_table
        cap = 1
        while cap < N_PREREGISTERED:
            cap *= 2
        _KNOWN_KEYS = new_key_table(cap)
    return _KNOWN_KEYS
