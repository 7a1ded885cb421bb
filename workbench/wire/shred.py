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
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..binary import u16le, u32le, u64le
from .status import ERR_BAD_SHRED, SHRED

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

KIND_NONE = 0
KIND_DATA = 1
KIND_CODE = 2


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
def shred_slot(buf, off):
    return np.int64(u64le(buf, off + 65))


@njit(cache=True, nogil=True)
def shred_index(buf, off):
    return u32le(buf, off + 73)


@njit(cache=True, nogil=True)
def check_shred(buf, off, sz):
    """SHRED if the payload is a shred, else ERR_BAD_SHRED."""
    return SHRED if shred_kind(buf, off, sz) != KIND_NONE else ERR_BAD_SHRED
