"""Transaction features: the one documented table, and the jitted code that fills it.

``TX_FEATURES`` below is the table: (name, dtype, meaning with unit and range). The
record dtype ``TX_DTYPE`` is built from it (plus internal columns prefixed ``_``), the
Parquet and ClickHouse columns follow it, and ``feature_docs()`` renders it for the README.
Missing values are documented sentinels (0 or -1), never NaN.

Compute budget (agave ``compute_budget_instruction_details``): tag 2
SetComputeUnitLimit u32, tag 3 SetComputeUnitPrice u64 micro-lamports, tag 1
RequestHeapFrame u32, tag 4 SetLoadedAccountsDataSizeLimit u32; tag 0 is the deprecated
RequestUnits and is counted, not applied. Data longer than the field is accepted (the
runtime reads the prefix; Firedancer's pack ``txn4`` has 9 bytes for a limit).
Priority fee = ceil(price * limit / 1e6) lamports, where the limit is the requested one
or, if unset, 200,000 per non-ComputeBudget instruction capped at 1,400,000.
Jito tip = lamports of System Transfer (tag 2) instructions whose destination is one of
the eight tip accounts; a destination loaded from a lookup table cannot be resolved
from the packet alone and is counted (``tip_dest_unresolved``), never guessed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binary import u32le, u64le
from ..wire.keys import ID_COMPUTE_BUDGET, ID_SYSTEM, PUBKEY_SZ, TIP_ID_END, TIP_ID_FIRST, intern, lookup
from ..wire.programs.system import SYSTEM_TRANSFER, SYSTEM_TRANSFER_DATA_SZ

DEFAULT_CU_PER_INSTRUCTION = 200_000   # CUs granted per instruction when no limit is set
MAX_CU_LIMIT = 1_400_000               # CUs: largest limit a transaction can have
MICRO_LAMPORTS = 1_000_000             # micro-lamports per lamport
CB_SET_CU_LIMIT = 2                    # ComputeBudget instruction tags
CB_SET_CU_PRICE = 3
CB_REQUEST_UNITS_DEPRECATED = 0
PROGRAMS_PER_TX_MAX = 64               # unique programs listed per transaction (more are counted)

#: name, dtype, meaning (unit, range) -- the documented feature table
TX_FEATURES = (
    ("tx_index", np.int64, "index of the transaction row in its run, 0-based (unique per run)"),
    ("packet_index", np.int64, "index of the packet in its capture, 0-based (for shreds: the completing one)"),
    ("ts_ns", np.int64, "event time it was seen: the packet's (for shreds, the completing shred's) "
                        "capture timestamp, ns since the Unix epoch"),
    ("slot", np.int64, "slot of the transaction; -1 unknown (UDP transactions carry none)"),
    ("origin", np.int8, "0: a UDP transaction packet; 1: an entry reassembled from shreds; 2: a backfilled block"),
    ("origin_ts_ns", np.int64, "shreds: event time of the first shred of its entry batch (ns); -1 for UDP"),
    ("entry_index", np.int32, "shreds: entry of its batch, [0, entries); -1 for UDP"),
    ("size", np.int32, "transaction payload, bytes, [1, 1232]"),
    ("version", np.int8, "message version: -1 legacy, 0 v0"),
    ("num_signatures", np.int32, "signatures, [1, 127]"),
    ("num_account_keys", np.int32, "static account keys in the message, [1, 256]"),
    ("num_instructions", np.int32, "top-level instructions, [0, 1232)"),
    ("num_lookup_tables", np.int32, "address table lookups (v0), [0, 127]"),
    ("num_loaded_accounts", np.int32, "accounts loaded through lookup tables, [0, 256)"),
    ("compute_unit_limit", np.int64, "requested CU limit (SetComputeUnitLimit); 0 unset"),
    ("compute_unit_price", np.int64, "micro-lamports per CU (SetComputeUnitPrice); 0 unset"),
    ("priority_fee_lamports", np.int64, "ceil(price * effective limit / 1e6), lamports"),
    ("jito_tip_lamports", np.int64, "System transfers to the 8 Jito tip accounts, lamports"),
    ("program_mask", np.int64, "bit i set: known program id i invoked (wire/keys.py KNOWN_PROGRAMS)"),
    ("num_programs", np.int32, "distinct programs invoked, [0, 64]"),
    ("cb_flags", np.int32, "1: duplicate ComputeBudget tag, 2: deprecated RequestUnits, 4: short data"),
    ("tip_dest_unresolved", np.int32, "System transfers whose destination is in a lookup table"),
)
#: internal columns: offsets into the batch buffer and into the program-id rows
TX_INTERNAL = (
    ("_sig", (np.uint8, 64), "the first signature, copied (rows outlive the packet buffer)"),
    ("_prog_first", np.int32, "first row of this transaction in the program-id rows"),
)
TX_DTYPE = np.dtype([(n, t) if not isinstance(t, tuple) else (n, t[0], t[1]) for n, t, _ in TX_FEATURES + TX_INTERNAL],
                    align=True)
FEATURE_NAMES = tuple(n for n, _, _ in TX_FEATURES)

ORIGIN_UDP = 0
ORIGIN_SHRED = 1
ORIGIN_BLOCK = 2          # a landed transaction of a block backfilled from RPC (LINKTYPE_SOLANA_LANDED)
CB_DUPLICATE = 1
CB_DEPRECATED = 2
CB_SHORT_DATA = 4


def feature_docs() -> str:
    """The feature table as Markdown (README, notebooks)."""
    rows = ["| name | dtype | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{n}` | {np.dtype(t).name} | {m} |" for n, t, m in TX_FEATURES]
    rows += ["| `signature` | fixed_size_binary(64) | the first signature, raw bytes (added when rows become Arrow; "
             "base58 text: engine/tables.py `base58_signatures`, `read_tx_features`) |",
             "| `programs` | list<dictionary<int32, string>> | base58 program ids invoked, unique, first-seen order "
             "(read as strings) |"]
    return "\n".join(rows)


@njit(cache=True, nogil=True, inline="always")
def _fee(price, limit):
    """ceil(price * limit / 1e6) without overflowing int64 for any u64 price."""
    q = price // MICRO_LAMPORTS
    r = price - q * MICRO_LAMPORTS
    return q * limit + (r * limit + MICRO_LAMPORTS - 1) // MICRO_LAMPORTS


@njit(cache=True, nogil=True, _nrt=False)
def fill_features(buf, txn, instrs, keys, key_slots, key_meta, row, prog_ids, p0, prog_tx_counts, ins_pid):
    """Fill feature ``row`` for decoded ``txn``; write its program ids at ``prog_ids[p0:]``
    and the key id of each instruction's program at ``ins_pid[txn.instr_first + k]``.

    Returns the number of program ids written. ``prog_tx_counts[id]`` counts transactions
    per program (once per transaction).
    """
    row.size = txn.payload_sz
    row.version = txn.version
    row.num_signatures = txn.sig_cnt
    row.num_account_keys = txn.acct_cnt
    row.num_instructions = txn.instr_cnt
    row.num_lookup_tables = txn.lut_cnt
    row.num_loaded_accounts = txn.loaded_writable_cnt + txn.loaded_readonly_cnt
    sig = row._sig
    so = np.uint64(txn.sig_off)     # a local (not re-read after each store) and unsigned (no negative-index
    for j in range(64):             # wraparound per byte): the copy compiles to a few wide moves
        sig[j] = buf[so + np.uint64(j)]
    row._prog_first = p0
    cu_limit = np.int64(0)
    cu_price = np.int64(0)
    seen_limit = False
    seen_price = False
    flags = 0
    tip = np.int64(0)
    unresolved = 0
    mask = np.int64(0)
    n_prog = 0
    n_non_cb = 0
    static = np.int64(txn.acct_cnt)
    for k in range(txn.instr_cnt):
        ins = instrs[txn.instr_first + k]
        pid = intern(keys, key_slots, key_meta, buf, txn.acct_off + PUBKEY_SZ * np.int64(ins.program_idx))
        ins_pid[txn.instr_first + k] = pid
        if pid >= 0:
            if pid < 63:
                mask |= np.int64(1) << pid
            new = True
            for j in range(n_prog):
                if prog_ids[p0 + j] == pid:
                    new = False
                    break
            if new and n_prog < PROGRAMS_PER_TX_MAX and p0 + n_prog < prog_ids.shape[0]:
                prog_ids[p0 + n_prog] = pid
                n_prog += 1
                prog_tx_counts[pid] += 1
        d = ins.data_off
        dsz = ins.data_sz
        if pid == ID_COMPUTE_BUDGET:
            if dsz < 1:
                flags |= CB_SHORT_DATA
                continue
            tag = buf[d]
            if tag == CB_SET_CU_LIMIT:
                if dsz < 5:
                    flags |= CB_SHORT_DATA
                else:
                    if seen_limit:
                        flags |= CB_DUPLICATE
                    seen_limit = True
                    cu_limit = u32le(buf, d + 1)
            elif tag == CB_SET_CU_PRICE:
                if dsz < 9:
                    flags |= CB_SHORT_DATA
                else:
                    if seen_price:
                        flags |= CB_DUPLICATE
                    seen_price = True
                    v = u64le(buf, d + 1)
                    cu_price = np.int64(v) if v < np.uint64(1 << 63) else np.int64(np.iinfo(np.int64).max)
            elif tag == CB_REQUEST_UNITS_DEPRECATED:
                flags |= CB_DEPRECATED
            continue
        n_non_cb += 1
        if pid == ID_SYSTEM and dsz >= SYSTEM_TRANSFER_DATA_SZ and ins.acct_cnt >= 2:
            if u32le(buf, d) == SYSTEM_TRANSFER:
                dest = np.int64(buf[ins.acct_off + 1])
                if dest >= static:
                    unresolved += 1
                else:
                    kid = lookup(keys, key_slots, buf, txn.acct_off + PUBKEY_SZ * dest)
                    if kid >= TIP_ID_FIRST and kid < TIP_ID_END:
                        lam = u64le(buf, d + 4)
                        tip += np.int64(lam) if lam < np.uint64(1 << 62) else np.int64(1 << 62)
    row.compute_unit_limit = cu_limit
    row.compute_unit_price = cu_price
    eff = cu_limit if seen_limit else min(DEFAULT_CU_PER_INSTRUCTION * n_non_cb, MAX_CU_LIMIT)
    if eff > MAX_CU_LIMIT:
        eff = MAX_CU_LIMIT
    row.priority_fee_lamports = _fee(cu_price, eff)
    row.jito_tip_lamports = tip
    row.program_mask = mask
    row.num_programs = n_prog
    row.cb_flags = flags
    row.tip_dest_unresolved = unresolved
    return n_prog
