"""Shreds -> entry batches -> entries -> transactions, on the REAL fixtures (tests/fixtures).

- Firedancer's demo-shreds.pcap deshreds to bytes identical to demo-shreds.bin, in file
  order and shuffled with duplicates; every transaction reads the same in solders.
- Sig's slot-410010000 FEC set matches its manifest.zon (entries, transactions, signatures).
- Sig's testnet slot 356797362 (zero-padded batches) gives 2357 entries / 2293 vote transactions.
- Firedancer's localnet ar(5) archives decode as unchained merkle (0x85) and legacy (0xa5) shreds.
- Header decode agrees with a plain-Python twin (shred_helpers.py) on every real shred.

Truncations, bit flips, hostile counts and memory limits are in test_shreds_faults.py.
"""

from __future__ import annotations

import random
import re

import base58
import numpy as np

from shred_helpers import (DEMO, SEED, SIG_FEC, ar_members, batch_bytes, check_batch_rows_like_solders, demo_payloads,
                           deshred, drain_all, kernel_decode_shred, localnet_archives, one_per_variant, read_testnet,
                           ready_bytes, real_shreds, ref_decode_shred, sig_fec_payloads, solders_tx)
from workbench.engine.deshred import (READY_DTYPE, add_data_shred, counters_dict, drain_ready, logged_batches,
                                      new_deshred_state)
from workbench.wire.entries import parse_batch
from workbench.wire.keys import program_address
from workbench.wire.shred import check_shred, shred_kind
from workbench.wire.status import status_name

VOTE_PROGRAM = program_address("vote")


# --- (a) Firedancer demo-shreds.pcap ------------------------------------------------------------

def test_demo_pcap_deshreds_to_demo_bin(fixtures):
    pays = demo_payloads(fixtures)
    assert len(pays) == 512
    expected = (fixtures / DEMO / "demo-shreds.bin").read_bytes()
    ds, status = deshred(pays)
    assert set(status.tolist()) == {1}
    c = counters_dict(ds)
    assert (c["data_shreds"], c["code_shreds"], c["batches"], c["entries"], c["transactions"]) == (256, 256, 1, 64,
                                                                                                   1280)
    assert c["parse_failures"] == c["duplicates"] == c["dropped"] == c["rejected"] == 0
    (b,) = logged_batches(ds)
    assert (b["slot"], b["first"], b["last"], b["status"], b["slot_complete"]) == (0, 0, 255, 0, 1)
    assert batch_bytes(ds, b) == expected
    # the batch parsed in the slab agrees with the file parsed on its own, row for row
    st, stop, entries, txs = parse_batch(expected)
    assert (st, stop, len(entries), len(txs)) == (0, len(expected), 64, 1280)
    assert all(e["tx_cnt"] == 20 for e in entries)
    check_batch_rows_like_solders(expected, entries, txs)
    rows = drain_all(ds, chunk=100)
    assert len(rows) == 1280
    assert [(r["off"] - b["off"], r["end"] - b["off"], r["entry"], r["entry_tx_idx"]) for r in rows] == \
        [(int(x["off"]), int(x["end"]), int(x["entry"]), int(x["entry_tx_idx"])) for x in txs]
    assert all(r["slot"] == 0 and r["batch_first"] == 0 for r in rows)


def test_demo_pcap_shuffled_with_duplicates_engine_style(fixtures):
    """Out of order, duplicates, and a drain of at most 7 rows after each shred (as room allows)."""
    pays = demo_payloads(fixtures)
    rng = random.Random(SEED)
    dups = rng.sample(range(len(pays)), 60)
    order = list(range(len(pays))) + dups
    rng.shuffle(order)
    ds = new_deshred_state(n_slots=2, shreds_per_slot=512, queue_rows=4096)
    ready = np.zeros(7, READY_DTYPE)
    got, statuses, left = [], [], 0
    for k, i in enumerate(order):
        b = np.frombuffer(pays[i], np.uint8)
        statuses.append(status_name(add_data_shred(ds, b, 0, b.shape[0], 1_000 + k, k)))
        n, left = drain_ready(ds, ready, 0, 7)
        got += ready_bytes(ds, ready[:n])
    while left:
        n, left = drain_ready(ds, ready, 0, 7)
        got += ready_bytes(ds, ready[:n])
    n_dup_data = sum(1 for i in dups if pays[i][64] & 0xC0 == 0x80)
    assert statuses.count("duplicate") == n_dup_data
    assert statuses.count("shred") == len(order) - n_dup_data
    c = counters_dict(ds)
    assert (c["duplicates"], c["batches"], c["entries"], c["transactions"]) == (n_dup_data, 1, 64, 1280)
    assert c["code_shreds"] == 256 + len(dups) - n_dup_data
    (b,) = logged_batches(ds)
    expected = (fixtures / DEMO / "demo-shreds.bin").read_bytes()
    assert batch_bytes(ds, b) == expected
    assert b["ts_first_ns"] == 1_000 + min(k for k, i in enumerate(order) if pays[i][64] & 0xC0 == 0x80)
    _, _, _, txs = parse_batch(expected)
    assert got == [expected[x["off"]:x["end"]] for x in txs]


# --- (b) Sig FEC set of slot 410010000 -------------------------------------------------------

def parse_manifest(text: str) -> dict:
    def num(key):
        return int(re.search(r"\." + key + r"\s*=\s*(\d+)", text).group(1))
    per_entry = re.search(r"\.transactions_per_entry\s*=\s*\.\{([^}]*)\}", text).group(1)
    txs = []
    for m in re.finditer(r"\.global_tx_index\s*=\s*(\d+),\s*\.entry_index\s*=\s*(\d+),\s*"
                         r"\.tx_index_in_entry\s*=\s*(\d+),\s*\.signatures\s*=\s*\.\{([^}]*)\}", text):
        txs.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), re.findall(r'"([1-9A-HJ-NP-Za-km-z]+)"',
                                                                                    m.group(4))))
    return dict(slot=num("slot"), payload=num("entry_payload_len"), entries=num("entry_count"),
                transactions=num("transaction_count"), per_entry=[int(x) for x in re.findall(r"\d+", per_entry)],
                txs=txs)


def test_sig_fec_set_matches_manifest(fixtures):
    man = parse_manifest((fixtures / SIG_FEC / "manifest.zon").read_text())
    assert (man["entries"], man["transactions"], man["payload"]) == (65, 74, 29430) and len(man["txs"]) == 74
    pays = sig_fec_payloads(fixtures)
    assert len(pays) == 59
    ds, status = deshred(pays)
    assert set(status.tolist()) == {1}
    c = counters_dict(ds)
    assert (c["data_shreds"], c["code_shreds"], c["batches"], c["entries"], c["transactions"]) == (32, 27, 1, 65, 74)
    (b,) = logged_batches(ds)
    assert (b["slot"], b["first"], b["last"], b["end"] - b["off"], b["status"]) == (man["slot"], 0, 31, 29430, 0)
    raw = batch_bytes(ds, b)
    st, stop, entries, txs = parse_batch(raw)
    assert (st, stop) == (0, len(raw))
    assert [int(e["tx_cnt"]) for e in entries] == man["per_entry"]
    check_batch_rows_like_solders(raw, entries, txs)
    rows = drain_all(ds)
    assert len(rows) == 74
    for g, (r, (gi, ei, ti, sigs)) in enumerate(zip(rows, man["txs"])):
        tx = solders_tx(bytes(ds.slab[r["off"]:r["end"]]))
        assert (g, int(r["entry"]), int(r["entry_tx_idx"])) == (gi, ei, ti)
        assert [str(s) for s in tx.signatures] == sigs
        assert [base58.b58encode(bytes(ds.slab[r["off"] + 1 + 64 * k: r["off"] + 65 + 64 * k])).decode()
                for k in range(len(sigs))] == sigs


# --- (c) Sig testnet slot 356797362: zero padding, votes ----------------------------------------

def test_testnet_slot_all_votes_with_zero_padding(fixtures):
    pays = read_testnet(fixtures, 356797362)
    assert len(pays) == 992
    ds, status = deshred(pays)
    assert set(status.tolist()) == {1}
    c = counters_dict(ds)
    assert (c["batches"], c["entries"], c["transactions"], c["parse_failures"]) == (15, 2357, 2293, 0)
    batches = logged_batches(ds)
    assert batches["first"].tolist() == sorted(batches["first"].tolist()) and batches["first"][0] == 0
    assert batches["slot_complete"].tolist() == [0] * 14 + [1]
    padded = [b for b in batches if b["stop"] < b["end"]]
    assert padded, "expected zero padding after the Vec<Entry> in some batches"
    for b in padded:
        assert not ds.slab[b["stop"]:b["end"]].any()
    rows = drain_all(ds)
    assert len(rows) == 2293
    for raw in ready_bytes(ds, rows):
        msg = solders_tx(raw).message
        keys = msg.account_keys
        assert {str(keys[ix.program_id_index]) for ix in msg.instructions} == {VOTE_PROGRAM}


def test_testnet_slot_with_empty_data_shreds(fixtures):
    """Slot 417955322: many data shreds carry no data (size 88)."""
    ds, status = deshred(read_testnet(fixtures, 417955322))
    assert set(status.tolist()) == {1}
    c = counters_dict(ds)
    assert (c["data_shreds"], c["batches"], c["entries"], c["transactions"], c["parse_failures"]) == (320, 9, 103, 417,
                                                                                                     0)


# --- (d) Firedancer localnet ar(5) archives --------------------------------------------------------

def test_localnet_archives_variants_and_entries(fixtures):
    paths = localnet_archives(fixtures)
    assert len(paths) == 4
    want = {"localnet-slot0-shreds.ar": (0x85, 4, 1, 64, 0), "localnet-v14-slot0-shreds.ar": (0x85, 4, 1, 64, 0),
            "localnet-slot50-shreds.ar": (0xA5, 8, 8, 65, 1), "localnet-v14-slot1-shreds.ar": (0xA5, 8, 8, 64, 0)}
    for path in paths:
        variant, n, batches, entries, txs = want[path.name]
        members = [m for _, m in ar_members(path.read_bytes())]
        assert len(members) == n
        for m in members:
            name, f = kernel_decode_shred(m)
            assert (name, f["variant"], f["kind"]) == ("shred", variant, "data"), path.name
            assert (name, f) == ref_decode_shred(m)
            assert shred_kind(np.frombuffer(m, np.uint8), 0, len(m)) == 1
        ds, status = deshred(members, shreds_per_slot=64)
        c = counters_dict(ds)
        assert set(status.tolist()) == {1}
        assert (c["batches"], c["entries"], c["transactions"], c["parse_failures"]) == (batches, entries, txs, 0), \
            path.name
        for raw in ready_bytes(ds, drain_all(ds)):
            solders_tx(raw)


# --- header decode against the twin ------------------------------------------------------------

def test_decode_shred_agrees_with_twin_on_real_shreds(fixtures):
    shreds = real_shreds(fixtures)
    variants = set()
    for s in shreds:
        k = kernel_decode_shred(s)
        assert k == ref_decode_shred(s)
        assert k[0] == "shred"
        assert check_shred(np.frombuffer(s, np.uint8), 0, len(s)) == 1
        variants.add(s[64])
    assert {0x96, 0xB6, 0x66, 0x76, 0x85, 0xA5} <= variants
    # known capacities: full data shreds of each variant are exactly 88 + capacity bytes
    caps = {v: kernel_decode_shred(s)[1]["capacity"] for s in shreds for v in [s[64]] if s[64] & 0xC0 == 0x80}
    assert (caps[0x96], caps[0xB6], caps[0x85], caps[0xA5]) == (963, 899, 1015, 1051)


def test_repair_nonce_is_accepted(fixtures):
    for s in one_per_variant(sig_fec_payloads(fixtures)):
        assert kernel_decode_shred(s + b"\x01\x02\x03\x04") == kernel_decode_shred(s)
