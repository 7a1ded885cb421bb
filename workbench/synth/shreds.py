"""A synthetic ShredStream beside the TPU traffic: the leader's data shreds of each slot.

UDP transactions carry no slot on the wire; the engine learns the slots from shreds (its
slot clock feeds ``f_ms_since_slot_start``). With ``shreds=True`` the generator interleaves,
in each slot of ``traffic.fields.SLOT_NS`` (the same slots the recent blockhashes and votes
use: ``SLOT0 + (ts - start_ns) // SLOT_NS``), ``SHREDS_PER_SLOT`` merkle data shreds
spread evenly over the slot, the first at the slot's start. Each shred is one whole entry
batch (DATA_COMPLETE; the slot's last one also SLOT_COMPLETE) of ``TICKS_PER_SLOT /
SHREDS_PER_SLOT`` PoH ticks, so the slot's ticks add up as on mainnet and its last tick's
hash is the slot's blockhash (the generator's hash table).

What is not real, and why: the entries are ticks only. A real ShredStream also carries the
block's transactions, which are the TPU's transactions again; the engine does not match a
shred transaction to the same UDP transaction, so repeating them would apply each swap to
the market twice. PoH is not computed (tick hashes between the blockhashes are derived
from the slot and tick index), and the leader's signature and the merkle proof are
deterministic filler: the engine checks neither (``wire.shred`` documents it).

Layout (``wire/shred.py``): merkle data variant ``TYPE_MERKLE_DATA | PROOF_DEPTH``, 1203
bytes: common header, data header, the entry batch, zero padding, the proof.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from ..wire.entries import ENTRY_SZ_MIN
from ..wire.shred import (DATA_PAYLOAD_OFF, FLAG_DATA_COMPLETE, FLAG_REF_TICK_MASK, FLAG_SLOT_COMPLETE,
                          MERKLE_DATA_SZ, MERKLE_PROOF_ENTRY_SZ, TYPE_MERKLE_DATA)
from .traffic.fields import HASH_BLOCKHASH, SLOT0, SLOT_HISTORY, SLOT_NS

SHREDS_PER_SLOT = 4            # data shreds (one entry batch each) per slot, evenly spaced in time
TICKS_PER_SLOT = 64            # PoH ticks per slot (agave DEFAULT_TICKS_PER_SLOT)
HASHES_PER_TICK = 12_500       # agave DEFAULT_HASHES_PER_TICK (mainnet)
PROOF_DEPTH = 6                # merkle proof entries: a 32+32 FEC set's tree depth
SHRED_VERSION = 50_093         # mainnet-beta's shred version (mid-2025)
SHRED_PORT = 8001              # the validator's TVU port, where Turbine / a ShredStream proxy sends shreds
SHREDSTREAM_IP = 0x0A000007    # 10.0.0.7: the ShredStream proxy the shreds come from
SHREDSTREAM_MAC = 0x0C42A1D4E5F7   # its NIC (Mellanox OUI)
SHREDSTREAM_SPORT = 20_000     # its UDP source port

_TICKS_PER_SHRED = TICKS_PER_SLOT // SHREDS_PER_SLOT
assert _TICKS_PER_SHRED * SHREDS_PER_SLOT == TICKS_PER_SLOT
_CAPACITY = MERKLE_DATA_SZ - DATA_PAYLOAD_OFF - MERKLE_PROOF_ENTRY_SZ * PROOF_DEPTH
assert 8 + _TICKS_PER_SHRED * ENTRY_SZ_MIN <= _CAPACITY


def shred_times(start_ns: int, dur_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, slots and in-slot indexes of every shred in [start_ns, start_ns + dur_ns)."""
    n_slots = -(-dur_ns // SLOT_NS)
    k = np.arange(n_slots * SHREDS_PER_SLOT, dtype=np.int64)
    s, j = k // SHREDS_PER_SLOT, k % SHREDS_PER_SLOT
    ts = start_ns + s * SLOT_NS + j * (SLOT_NS // SHREDS_PER_SLOT)
    keep = ts < start_ns + dur_ns
    return ts[keep], SLOT0 + s[keep], j[keep]


def data_shred(slot: int, j: int, slot_hash: np.ndarray) -> bytes:
    """Shred ``j`` of ``slot`` (its ``_TICKS_PER_SHRED`` ticks), 1203 bytes.

    ``slot_hash`` is the generator's ``[HASH_ROWS, n_slots, 32]`` table indexed from
    ``SLOT0 - SLOT_HISTORY``.
    """
    last = j == SHREDS_PER_SLOT - 1
    batch = bytearray(struct.pack("<Q", _TICKS_PER_SHRED))
    for t in range(_TICKS_PER_SHRED):
        tick = j * _TICKS_PER_SHRED + t
        if last and t == _TICKS_PER_SHRED - 1:
            h = slot_hash[HASH_BLOCKHASH, slot - SLOT0 + SLOT_HISTORY].tobytes()
        else:
            h = hashlib.sha256(struct.pack("<QQ", slot, tick)).digest()
        batch += struct.pack("<Q", HASHES_PER_TICK) + h + struct.pack("<Q", 0)
    ref_tick = min(_TICKS_PER_SHRED * (j + 1), FLAG_REF_TICK_MASK)   # tick height at the batch's end, capped
    flags = FLAG_DATA_COMPLETE | (FLAG_SLOT_COMPLETE if last else 0) | ref_tick
    sig = hashlib.sha512(struct.pack("<QQ", slot, j)).digest()
    # each shred is its own FEC set (fec_set_index = index)
    common = sig + struct.pack("<BQIHI", TYPE_MERKLE_DATA | PROOF_DEPTH, slot, j, SHRED_VERSION, j)
    data_hdr = struct.pack("<HBH", 1, flags, DATA_PAYLOAD_OFF + len(batch))
    body = common + data_hdr + bytes(batch)
    body += bytes(MERKLE_DATA_SZ - MERKLE_PROOF_ENTRY_SZ * PROOF_DEPTH - len(body))
    proof = hashlib.sha256(b"proof" + struct.pack("<QQ", slot, j)).digest()
    body += (proof * 4)[:MERKLE_PROOF_ENTRY_SZ * PROOF_DEPTH]
    assert len(body) == MERKLE_DATA_SZ
    return body
