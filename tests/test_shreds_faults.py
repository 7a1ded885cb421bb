"""Damaged and hostile input to the shred path, from the REAL fixtures (tests/fixtures): every
truncation and seeded bit flips of real shreds (header decode == the plain-Python twin,
reassembly never crashes), truncated and bit-flipped entry batches and hostile counts (always
a status, never a crash or a loop), and the memory limits (eviction, drops, stale queue rows,
a full queue). ``make test`` runs with NUMBA_BOUNDSCHECK=1; buffers are sliced to exactly their end.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from shred_helpers import (SEED, batch_bytes, check_batch_rows_like_solders, deshred, drain_all, kernel_decode_shred,
                           one_per_variant, pack, read_testnet, ready_bytes, real_shreds, ref_decode_shred,
                           sig_fec_payloads)
from workbench.engine.deshred import (COUNTER_NAMES, READY_DTYPE, add_data_shred, add_shreds, counters_dict,
                                      drain_ready, logged_batches, new_deshred_state)
from workbench.wire.entries import ENTRY_DTYPE, ENTRY_TX_DTYPE, new_entry_scratch, parse_entries
from workbench.wire.shred import SHRED_DTYPE, decode_shred
from workbench.wire.status import STATUS_NAMES, counts_by_name, status_name
from workbench.wire.txn import decode_one


# --- (e) truncations and bit flips ------------------------------------------------------------------

def test_every_truncation_of_real_shreds(fixtures):
    """A truncated shred is a status (the twin's), never a crash; deshred state survives all of them."""
    samples = one_per_variant(real_shreds(fixtures))
    ds = new_deshred_state(n_slots=2, shreds_per_slot=64)
    hdrs = np.zeros(1, SHRED_DTYPE)
    for s in samples:
        for k in range(len(s)):
            b = np.frombuffer(s[:k], np.uint8)         # exactly k bytes: a read past k is out of bounds
            st = decode_shred(b, 0, k, hdrs, 0)
            assert status_name(st) == ref_decode_shred(s[:k])[0], (hex(s[64]), k)
            assert st < 0
            assert status_name(add_data_shred(ds, b, 0, k, 0, k)) in STATUS_NAMES.values()


def test_bit_flips_of_real_shreds(fixtures):
    """Seeded single-bit flips, mostly in the headers: kernel == twin, and reassembly never crashes."""
    shreds = real_shreds(fixtures)
    rng = random.Random(SEED)
    ds = new_deshred_state(n_slots=3, shreds_per_slot=1024, queue_rows=1 << 12)
    ready = np.zeros(256, READY_DTYPE)
    outcomes = set()
    for t in range(400):
        s = bytearray(shreds[rng.randrange(len(shreds))])
        pos = rng.randrange(89) if t % 4 else rng.randrange(len(s))
        s[pos] ^= 1 << rng.randrange(8)
        s = bytes(s)
        k = kernel_decode_shred(s)
        assert k == ref_decode_shred(s), (t, pos)
        outcomes.add(k[0])
        b = np.frombuffer(s, np.uint8)
        assert status_name(add_data_shred(ds, b, 0, len(s), t, t)) in STATUS_NAMES.values()
        n, _ = drain_ready(ds, ready, 0, 256)
        for r in ready[:n]:
            assert 0 <= r["off"] < r["end"] <= ds.slab.shape[0]
    assert "shred" in outcomes and len(outcomes) >= 5, outcomes


def test_bit_flipped_shred_streams_reassemble_without_crashing(fixtures):
    """Whole slots with flipped payload bits: batches fail to parse with a status, counters add up."""
    rng = random.Random(SEED + 1)
    pays = sig_fec_payloads(fixtures)
    for trial in range(12):
        mutated = []
        for s in pays:
            s = bytearray(s)
            if rng.random() < 0.3:
                pos = rng.randrange(88, len(s))
                s[pos] ^= 1 << rng.randrange(8)
            mutated.append(bytes(s))
        ds, status = deshred(mutated)
        c = counters_dict(ds)
        assert c["batches"] <= 1 and c["parse_failures"] <= c["batches"]
        assert sum(ds.parse_status) == c["parse_failures"]
        assert set(counts_by_name(ds.parse_status)) <= set(STATUS_NAMES.values())
        rows = drain_all(ds)
        assert len(rows) == c["transactions"]
        for raw in ready_bytes(ds, rows):
            assert decode_one(raw)[0] == 0


def _parse_exact(raw: bytes, max_entries=None, max_txs=None):
    """parse_entries on a buffer that ends exactly at the batch's end."""
    buf = np.frombuffer(raw, np.uint8)
    n = len(raw)
    entries = np.zeros(max_entries if max_entries is not None else n // 48 + 1, ENTRY_DTYPE)
    txs = np.zeros(max_txs if max_txs is not None else n // 134 + 1, ENTRY_TX_DTYPE)
    st, ne, nx, stop = parse_entries(buf, 0, n, entries, 0, txs, 0, *new_entry_scratch())
    assert status_name(st) in STATUS_NAMES.values()
    assert 0 <= stop <= n and 0 <= ne <= len(entries) and 0 <= nx <= len(txs)
    for x in txs[:nx]:
        assert x["status"] == 0 and 0 <= x["off"] < x["end"] <= n
    for e in entries[:ne]:
        assert 8 <= e["hash_off"] and e["hash_off"] + 32 <= n and 0 <= e["tx_first"] <= nx
    return int(st), int(ne), int(nx), int(stop), entries[:ne], txs[:nx]


def test_every_truncation_of_an_entry_batch(fixtures):
    ds, _ = deshred(sig_fec_payloads(fixtures))
    (b,) = logged_batches(ds)
    raw = batch_bytes(ds, b)
    full = _parse_exact(raw)
    assert full[:4] == (0, 65, 74, len(raw))
    names = set()
    for k in range(len(raw)):
        st, ne, nx, _stop, _e, txs = _parse_exact(raw[:k])
        assert st < 0, k
        assert ne <= 65 and nx <= 74
        assert [(int(x["off"]), int(x["end"])) for x in txs] == [(int(x["off"]), int(x["end"])) for x in full[5][:nx]]
        names.add(status_name(st))
    assert {"truncated", "bad_entry_count"} <= names


def test_bit_flips_of_an_entry_batch(fixtures):
    ds, _ = deshred(sig_fec_payloads(fixtures))
    (b,) = logged_batches(ds)
    raw = batch_bytes(ds, b)
    rng = random.Random(SEED + 2)
    names = set()
    for _ in range(300):
        m = bytearray(raw)
        for _ in range(rng.choice((1, 1, 2, 4))):
            m[rng.randrange(len(m))] ^= 1 << rng.randrange(8)
        st, ne, nx, stop, entries, txs = _parse_exact(bytes(m))
        names.add(status_name(st))
        if st == 0:
            check_batch_rows_like_solders(bytes(m), entries, txs)
    assert "transaction" in names and len(names) >= 3, names


def test_hostile_counts_are_statuses_not_loops():
    huge = struct.pack("<Q", (1 << 64) - 1)
    assert status_name(_parse_exact(huge + bytes(100))[0]) == "bad_entry_count"
    entry = struct.pack("<Q", 1) + bytes(32)                                 # num_hashes 1, hash 0
    assert status_name(_parse_exact(struct.pack("<Q", 1) + entry + huge + bytes(500))[0]) == "bad_entry_count"
    tick = entry + struct.pack("<Q", 0)
    st, ne, nx, stop, _, _ = _parse_exact(struct.pack("<Q", 2) + tick * 2 + bytes(7))
    assert (status_name(st), ne, nx, stop) == ("transaction", 2, 0, 8 + 2 * 48)   # zero padding allowed
    st, ne, _, stop, _, _ = _parse_exact(struct.pack("<Q", 2) + tick * 2 + b"\x00\x01")
    assert (status_name(st), ne, stop) == ("trailing_bytes", 2, 8 + 2 * 48)
    assert status_name(_parse_exact(b"")[0]) == "truncated"
    assert status_name(_parse_exact(struct.pack("<Q", 2) + tick * 2, max_entries=1)[0]) == "output_full"


# --- memory limits: eviction, drops, stale queue rows --------------------------------------------

def test_eviction_drop_and_stale_rows(fixtures):
    sig = sig_fec_payloads(fixtures)                       # slot 410010000, one batch of 74 txs
    low = read_testnet(fixtures, 356797362)            # slot 356797362 (lower)
    ds = new_deshred_state(n_slots=1, shreds_per_slot=1024)
    buf, off, sz = pack(low[:64])                          # the first batch of the low slot: 151 txs queued
    st = np.zeros(64, np.int16)
    add_shreds(ds, buf, off, sz, np.zeros(64, np.int64), 0, st)
    assert counters_dict(ds)["transactions"] == 151
    buf, off, sz = pack(sig)                               # a higher slot takes the only row
    st = np.zeros(len(sig), np.int16)
    add_shreds(ds, buf, off, sz, np.zeros(len(sig), np.int64), 0, st)
    c = counters_dict(ds)
    assert c["slots_evicted"] == 1 and c["batches"] == 2
    rows = drain_all(ds)                                   # the low slot's 151 rows are stale now
    assert len(rows) == 74 and counters_dict(ds)["tx_stale"] == 151
    b = np.frombuffer(low[64], np.uint8)                   # lower than every held slot, table full: dropped
    assert status_name(add_data_shred(ds, b, 0, b.shape[0], 0, 0)) == "shred_dropped"
    assert counters_dict(ds)["dropped"] == 1


def test_index_past_capacity_is_dropped(fixtures):
    ds, status = deshred(sig_fec_payloads(fixtures), shreds_per_slot=16)
    names = [status_name(s) for s in status]
    assert names.count("shred_dropped") == 16 and counters_dict(ds)["dropped"] == 16
    assert counters_dict(ds)["batches"] == 0


def test_queue_full_is_counted(fixtures):
    ds, _ = deshred(sig_fec_payloads(fixtures), queue_rows=50)
    c = counters_dict(ds)
    assert (c["transactions"], c["tx_queue_full"]) == (74, 24)
    assert len(drain_all(ds)) == 50


def test_counter_names_cover_counters():
    ds = new_deshred_state(n_slots=1, shreds_per_slot=1)
    assert len(COUNTER_NAMES) == ds.counters.shape[0]
    with pytest.raises(ValueError, match="shreds_per_slot"):
        new_deshred_state(shreds_per_slot=40000)
