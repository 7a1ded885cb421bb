"""Shreds -> entry batches -> entries -> transactions, on the REAL fixtures (tests/fixtures).

- Firedancer's demo-shreds.pcap deshreds to bytes identical to demo-shreds.bin, in file
  order and shuffled with duplicates; every transaction reads the same in solders.
- Sig's slot-410010000 FEC set matches its manifest.zon (entries, transactions, signatures).
- Sig's testnet slot 356797362 (zero-padded batches) gives 2357 entries / 2293 vote transactions.
- Firedancer's localnet ar(5) archives decode as unchained merkle (0x85) and legacy (0xa5) shreds.
- Header decode agrees with a plain-Python twin on real shreds, every truncation and seeded
  bit flips; entry-batch truncations and bit flips always give a status, never a crash
  (``make test`` runs with NUMBA_BOUNDSCHECK=1; buffers are sliced to exactly their end).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import struct

import base58
import numpy as np
import pytest

from workbench.capture import open_capture
from workbench.engine.deshred import (COUNTER_NAMES, READY_DTYPE, add_data_shred, add_shreds, counters_dict,
                                      drain_ready, logged_batches, new_deshred_state)
from workbench.wire.entries import ENTRY_DTYPE, ENTRY_TX_DTYPE, new_entry_scratch, parse_batch, parse_entries
from workbench.wire.keys import program_address
from workbench.wire.net import udp_payload
from workbench.wire.shred import SHRED_DTYPE, check_shred, decode_shred, decode_shred_one, shred_kind
from workbench.wire.status import STATUS_NAMES, counts_by_name, status_name
from workbench.wire.txn import decode_one

DEMO = "firedancer/src/disco/shred/fixtures"
SIG_FEC = "sig/v2/tests/replay/fixtures/slot-410010000/fecset-000000"
TESTNET = "sig/v1/data/test-data/blocks/testnet-{}/shreds.json.gz"
LOCALNET = "firedancer/src/ballet/shred/fixtures"
VOTE_PROGRAM = program_address("vote")
SEED = 20240611


# --- fixture readers ------------------------------------------------------------------------

def demo_payloads(fixtures) -> list[bytes]:
    """UDP payloads of demo-shreds.pcap, in file order."""
    out = []
    for b in open_capture(fixtures / DEMO / "demo-shreds.pcap"):
        for i in range(b.n):
            st, poff, psz, _sport, _dport = udp_payload(b.buf, b.off[i], b.caplen[i], b.linktype[i])
            assert st == 0
            out.append(bytes(b.buf[poff:poff + psz]))
    return out


def sig_fec_payloads(fixtures) -> list[bytes]:
    """shreds.bin: records of u64 LE length + raw shred."""
    raw = (fixtures / SIG_FEC / "shreds.bin").read_bytes()
    out, p = [], 0
    while p < len(raw):
        (n,) = struct.unpack_from("<Q", raw, p)
        out.append(raw[p + 8:p + 8 + n])
        p += 8 + n
    assert p == len(raw)
    return out


def read_testnet(fixtures, slot: int) -> list[bytes]:
    with gzip.open(fixtures / TESTNET.format(slot)) as f:
        return [bytes(x) for x in json.load(f)]


def ar_members(raw: bytes) -> list[tuple[str, bytes]]:
    """Members of an ar(5) archive: "!<arch>\\n", then 60-byte headers (name 16, mtime 12,
    uid 6, gid 6, mode 8, size 10, "`\\n"), each member padded to an even offset."""
    assert raw[:8] == b"!<arch>\n"
    out, p = [], 8
    while p < len(raw):
        h = raw[p:p + 60]
        assert h[58:60] == b"`\n", f"bad ar member header at {p}"
        name, size = h[:16].decode().strip().rstrip("/"), int(h[48:58].decode())
        out.append((name, raw[p + 60:p + 60 + size]))
        p += 60 + size + ((60 + size) & 1)
    return out


def localnet_archives(fixtures):
    return sorted((fixtures / LOCALNET).glob("localnet-*.ar"))


# --- helpers ----------------------------------------------------------------------------------

def pack(pays):
    sz = np.array([len(p) for p in pays], np.int32)
    off = np.zeros(len(pays), np.int64)
    off[1:] = np.cumsum(sz, dtype=np.int64)[:-1]
    return np.frombuffer(b"".join(pays), np.uint8), off, sz


def deshred(pays, n_slots=2, shreds_per_slot=1024, **kw):
    ds = new_deshred_state(n_slots=n_slots, shreds_per_slot=shreds_per_slot, **kw)
    buf, off, sz = pack(pays)
    status = np.zeros(len(pays), np.int16)
    add_shreds(ds, buf, off, sz, np.arange(len(pays), dtype=np.int64), 0, status)
    return ds, status


def drain_all(ds, chunk=1 << 16):
    rows = np.zeros(chunk, READY_DTYPE)
    out = []
    while True:
        n, left = drain_ready(ds, rows, 0, chunk)
        out.extend(rows[:n].copy())
        if n == 0:
            assert left == 0
            return out


def batch_bytes(ds, b) -> bytes:
    return bytes(ds.slab[b["off"]:b["end"]])


def ready_bytes(ds, rows) -> list[bytes]:
    return [bytes(ds.slab[r["off"]:r["end"]]) for r in rows]


def solders_tx(raw: bytes):
    from solders.transaction import VersionedTransaction
    tx = VersionedTransaction.from_bytes(raw)
    assert bytes(tx) == raw, "solders re-serializes to different bytes"
    return tx


def check_batch_rows_like_solders(buf: bytes, entries, txs):
    """Every transaction row is exactly one wire transaction, in entry order, as solders reads it."""
    k = 0
    for e, er in enumerate(entries):
        assert er["tx_first"] == k
        for j in range(er["tx_cnt"]):
            x = txs[k]
            assert (x["entry"], x["entry_tx_idx"], x["status"]) == (e, j, 0)
            raw = buf[x["off"]:x["end"]]
            assert decode_one(raw)[0] == 0
            tx = solders_tx(raw)
            assert bytes(tx.signatures[0]) == raw[1:65]
            k += 1
    assert k == len(txs)


# --- plain-Python twin of wire.shred.decode_shred (agave shred_data/shred_code sanitize) ------

_DATA_TYPES = {0x80: (False, False), 0x90: (True, False), 0xB0: (True, True)}   # type -> (chained, resigned)
_CODE_TYPES = {0x40: (False, False), 0x60: (True, False), 0x70: (True, True)}


def ref_decode_shred(b: bytes):
    """(status name, fields) as the layout rules say; fields only when accepted."""
    n = len(b)
    if n < 83:
        return "bad_shred_size", None
    v = b[64]
    if v == 0xA5:
        kind, depth, chained, resigned = "data", 0, False, False
    elif v == 0x5A:
        kind, depth, chained, resigned = "code", 0, False, False
    elif v & 0xF0 in _DATA_TYPES:
        kind, depth, (chained, resigned) = "data", v & 15, _DATA_TYPES[v & 0xF0]
    elif v & 0xF0 in _CODE_TYPES:
        kind, depth, (chained, resigned) = "code", v & 15, _CODE_TYPES[v & 0xF0]
    else:
        return "bad_shred_variant", None
    trailer = 32 * chained + 20 * depth + 64 * resigned
    if kind == "data":
        if v == 0xA5:
            capacity, sizes_ok = 1051, 88 <= n <= 1232
        else:
            capacity, sizes_ok = 1203 - 88 - trailer, n in (1203, 1207)
    else:
        capacity, sizes_ok = 1228 - 89 - trailer, n in (1228, 1232)
    if capacity < 0:
        return "bad_shred_variant", None
    if not sizes_ok:
        return "bad_shred_size", None
    slot, index, version, fec = struct.unpack_from("<QIHI", b, 65)
    f = dict(kind=kind, variant=v, slot=slot, index=index, version=version, fec_set_index=fec,
             proof_depth=depth, chained=int(chained), resigned=int(resigned), capacity=capacity)
    if kind == "data":
        parent, flags, size = struct.unpack_from("<HBH", b, 83)
        if not (88 <= size <= 88 + capacity and size <= n):
            return "bad_shred_size", None
        if slot >= 1 << 63:
            return "bad_shred_slot", None
        if index >= 32768 or fec > index:
            return "bad_shred_index", None
        if flags & 0x80 and not flags & 0x40:
            return "bad_shred_flags", None
        if parent > slot or (parent == 0 and slot > 0):
            return "bad_shred_slot", None
        f.update(parent_offset=parent, flags=flags, size=size, data=b[88:size])
    else:
        nd, nc, pos = struct.unpack_from("<HHH", b, 83)
        if slot >= 1 << 63:
            return "bad_shred_slot", None
        if index >= 32768:
            return "bad_shred_index", None
        first_code = index - pos
        if not (1 <= nd and 1 <= nc <= 256 and pos < nc and fec + nd <= 32768 and first_code >= 0
                and first_code + nc <= 32768):
            return "bad_code_header", None
        f.update(num_data=nd, num_code=nc, position=pos)
    return "shred", f


def kernel_decode_shred(b: bytes):
    """Kernel result in the twin's shape; the buffer is exactly the shred (no slack to read)."""
    code, row = decode_shred_one(b)
    if row is None:
        return status_name(code), None
    f = dict(kind="data" if row["kind"] == 1 else "code", variant=int(row["variant"]), slot=int(row["slot"]),
             index=int(row["index"]), version=int(row["version"]), fec_set_index=int(row["fec_set_index"]),
             proof_depth=int(row["proof_depth"]), chained=int(row["chained"]), resigned=int(row["resigned"]),
             capacity=int(row["capacity"]))
    if f["kind"] == "data":
        d0 = int(row["data_off"])
        f.update(parent_offset=int(row["parent_offset"]), flags=int(row["flags"]), size=int(row["size"]),
                 data=b[d0:d0 + int(row["data_sz"])])
    else:
        f.update(num_data=int(row["num_data"]), num_code=int(row["num_code"]), position=int(row["position"]))
    return status_name(code), f


def real_shreds(fixtures) -> list[bytes]:
    out = demo_payloads(fixtures) + sig_fec_payloads(fixtures) + read_testnet(fixtures, 417955322)
    for path in localnet_archives(fixtures):
        out += [m for _, m in ar_members(path.read_bytes())]
    return out


def one_per_variant(shreds: list[bytes]) -> list[bytes]:
    seen = {}
    for s in shreds:
        seen.setdefault(s[64], s)
    return list(seen.values())


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
