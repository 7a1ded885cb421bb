"""Readers and helpers for the shred tests: the REAL fixtures (tests/fixtures) as shred payloads,
a deshred run and its drained rows, solders checks of entry-batch rows, and a plain-Python twin
of wire.shred.decode_shred (agave's shred_data/shred_code sanitize rules).
"""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np

from workbench.capture import open_capture
from workbench.engine.deshred import READY_DTYPE, add_shreds, drain_ready, new_deshred_state
from workbench.wire.net import udp_payload
from workbench.wire.shred import decode_shred_one
from workbench.wire.status import status_name
from workbench.wire.txn import decode_one

DEMO = "firedancer/src/disco/shred/fixtures"
SIG_FEC = "sig/v2/tests/replay/fixtures/slot-410010000/fecset-000000"
TESTNET = "sig/v1/data/test-data/blocks/testnet-{}/shreds.json.gz"
LOCALNET = "firedancer/src/ballet/shred/fixtures"
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
