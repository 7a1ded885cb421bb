"""Solana shreds (Turbine / ShredStream): header decode, in numba.

Layout (agave ``ledger/src/shred.rs``, Firedancer ``fd_shred.h``), little-endian:

    common header, 83 bytes:
      signature      64 bytes       leader's signature (merkle: of the merkle root)
      variant        u8    @64      0x5a legacy code, 0xa5 legacy data; merkle kinds in
                                    the high nibble (0x4 code, 0x6 code chained, 0x7 code
                                    chained resigned, 0x8 data, 0x9 data chained, 0xb data
                                    chained resigned), merkle proof depth in the low nibble
      slot           u64   @65
      index          u32   @73      shred index within the slot
      version        u16   @77      shred version of the cluster
      fec_set_index  u32   @79
    data header, 5 bytes @83:  parent_offset u16, flags u8, size u16 (header + data bytes)
    code header, 6 bytes @83:  num_data_shreds u16, num_coding_shreds u16, position u16

Sizes on the wire: merkle data 1203 bytes, merkle code and legacy code 1228 bytes,
legacy data up to 1228 bytes. A repair response appends a 4-byte nonce.

Where the entry-batch bytes sit (agave ``ledger/src/shred/merkle.rs`` and ``legacy.rs``):

    merkle data:  headers (88) | data [88, size) | zero padding up to 88 + capacity
                  | chained merkle root (32, chained variants) | proof (20 * depth)
                  | retransmitter signature (64, resigned variants)        = 1203 bytes
                  capacity = 1203 - 88 - 32*chained - 20*depth - 64*resigned
    legacy data:  headers (88) | data [88, size) | zero padding; capacity 1051 bytes
                  (1228 - 88 - 89); blockstore copies may be trimmed to ``size`` bytes
    merkle code:  headers (89) | erasure shard | [root 32] | proof | [signature 64] = 1228

``decode_shred`` checks what agave's ``shred_data::sanitize`` / ``shred_code::sanitize``
check on the layout (index < 32768, fec_set_index <= index, flags, parent offset,
``size`` within capacity, code header counts); it does not verify signatures or
merkle proofs. It fills one ``SHRED_DTYPE`` row and returns ``SHRED`` or a negative
code of ``status.py``; it never reads outside ``buf[off:off+sz]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binary import u16le, u32le, u64le
from .status import (ERR_BAD_CODE_HEADER, ERR_BAD_SHRED, ERR_BAD_SHRED_FLAGS, ERR_BAD_SHRED_INDEX, ERR_BAD_SHRED_SIZE,
                     ERR_BAD_SHRED_SLOT, ERR_BAD_SHRED_VARIANT, SHRED)

COMMON_HDR_SZ = 83
DATA_HDR_SZ = 5
CODE_HDR_SZ = 6
DATA_PAYLOAD_OFF = COMMON_HDR_SZ + DATA_HDR_SZ   # 88
MERKLE_DATA_SZ = 1203          # bytes
MERKLE_CODE_SZ = 1228          # bytes
LEGACY_SZ_MAX = 1228           # bytes
REPAIR_NONCE_SZ = 4            # bytes
VARIANT_LEGACY_CODE = 0x5A
VARIANT_LEGACY_DATA = 0xA5
TYPE_MERKLE_CODE = 0x40
TYPE_MERKLE_CODE_CHAINED = 0x60
TYPE_MERKLE_CODE_RESIGNED = 0x70
TYPE_MERKLE_DATA = 0x80
TYPE_MERKLE_DATA_CHAINED = 0x90
TYPE_MERKLE_DATA_RESIGNED = 0xB0
FLAG_DATA_COMPLETE = 0x40      # data header flags: last shred of an entry batch
FLAG_SLOT_COMPLETE = 0x80      # last shred of the slot (implies DATA_COMPLETE)
FLAG_REF_TICK_MASK = 0x3F

MERKLE_PROOF_ENTRY_SZ = 20     # bytes per merkle proof entry; the proof depth is the variant's low nibble
MERKLE_ROOT_SZ = 32            # bytes: chained merkle root of the previous FEC set (chained variants)
RETRANSMITTER_SIG_SZ = 64      # bytes: retransmitter's signature at the end (resigned variants)
LEGACY_DATA_CAPACITY = 1051    # bytes of entry data a legacy data shred holds (1228 - 88 - 89)
DATA_CAPACITY_MAX = MERKLE_DATA_SZ - DATA_PAYLOAD_OFF   # 1115 bytes: most entry data any data shred holds
MAX_SHREDS_PER_SLOT = 32768    # exclusive bound of data and code shred indexes in a slot
CODE_SHREDS_PER_FEC_MAX = 256  # inclusive: num_coding_shreds of a code header (8 * 32)
SLOT_MAX = (1 << 63) - 1       # inclusive: slots above do not fit the engine's int64 columns

KIND_NONE = 0
KIND_DATA = 1
KIND_CODE = 2

# One decoded shred header. Offsets index the buffer the shred lives in.
SHRED_DTYPE = np.dtype([
    ("slot", np.int64),               # slot of the block, [0, 2**63)
    ("data_off", np.int64),           # data shreds: first entry-batch byte (shred start + 88); -1 for code
    ("index", np.int32),              # shred index within the slot, [0, 32768)
    ("fec_set_index", np.int32),      # index of the FEC set's first data shred, [0, 32768)
    ("data_sz", np.int32),            # data shreds: entry-batch bytes, [0, capacity]; 0 for code
    ("shred_sz", np.int32),           # bytes of the shred proper, without a repair nonce, [88, 1228]
    ("capacity", np.int32),           # data shreds: most entry bytes this variant holds; code: shard bytes
    ("version", np.uint16),           # shred version of the cluster
    ("parent_offset", np.uint16),     # data shreds: slot - parent slot, [1, slot] ([0] in slot 0)
    ("size", np.uint16),              # data shreds: header field ``size`` = 88 + data_sz
    ("num_data", np.uint16),          # code shreds: data shreds in the FEC set, [1, 32768)
    ("num_code", np.uint16),          # code shreds: code shreds in the FEC set, [1, 256]
    ("position", np.uint16),          # code shreds: this shred's position among them, [0, num_code)
    ("variant", np.uint8),            # raw variant byte
    ("kind", np.uint8),               # KIND_DATA or KIND_CODE
    ("proof_depth", np.uint8),        # merkle proof entries, [0, 15]; 0 for legacy
    ("chained", np.uint8),            # 1 if a chained merkle root is present
    ("resigned", np.uint8),           # 1 if a retransmitter signature is present
    ("flags", np.uint8),              # data shreds: FLAG_DATA_COMPLETE | FLAG_SLOT_COMPLETE | reference tick
], align=True)


@njit(cache=True, nogil=True)
def shred_kind(buf, off, sz):
    """KIND_DATA / KIND_CODE if ``buf[off:off+sz]`` has a shred's variant and size, else KIND_NONE."""
    if sz < COMMON_HDR_SZ + CODE_HDR_SZ:
        return KIND_NONE
    v = np.int64(buf[off + 64])
    if v == VARIANT_LEGACY_DATA:
        if sz > LEGACY_SZ_MAX + REPAIR_NONCE_SZ:
            return KIND_NONE
        size = u16le(buf, off + 86)
        return KIND_DATA if DATA_PAYLOAD_OFF <= size <= sz else KIND_NONE
    if v == VARIANT_LEGACY_CODE:
        return KIND_CODE if sz == MERKLE_CODE_SZ or sz == MERKLE_CODE_SZ + REPAIR_NONCE_SZ else KIND_NONE
    t = v & 0xF0
    if t == TYPE_MERKLE_DATA or t == TYPE_MERKLE_DATA_CHAINED or t == TYPE_MERKLE_DATA_RESIGNED:
        return KIND_DATA if sz == MERKLE_DATA_SZ or sz == MERKLE_DATA_SZ + REPAIR_NONCE_SZ else KIND_NONE
    if t == TYPE_MERKLE_CODE or t == TYPE_MERKLE_CODE_CHAINED or t == TYPE_MERKLE_CODE_RESIGNED:
        return KIND_CODE if sz == MERKLE_CODE_SZ or sz == MERKLE_CODE_SZ + REPAIR_NONCE_SZ else KIND_NONE
    return KIND_NONE


@njit(cache=True, nogil=True)
def check_shred(buf, off, sz):
    """SHRED if the payload is a shred, else ERR_BAD_SHRED."""
    return SHRED if shred_kind(buf, off, sz) != KIND_NONE else ERR_BAD_SHRED


@njit(cache=True, nogil=True)
def decode_shred(buf, off, sz, hdrs, h):
    """Decode and check the headers of the shred ``buf[off:off+sz]`` into ``hdrs[h]``.

    Returns ``SHRED`` or a negative status (``bad_shred_variant``, ``bad_shred_size``,
    ``bad_shred_index``, ``bad_shred_slot``, ``bad_shred_flags``, ``bad_code_header``).
    ``hdrs[h]`` is complete only on success. For a data shred the entry-batch bytes are
    ``buf[row.data_off : row.data_off + row.data_sz]``.
    """
    if sz < COMMON_HDR_SZ:
        return ERR_BAD_SHRED_SIZE
    v = np.int64(buf[off + 64])
    t = v & 0xF0
    depth = 0
    chained = 0
    resigned = 0
    kind = KIND_NONE
    if v == VARIANT_LEGACY_DATA:
        kind = KIND_DATA
    elif v == VARIANT_LEGACY_CODE:
        kind = KIND_CODE
    elif t == TYPE_MERKLE_DATA or t == TYPE_MERKLE_DATA_CHAINED or t == TYPE_MERKLE_DATA_RESIGNED:
        kind = KIND_DATA
        depth = v & 0x0F
        chained = 1 if t != TYPE_MERKLE_DATA else 0
        resigned = 1 if t == TYPE_MERKLE_DATA_RESIGNED else 0
    elif t == TYPE_MERKLE_CODE or t == TYPE_MERKLE_CODE_CHAINED or t == TYPE_MERKLE_CODE_RESIGNED:
        kind = KIND_CODE
        depth = v & 0x0F
        chained = 1 if t != TYPE_MERKLE_CODE else 0
        resigned = 1 if t == TYPE_MERKLE_CODE_RESIGNED else 0
    else:
        return ERR_BAD_SHRED_VARIANT
    legacy = v == VARIANT_LEGACY_DATA or v == VARIANT_LEGACY_CODE
    tail = chained * MERKLE_ROOT_SZ + depth * MERKLE_PROOF_ENTRY_SZ + resigned * RETRANSMITTER_SIG_SZ
    row = hdrs[h]
    if kind == KIND_DATA:
        if legacy:
            capacity = LEGACY_DATA_CAPACITY
            if sz < DATA_PAYLOAD_OFF or sz > LEGACY_SZ_MAX + REPAIR_NONCE_SZ:
                return ERR_BAD_SHRED_SIZE
        else:
            capacity = MERKLE_DATA_SZ - DATA_PAYLOAD_OFF - tail
            if capacity < 0:
                return ERR_BAD_SHRED_VARIANT
            if sz != MERKLE_DATA_SZ and sz != MERKLE_DATA_SZ + REPAIR_NONCE_SZ:
                return ERR_BAD_SHRED_SIZE
        size = u16le(buf, off + 86)
        if size < DATA_PAYLOAD_OFF or size > DATA_PAYLOAD_OFF + capacity or size > sz:
            return ERR_BAD_SHRED_SIZE
    else:
        capacity = MERKLE_CODE_SZ - COMMON_HDR_SZ - CODE_HDR_SZ - tail
        if capacity < 0:
            return ERR_BAD_SHRED_VARIANT
        if sz != MERKLE_CODE_SZ and sz != MERKLE_CODE_SZ + REPAIR_NONCE_SZ:
            return ERR_BAD_SHRED_SIZE
        size = 0
    slot_u = u64le(buf, off + 65)
    if slot_u > np.uint64(SLOT_MAX):
        return ERR_BAD_SHRED_SLOT
    slot = np.int64(slot_u)
    index = u32le(buf, off + 73)
    fec = u32le(buf, off + 79)
    if index >= MAX_SHREDS_PER_SLOT:
        return ERR_BAD_SHRED_INDEX
    if kind == KIND_DATA:
        if fec > index:
            return ERR_BAD_SHRED_INDEX
        parent = u16le(buf, off + 83)
        flags = np.int64(buf[off + 85])
        if (flags & FLAG_SLOT_COMPLETE) and not (flags & FLAG_DATA_COMPLETE):
            return ERR_BAD_SHRED_FLAGS
        if parent > slot or (parent == 0 and slot != 0):
            return ERR_BAD_SHRED_SLOT
        row.data_off = off + DATA_PAYLOAD_OFF
        row.data_sz = size - DATA_PAYLOAD_OFF
        row.shred_sz = min(sz, LEGACY_SZ_MAX) if legacy else MERKLE_DATA_SZ
        row.parent_offset = parent
        row.flags = flags
        row.size = size
        row.num_data = 0
        row.num_code = 0
        row.position = 0
    else:
        nd = u16le(buf, off + 83)
        nc = u16le(buf, off + 85)
        pos = u16le(buf, off + 87)
        if nd == 0 or nc == 0 or nc > CODE_SHREDS_PER_FEC_MAX or pos >= nc:
            return ERR_BAD_CODE_HEADER
        if fec + nd - 1 >= MAX_SHREDS_PER_SLOT or pos > index or index - pos + nc - 1 >= MAX_SHREDS_PER_SLOT:
            return ERR_BAD_CODE_HEADER
        row.data_off = -1
        row.data_sz = 0
        row.shred_sz = MERKLE_CODE_SZ
        row.parent_offset = 0
        row.flags = 0
        row.size = 0
        row.num_data = nd
        row.num_code = nc
        row.position = pos
    row.slot = slot
    row.index = index
    row.fec_set_index = fec
    row.capacity = capacity
    row.version = u16le(buf, off + 77)
    row.variant = v
    row.kind = kind
    row.proof_depth = depth
    row.chained = chained
    row.resigned = resigned
    return SHRED


def decode_shred_one(shred: bytes):
    """Python face for notebooks and tests: (status, SHRED_DTYPE row or None); offsets index ``shred``."""
    buf = np.frombuffer(shred, np.uint8)
    hdrs = np.zeros(1, SHRED_DTYPE)
    st = decode_shred(buf, 0, buf.shape[0], hdrs, 0)
    return int(st), (hdrs[0] if st == SHRED else None)
