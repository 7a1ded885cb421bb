"""Solana transactions in wire format (legacy and v0), decoded in numba.

Layout (solana-sdk ``VersionedTransaction`` / Firedancer ``fd_txn.h``), all integers
little-endian, ``short_vec`` = compact-u16 (1-3 bytes, 7 bits each, minimal form only):

    signature_cnt  short_vec                 [1, 127]   must equal num_required_signatures
    signatures     signature_cnt * 64 bytes
    version        u8, only if its top bit is set: 0x80 | version   (absent: legacy)
    header         3 * u8: num_required_signatures, num_readonly_signed, num_readonly_unsigned
    acct_cnt       short_vec; then acct_cnt * 32-byte static account keys
    blockhash      32 bytes
    instr_cnt      short_vec; per instruction:
                       program_id_index u8 (a STATIC key, never 0 = the fee payer)
                       acct_idx_cnt short_vec, acct_idx_cnt * u8 indexes into all keys
                       data_sz short_vec, data_sz bytes
    (v0 only) lut_cnt short_vec; per address table lookup:
                       table key 32 bytes
                       writable_cnt short_vec, writable_cnt * u8
                       readonly_cnt short_vec, readonly_cnt * u8   (not both empty)

Sanitize rules applied (agave ``Message::sanitize`` / ``v0::Message::sanitize`` and the
packet checks of sigverify): payload <= PACKET_DATA_SIZE (1232 bytes); every byte
consumed; signature_cnt == num_required_signatures; num_readonly_signed <
num_required_signatures; num_required_signatures + num_readonly_unsigned <= acct_cnt;
static + loaded accounts <= 256; program_id_index in [1, acct_cnt); every account index
< static + loaded; no empty lookup.

The decoder allocates nothing and copies nothing: rows hold OFFSETS into the buffer.
It returns the end offset (== ``end``) on success or a negative code of ``status.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .keys import PUBKEY_SZ
from .status import (ERR_BAD_HEADER, ERR_BAD_SHORT_VEC, ERR_EMPTY, ERR_EMPTY_LOOKUP, ERR_INDEX_OUT_OF_RANGE,
                     ERR_OUTPUT_FULL, ERR_SIGNATURE_COUNT, ERR_TOO_LONG, ERR_TOO_MANY_ACCOUNTS,
                     ERR_TRAILING_BYTES, ERR_TRUNCATED, ERR_UNSUPPORTED_VERSION)

PACKET_DATA_SIZE = 1232      # bytes: largest transaction payload (IPv6 minimum MTU 1280 - 48 of headers)
SIGNATURE_SZ = 64            # bytes: ed25519 signature
BLOCKHASH_SZ = 32            # bytes: recent blockhash
HEADER_SZ = 3                # bytes: the message header
VERSION_PREFIX = 0x80        # top bit of the first message byte marks a versioned message
ACCT_TOTAL_MAX = 256         # inclusive: static + loaded accounts
VERSION_LEGACY = -1          # ``version`` value of a legacy transaction

# One decoded transaction. Offsets (``*_off``) index the buffer the payload lives in.
TXN_DTYPE = np.dtype([
    ("payload_off", np.int64),        # first byte of the transaction in the buffer
    ("sig_off", np.int64),            # first signature (64 bytes each)
    ("msg_off", np.int64),            # first byte of the message (what the signatures sign)
    ("acct_off", np.int64),           # first static account key (32 bytes each)
    ("blockhash_off", np.int64),      # recent blockhash (32 bytes)
    ("payload_sz", np.int32),         # bytes, [1, 1232]
    ("instr_first", np.int32),        # index of this transaction's first row in the instruction table
    ("lut_first", np.int32),          # index of its first row in the lookup table rows
    ("instr_cnt", np.int16),          # instructions, [0, 1232)
    ("acct_cnt", np.int16),           # static account keys, [1, 256]
    ("loaded_writable_cnt", np.int16),  # accounts loaded writable from lookup tables
    ("loaded_readonly_cnt", np.int16),  # accounts loaded readonly from lookup tables
    ("version", np.int8),             # -1 legacy, 0 v0
    ("sig_cnt", np.uint8),            # signatures, [1, 127]
    ("num_required_signatures", np.uint8),
    ("num_readonly_signed", np.uint8),
    ("num_readonly_unsigned", np.uint8),
    ("lut_cnt", np.uint8),            # address table lookups, [0, 127]
], align=True)

INSTR_DTYPE = np.dtype([
    ("acct_off", np.int64),           # first account index byte (u8 indexes into all keys)
    ("data_off", np.int64),           # first data byte
    ("acct_cnt", np.int32),           # account indexes, [0, 1232)
    ("data_sz", np.int32),            # bytes of instruction data, [0, 1232)
    ("program_idx", np.int32),        # index of the program among the static keys, [1, acct_cnt)
], align=True)

LUT_DTYPE = np.dtype([
    ("key_off", np.int64),            # the lookup table account key (32 bytes)
    ("writable_off", np.int64),       # first writable index byte
    ("readonly_off", np.int64),       # first readonly index byte
    ("writable_cnt", np.int32),
    ("readonly_cnt", np.int32),
], align=True)


@njit(cache=True, nogil=True, inline="always")
def short_vec_len(buf, p, end):
    """Checked compact-u16 read. Returns (value, next_p), or (negative code, p) on error.

    Rejects truncation, non-minimal encodings (a last byte of 0) and values > 0xffff.
    """
    if p >= end:
        return ERR_TRUNCATED, p
    b0 = np.int64(buf[p])
    if b0 < 0x80:
        return b0, p + 1
    if p + 1 >= end:
        return ERR_TRUNCATED, p
    b1 = np.int64(buf[p + 1])
    if b1 < 0x80:
        if b1 == 0:
            return ERR_BAD_SHORT_VEC, p
        return (b0 & 0x7F) | (b1 << 7), p + 2
    if p + 2 >= end:
        return ERR_TRUNCATED, p
    b2 = np.int64(buf[p + 2])
    if b2 == 0 or b2 > 3:
        return ERR_BAD_SHORT_VEC, p
    return (b0 & 0x7F) | ((b1 & 0x7F) << 7) | (b2 << 14), p + 3


@njit(cache=True, nogil=True, _nrt=False)
def decode_txn(buf, off, end, txns, t, instrs, i0, luts, l0):
    """Decode the transaction that is exactly ``buf[off:end]`` (a UDP payload).

    Fills ``txns[t]``, ``instrs[i0:]`` and ``luts[l0:]``. Returns ``end`` on success or a
    negative status. Never reads outside [off, end).
    """
    return _decode(buf, off, end, True, txns, t, instrs, i0, luts, l0)


@njit(cache=True, nogil=True, _nrt=False)
def decode_txn_prefix(buf, off, limit, txns, t, instrs, i0, luts, l0):
    """Decode the transaction that STARTS at ``off`` in ``buf[off:limit]`` (entries hold
    transactions back to back with no length prefix). Returns its end offset or a negative
    status; bytes after the transaction are left for the caller.
    """
    return _decode(buf, off, limit, False, txns, t, instrs, i0, luts, l0)


# compiled once per buffer type and inlined by LLVM into both entry points (forceinline): numba's
# own inline="always" copied and retyped its IR in each, which cost a first run seconds per copy
@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _decode(buf, off, end, exact, txns, t, instrs, i0, luts, l0):
    sz = end - off
    if sz <= 0:
        return ERR_EMPTY if exact else ERR_TRUNCATED
    if exact and sz > PACKET_DATA_SIZE:
        return ERR_TOO_LONG
    p = off
    sig_cnt, p = short_vec_len(buf, p, end)
    if sig_cnt < 0:
        return sig_cnt
    sig_off = p
    if sig_cnt * SIGNATURE_SZ > end - p:
        return ERR_TRUNCATED
    p += sig_cnt * SIGNATURE_SZ
    msg_off = p
    if p >= end:
        return ERR_TRUNCATED
    version = VERSION_LEGACY
    if buf[p] & VERSION_PREFIX:
        version = buf[p] & 0x7F
        if version != 0:
            return ERR_UNSUPPORTED_VERSION
        p += 1
    if end - p < HEADER_SZ:
        return ERR_TRUNCATED
    n_req = np.int64(buf[p])
    n_ro_signed = np.int64(buf[p + 1])
    n_ro_unsigned = np.int64(buf[p + 2])
    p += HEADER_SZ
    acct_cnt, p = short_vec_len(buf, p, end)
    if acct_cnt < 0:
        return acct_cnt
    acct_off = p
    if acct_cnt * PUBKEY_SZ > end - p:
        return ERR_TRUNCATED
    p += acct_cnt * PUBKEY_SZ
    if end - p < BLOCKHASH_SZ:
        return ERR_TRUNCATED
    blockhash_off = p
    p += BLOCKHASH_SZ
    instr_cnt, p = short_vec_len(buf, p, end)
    if instr_cnt < 0:
        return instr_cnt
    if instr_cnt > end - p:               # every instruction takes >= 3 bytes
        return ERR_TRUNCATED
    if i0 + instr_cnt > instrs.shape[0]:
        return ERR_OUTPUT_FULL
    for k in range(instr_cnt):
        if p >= end:
            return ERR_TRUNCATED
        prog = np.int64(buf[p])
        p += 1
        na, p = short_vec_len(buf, p, end)
        if na < 0:
            return na
        if na > end - p:
            return ERR_TRUNCATED
        a_off = p
        p += na
        nd, p = short_vec_len(buf, p, end)
        if nd < 0:
            return nd
        if nd > end - p:
            return ERR_TRUNCATED
        row = instrs[i0 + k]
        row.program_idx = prog
        row.acct_cnt = na
        row.acct_off = a_off
        row.data_sz = nd
        row.data_off = p
        p += nd
    lut_cnt = 0
    loaded_w = 0
    loaded_r = 0
    if version == 0:
        lut_cnt, p = short_vec_len(buf, p, end)
        if lut_cnt < 0:
            return lut_cnt
        if lut_cnt * (PUBKEY_SZ + 2) > end - p:
            return ERR_TRUNCATED
        if l0 + lut_cnt > luts.shape[0]:
            return ERR_OUTPUT_FULL
        for k in range(lut_cnt):
            if end - p < PUBKEY_SZ:
                return ERR_TRUNCATED
            key_off = p
            p += PUBKEY_SZ
            nw, p = short_vec_len(buf, p, end)
            if nw < 0:
                return nw
            if nw > end - p:
                return ERR_TRUNCATED
            w_off = p
            p += nw
            nr, p = short_vec_len(buf, p, end)
            if nr < 0:
                return nr
            if nr > end - p:
                return ERR_TRUNCATED
            r_off = p
            p += nr
            if nw == 0 and nr == 0:
                return ERR_EMPTY_LOOKUP
            lr = luts[l0 + k]
            lr.key_off = key_off
            lr.writable_cnt = nw
            lr.writable_off = w_off
            lr.readonly_cnt = nr
            lr.readonly_off = r_off
            loaded_w += nw
            loaded_r += nr
    if exact:
        if p != end:
            return ERR_TRAILING_BYTES
    else:
        if p - off > PACKET_DATA_SIZE:
            return ERR_TOO_LONG
        end = p
        sz = p - off
    # --- sanitize (after the whole layout is known) ---
    if sig_cnt != n_req:
        return ERR_SIGNATURE_COUNT
    if n_ro_signed >= n_req:
        return ERR_BAD_HEADER
    if n_req + n_ro_unsigned > acct_cnt:
        return ERR_BAD_HEADER
    total = acct_cnt + loaded_w + loaded_r
    if total > ACCT_TOTAL_MAX:
        return ERR_TOO_MANY_ACCOUNTS
    for k in range(instr_cnt):
        row = instrs[i0 + k]
        if row.program_idx == 0 or row.program_idx >= acct_cnt:
            return ERR_INDEX_OUT_OF_RANGE
        a = np.uint64(row.acct_off)           # unsigned: no negative-index wraparound per account byte
        for j in range(row.acct_cnt):
            if buf[a + np.uint64(j)] >= total:
                return ERR_INDEX_OUT_OF_RANGE
    tr = txns[t]
    tr.payload_off = off
    tr.payload_sz = sz
    tr.sig_off = sig_off
    tr.msg_off = msg_off
    tr.acct_off = acct_off
    tr.blockhash_off = blockhash_off
    tr.instr_first = i0
    tr.lut_first = l0
    tr.instr_cnt = instr_cnt
    tr.acct_cnt = acct_cnt
    tr.loaded_writable_cnt = loaded_w
    tr.loaded_readonly_cnt = loaded_r
    tr.version = version
    tr.sig_cnt = sig_cnt
    tr.num_required_signatures = n_req
    tr.num_readonly_signed = n_ro_signed
    tr.num_readonly_unsigned = n_ro_unsigned
    tr.lut_cnt = lut_cnt
    return end


def decode_one(payload: bytes):
    """Python face for notebooks and tests: (status, txn row, instr rows, lut rows).

    ``status`` is 0 on success or the negative code; offsets index ``payload``.
    """
    buf = np.frombuffer(payload, np.uint8)
    txns = np.zeros(1, TXN_DTYPE)
    instrs = np.zeros(max(1, len(payload)), INSTR_DTYPE)
    luts = np.zeros(max(1, len(payload) // 34 + 1), LUT_DTYPE)
    r = decode_txn(buf, 0, buf.shape[0], txns, 0, instrs, 0, luts, 0)
    if r < 0:
        return int(r), None, None, None
    t = txns[0]
    return 0, t, instrs[: t["instr_cnt"]].copy(), luts[: t["lut_cnt"]].copy()
