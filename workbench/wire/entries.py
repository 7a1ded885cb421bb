"""Solana entry batches (the bytes data shreds carry), parsed in numba.

An entry batch is the concatenated data of the data shreds from the start of a batch
(index 0 of a slot, or the shred after a DATA_COMPLETE flag) through the next shred
with DATA_COMPLETE. Its bytes are bincode ``Vec<Entry>`` (agave ``entry/src/entry.rs``
``Entry``; Firedancer ``fd_entry_batch_header_t``: hashcnt_delta, hash, txn_cnt), all
integers little-endian:

    entry_cnt      u64
    per entry:
      num_hashes   u64        PoH hashes since the previous entry
      hash         32 bytes   PoH hash after this entry
      txn_cnt      u64        0 for a tick
      txn_cnt transactions in wire format back to back, no length prefix
      (``VersionedTransaction``'s bincode form is its wire form; see wire/txn.py)

Zero bytes may follow the Vec<Entry> (real testnet batches carry such padding, and
agave deserializes batches allowing trailing bytes); any NONZERO byte after the last
entry makes the status ``trailing_bytes``, although every entry was parsed.

Invariants: every read is preceded by an ``n <= end - p`` check; a count is bounded by
the bytes left before it is used as a loop bound (an entry takes >= ENTRY_SZ_MIN bytes, a
transaction >= TXN_SZ_MIN), so a hostile count is a ``bad_entry_count`` status, not a long
loop. Rows hold OFFSETS into the buffer; nothing is copied or allocated.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binary import u64le
from .status import ERR_BAD_ENTRY_COUNT, ERR_OUTPUT_FULL, ERR_TOO_LONG, ERR_TRAILING_BYTES, ERR_TRUNCATED, TXN
from .txn import INSTR_DTYPE, LUT_DTYPE, PACKET_DATA_SIZE, TXN_DTYPE, decode_txn_prefix

COUNT_SZ = 8                   # bytes: a bincode Vec length (u64)
NUM_HASHES_SZ = 8              # bytes: Entry.num_hashes (u64)
ENTRY_HASH_SZ = 32             # bytes: Entry.hash
ENTRY_SZ_MIN = NUM_HASHES_SZ + ENTRY_HASH_SZ + COUNT_SZ   # 48 bytes: an entry with no transactions
TXN_SZ_MIN = 1 + 64 + 3 + 1 + 32 + 32 + 1                 # 134 bytes: 1 signature, 1 key, no instructions
TX_END_NONE = -1               # ``end`` of a transaction row whose decode failed

# One entry of a batch. Offsets index the buffer the batch lives in.
ENTRY_DTYPE = np.dtype([
    ("num_hashes", np.uint64),        # PoH hashes since the previous entry, [0, 2**64)
    ("hash_off", np.int64),           # first byte of the 32-byte entry hash
    ("tx_first", np.int32),           # row of the entry's first transaction in the transaction rows
    ("tx_cnt", np.int32),             # transactions declared, [0, bytes left / 134]
], align=True)

# One transaction of a batch.
ENTRY_TX_DTYPE = np.dtype([
    ("off", np.int64),                # first byte of the transaction (its signature count)
    ("end", np.int64),                # one past its last byte; TX_END_NONE (-1) if it did not decode
    ("entry", np.int32),              # index of its entry within the batch, [0, entry_cnt)
    ("entry_tx_idx", np.int32),       # its index within that entry, [0, tx_cnt)
    ("status", np.int32),             # TXN (0), or the negative code of wire/txn.py that stopped the batch
], align=True)


@njit(cache=True, nogil=True)
def parse_entries(buf, off, end, entries, e0, txs, x0, txn, instrs, luts):
    """Parse the entry batch ``buf[off:end]``.

    Writes entries to ``entries[e0:]`` and transactions to ``txs[x0:]``; ``txn``,
    ``instrs`` and ``luts`` are decode scratch (TXN_DTYPE[1], INSTR_DTYPE[1232],
    LUT_DTYPE[>= 39]). Returns ``(status, n_entries, n_txs, stop)``:

    - ``status``: TXN (0) if the whole Vec<Entry> parsed (zero padding allowed after it);
      ``trailing_bytes`` if nonzero bytes follow it (all rows still valid); else the code
      that stopped the parse (``truncated``, ``bad_entry_count``, ``output_full`` or a
      transaction's status).
    - ``n_entries``: entries parsed completely (rows ``entries[e0:e0+n_entries]``).
    - ``n_txs``: transactions decoded (rows ``txs[x0:x0+n_txs]``, all with status 0). If a
      transaction stopped the parse and there was room, ``txs[x0+n_txs]`` describes it
      (``end`` = -1, its status), and its entry's row is ``entries[e0+n_entries]``.
    - ``stop``: offset where parsing stopped (the end of the Vec<Entry> on success).

    Never reads outside ``buf[off:end]``.
    """
    p = off
    if end - p < COUNT_SZ:
        return ERR_TRUNCATED, 0, 0, p
    cnt_u = u64le(buf, p)
    p += COUNT_SZ
    if cnt_u > np.uint64((end - p) // ENTRY_SZ_MIN):
        return ERR_BAD_ENTRY_COUNT, 0, 0, p
    entry_cnt = np.int64(cnt_u)
    ne = 0
    nx = 0
    e_cap = entries.shape[0]
    x_cap = txs.shape[0]
    for e in range(entry_cnt):
        if end - p < ENTRY_SZ_MIN:
            return ERR_TRUNCATED, ne, nx, p
        if e0 + ne >= e_cap:
            return ERR_OUTPUT_FULL, ne, nx, p
        num_hashes = u64le(buf, p)
        hash_off = p + NUM_HASHES_SZ
        tx_u = u64le(buf, hash_off + ENTRY_HASH_SZ)
        p = hash_off + ENTRY_HASH_SZ + COUNT_SZ
        if tx_u > np.uint64((end - p) // TXN_SZ_MIN):
            return ERR_BAD_ENTRY_COUNT, ne, nx, p
        tx_cnt = np.int64(tx_u)
        er = entries[e0 + ne]
        er.num_hashes = num_hashes
        er.hash_off = hash_off
        er.tx_first = x0 + nx
        er.tx_cnt = tx_cnt
        for k in range(tx_cnt):
            if x0 + nx >= x_cap:
                return ERR_OUTPUT_FULL, ne, nx, p
            xr = txs[x0 + nx]
            xr.off = p
            xr.entry = e
            xr.entry_tx_idx = k
            r = decode_txn_prefix(buf, p, end, txn, 0, instrs, 0, luts, 0)
            if r == ERR_OUTPUT_FULL:
                # the scratch holds 1232 instructions and 39 lookups: a transaction declaring
                # more cannot fit in PACKET_DATA_SIZE bytes
                r = ERR_TOO_LONG
            if r < 0:
                xr.end = TX_END_NONE
                xr.status = r
                return r, ne, nx, p
            xr.end = r
            xr.status = TXN
            p = r
            nx += 1
        ne += 1
    stop = p
    while p < end:
        if buf[p] != 0:
            return ERR_TRAILING_BYTES, ne, nx, stop
        p += 1
    return TXN, ne, nx, stop


def new_entry_scratch():
    """(txn, instrs, luts): decode scratch rows for ``parse_entries``."""
    return (np.zeros(1, TXN_DTYPE), np.zeros(PACKET_DATA_SIZE, INSTR_DTYPE),
            np.zeros(PACKET_DATA_SIZE // 32 + 1, LUT_DTYPE))


def parse_batch(payload: bytes, max_entries: int | None = None, max_txs: int | None = None):
    """Python face for notebooks and tests: (status, stop, entry rows, transaction rows).

    Offsets index ``payload``. Row tables are sized from the payload unless limits are given.
    """
    buf = np.frombuffer(payload, np.uint8)
    n = buf.shape[0]
    entries = np.zeros(max_entries if max_entries is not None else n // ENTRY_SZ_MIN + 1, ENTRY_DTYPE)
    txs = np.zeros(max_txs if max_txs is not None else n // TXN_SZ_MIN + 1, ENTRY_TX_DTYPE)
    txn, instrs, luts = new_entry_scratch()
    st, ne, nx, stop = parse_entries(buf, 0, n, entries, 0, txs, 0, txn, instrs, luts)
    return int(st), int(stop), entries[:ne].copy(), txs[:nx].copy()
