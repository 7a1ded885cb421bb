"""The synthetic capture generator, checked by independent parsers (dpkt for frames, solders
for transactions) against its own ground truth. No project decoder is used here."""

from __future__ import annotations

import struct
import time

import base58
import dpkt
import numpy as np
import pyarrow.parquet as pq
import pytest
from solders.transaction import VersionedTransaction

from workbench.wire.txn import PACKET_DATA_SIZE
from workbench.errors import ConfigError
from workbench.synth import BAD_KIND_SHARES, KIND_EXPECTED, KIND_NAMES, generate_capture, truth_schema
from workbench.synth import frame as F
from workbench.synth.outputs import b58_column
from workbench.synth.traffic.protocol import PROGRAM_COMPUTE_BUDGET, PROGRAM_SYSTEM, PROGRAM_TOKEN, RAYDIUM_AMM_AUTHORITY
from workbench.wire.programs.raydium_amm_v4 import RAY_SWAP_BASE_IN, RAY_SWAP_BASE_OUT
from workbench.synth.traffic.shapes import SHAPE_NAMES, SHAPES
from workbench.synth.traffic.templates import GOOD_TXN_SZ_MAX
from workbench.wire.keys import JITO_TIP_ACCOUNTS, program_address
from workbench.wire.status import STATUS_NAMES

COMPUTE_BUDGET = PROGRAM_COMPUTE_BUDGET
RAYDIUM_AMM_V4 = program_address("raydium_amm_v4")
SYSTEM = PROGRAM_SYSTEM
TIPS = set(JITO_TIP_ACCOUNTS)
TX_KINDS = ("transaction", "vlan_transaction", "duplicate")


# --- helpers (slow, obvious twins of what the generator does) ---------------------------------

def read_pcap_ns(path):
    """(ts_ns, frame) of a nanosecond pcap, read with struct (exact integer ns)."""
    data = open(path, "rb").read()
    assert struct.unpack("<I", data[:4])[0] == 0xA1B23C4D
    pos, out = 24, []
    while pos < len(data):
        sec, frac, incl, _orig = struct.unpack("<IIII", data[pos:pos + 16])
        out.append((sec * 1_000_000_000 + frac, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return out


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_header(frame: bytes) -> bytes:
    at = 18 if frame[12:14] == b"\x81\x00" else 14
    return frame[at:at + 20]


def l4_ok(ip: dpkt.ip.IP) -> bool:
    """Transport checksum over the IPv4 pseudo-header verifies (sum == 0xFFFF)."""
    seg = bytes(ip.data) if not isinstance(ip.data, bytes) else ip.data
    pseudo = ip.src + ip.dst + struct.pack(">BBH", 0, ip.p, len(seg))
    return csum(pseudo + seg) == 0xFFFF


def cu_and_tips(tx: VersionedTransaction):
    """(cu_limit, cu_price, tip lamports) decoded from the parsed transaction itself."""
    keys = [str(k) for k in tx.message.account_keys]
    limit = price = tip = 0
    for ix in tx.message.instructions:
        prog = keys[ix.program_id_index]
        data = bytes(ix.data)
        if prog == COMPUTE_BUDGET and data[0] == 2:
            limit = struct.unpack("<I", data[1:5])[0]
        elif prog == COMPUTE_BUDGET and data[0] == 3:
            price = struct.unpack("<Q", data[1:9])[0]
        elif prog == SYSTEM and data[:4] == b"\x02\0\0\0":
            dst = bytes(ix.accounts)[1]
            if dst < len(keys) and keys[dst] in TIPS:
                tip += struct.unpack("<Q", data[4:12])[0]
    return limit, price, tip


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """~3,000 packets, 10 % bad, pcapng."""
    out = tmp_path_factory.mktemp("synth") / "mixed.pcapng"
    res = generate_capture(out, seconds=1.0, tps=3000, seed=11, bad_rate=0.10)
    truth = pq.read_table(res.truth).to_pylist()
    with open(out, "rb") as f:
        frames = [(ts, bytes(buf)) for ts, buf in dpkt.pcapng.Reader(f)]
    return res, truth, frames


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "signed.pcap"
    res = generate_capture(out, seconds=0.25, tps=2000, seed=3, bad_rate=0.05, sign=True)
    return res, pq.read_table(res.truth).to_pylist(), read_pcap_ns(out)


# --- tests -----------------------------------------------------------------------------------

def test_b58_kernel_matches_base58():
    rng = np.random.default_rng(0)
    rows = [bytes(64), b"\0" * 3 + rng.bytes(61), b"\xff" * 64, b"\0" * 63 + b"\x01"] + [rng.bytes(64) for _ in range(200)]
    buf = np.frombuffer(b"".join(rows), np.uint8)
    off = np.arange(len(rows), dtype=np.int64) * 64
    off[5] = -1
    got = b58_column(buf, off).to_pylist()
    want = [base58.b58encode(r).decode() for r in rows]
    want[5] = ""
    assert got == want
    keys = np.frombuffer(rng.bytes(32 * 50), np.uint8)
    got32 = b58_column(keys, np.arange(50, dtype=np.int64) * 32, 32).to_pylist()
    assert got32 == [base58.b58encode(keys[32 * i:32 * i + 32].tobytes()).decode() for i in range(50)]


def test_same_seed_same_bytes(tmp_path):
    for suffix in (".pcap", ".pcapng"):
        a = generate_capture(tmp_path / f"a{suffix}", seconds=0.3, tps=2000, seed=5, bad_rate=0.1)
        b = generate_capture(tmp_path / f"b{suffix}", seconds=0.3, tps=2000, seed=5, bad_rate=0.1)
        c = generate_capture(tmp_path / f"c{suffix}", seconds=0.3, tps=2000, seed=6, bad_rate=0.1)
        assert a.capture.read_bytes() == b.capture.read_bytes()
        assert a.truth.read_bytes() == b.truth.read_bytes()
        assert a.capture.read_bytes() != c.capture.read_bytes()
        assert a.packets == b.packets > 0


def test_truth_file_shape(mixed):
    res, truth, frames = mixed
    assert pq.read_schema(res.truth).equals(truth_schema())
    assert res.truth.name == res.capture.name + ".truth.parquet"
    assert len(truth) == len(frames) == res.packets
    assert [r["packet_index"] for r in truth] == list(range(len(truth)))
    assert sum(res.counts.values()) == res.packets
    assert set(res.counts) == set(KIND_NAMES)
    for r in truth:
        assert r["expected_status"] == KIND_EXPECTED[KIND_NAMES.index(r["kind"])]
        assert r["expected_status"] == "" or r["expected_status"] in STATUS_NAMES.values()


def test_timestamps_poisson(mixed, signed):
    res, truth, frames = mixed
    ts = np.array([r["ts_ns"] for r in truth])
    start = 1_750_000_000_000_000_000
    assert np.all(np.diff(ts) >= 0)
    assert start <= ts[0] and ts[-1] < start + 1_000_000_000
    assert abs(len(ts) - 3000) < 5 * np.sqrt(3000)
    gaps = np.diff(ts) / 1e9                       # exponential: coefficient of variation ~1
    assert 0.85 < gaps.std() / gaps.mean() < 1.15
    # the pcap carries the same integer nanoseconds as the truth
    _, struth, sframes = signed
    assert [t for t, _ in sframes] == [r["ts_ns"] for r in struth]


def test_every_frame_is_sane(mixed):
    """Ethernet/IPv4 from 10.x to the validator, valid IPv4 and transport checksums."""
    _, truth, frames = mixed
    for r, (_, buf) in zip(truth, frames):
        assert len(buf) <= 1514
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        assert isinstance(ip, dpkt.ip.IP)
        assert csum(ip_header(buf)) == 0xFFFF, r
        assert ip.src[0] == 10 and ip.dst[0] == 10
        assert eth.src[0] & 0x01 == 0 and eth.dst[0] & 0x01 == 0           # unicast MACs
        assert (len(getattr(eth, "vlan_tags", []) or []) == 1) == (r["kind"] == "vlan_transaction")
        if r["kind"] == "ip_fragment":
            assert ip.mf == 1 and ip.df == 0 and ip.p == dpkt.ip.IP_PROTO_UDP
            assert (len(ip) - 20) % 8 == 0                   # a fragment that is not the last: 8-byte multiple
            if ip.offset == 0:                               # first fragment: the UDP header of a bigger datagram
                assert ip.data.dport == 8003 and ip.data.ulen > len(ip) - 20
            continue
        assert ip.mf == 0 and ip.offset == 0
        assert l4_ok(ip), r
        if r["kind"] == "not_udp":
            assert ip.p == dpkt.ip.IP_PROTO_TCP and ip.data.dport == F.RPC_PORT
            continue
        assert ip.p == dpkt.ip.IP_PROTO_UDP
        udp = ip.data
        if r["kind"] == "non_solana":
            assert udp.dport in (53, 123)
        else:
            assert udp.dport == 8003
        assert r["size"] == len(udp.data)


def test_transactions_round_trip_through_solders(mixed):
    _, truth, frames = mixed
    seen: dict[str, bytes] = {}
    shapes = set()
    n_v0_tables = set()
    for r, (_, buf) in zip(truth, frames):
        if r["kind"] not in TX_KINDS:
            assert r["signature"] == "" and r["num_signatures"] == 0 and r["programs"] == []
            continue
        raw = bytes(dpkt.ethernet.Ethernet(buf).data.data.data)
        assert len(raw) == r["size"] <= GOOD_TXN_SZ_MAX < PACKET_DATA_SIZE
        tx = VersionedTransaction.from_bytes(raw)
        assert bytes(tx) == raw                                  # nothing trailing, nothing missing
        tx.sanitize()
        msg = tx.message
        keys = [str(k) for k in msg.account_keys]
        v0 = hasattr(msg, "address_table_lookups")
        assert r["signature"] == str(tx.signatures[0])
        assert r["version"] == ("0" if v0 else "legacy")
        assert r["num_signatures"] == len(tx.signatures) == msg.header.num_required_signatures
        assert r["num_account_keys"] == len(keys)
        assert r["num_instructions"] == len(msg.instructions)
        assert r["num_lookup_tables"] == (len(msg.address_table_lookups) if v0 else 0)
        if v0:
            assert all(len(lk.writable_indexes) + len(lk.readonly_indexes) > 0 for lk in msg.address_table_lookups)
        programs = list(dict.fromkeys(keys[ix.program_id_index] for ix in msg.instructions))
        assert r["programs"] == programs
        assert (r["compute_unit_limit"], r["compute_unit_price"], r["jito_tip_lamports"]) == cu_and_tips(tx)
        if r["jito_tip_lamports"]:
            assert 1_000 <= r["jito_tip_lamports"] <= 1_000_000
        if r["kind"] == "duplicate":
            assert seen[r["signature"]] == raw                    # an exact re-send of an earlier one
        else:
            assert r["signature"] not in seen                     # first signatures are unique
            seen[r["signature"]] = raw
        shapes.add(r["shape"])
        n_v0_tables.add(r["num_lookup_tables"])
    assert shapes == set(SHAPE_NAMES[:-1])
    assert n_v0_tables == {0, 1, 2, 3}


def test_raydium_swaps_have_the_real_layout(mixed):
    _, truth, frames = mixed
    n = 0
    for r, (_, buf) in zip(truth, frames):
        if RAYDIUM_AMM_V4 not in r["programs"]:
            continue
        tx = VersionedTransaction.from_bytes(bytes(dpkt.ethernet.Ethernet(buf).data.data.data))
        msg = tx.message
        keys = [str(k) for k in msg.account_keys]
        for ix in msg.instructions:
            if keys[ix.program_id_index] != RAYDIUM_AMM_V4:
                continue
            data, accts = bytes(ix.data), bytes(ix.accounts)
            assert len(data) == 17 and data[0] in (RAY_SWAP_BASE_IN, RAY_SWAP_BASE_OUT)
            assert len(accts) == 18
            assert accts[17] < msg.header.num_required_signatures         # user owner signs
            if accts[0] < len(keys):                                      # static (not loaded): check by name
                assert keys[accts[0]] == PROGRAM_TOKEN
            if accts[2] < len(keys):
                assert keys[accts[2]] == RAYDIUM_AMM_AUTHORITY
            n += 1
    assert n > 100


def test_bad_packets_are_what_they_claim(mixed):
    _, truth, frames = mixed
    for r, (_, buf) in zip(truth, frames):
        ip = dpkt.ethernet.Ethernet(buf).data
        kind = r["kind"]
        if kind == "truncated":
            raw = bytes(ip.data.data)
            assert len(raw) >= 1
            with pytest.raises(Exception):
                VersionedTransaction.from_bytes(raw)
        elif kind == "trailing":
            raw = bytes(ip.data.data)
            core = bytes(VersionedTransaction.from_bytes(raw))      # solders ignores what follows
            assert raw.startswith(core) and 1 <= len(raw) - len(core) <= 16 and len(raw) <= PACKET_DATA_SIZE
        elif kind == "too_long":
            raw = bytes(ip.data.data)
            assert len(raw) > PACKET_DATA_SIZE
            assert bytes(VersionedTransaction.from_bytes(raw)) == raw   # well formed, just too big
        elif kind == "garbage":
            assert 1 <= len(ip.data.data) <= PACKET_DATA_SIZE
        elif kind == "non_solana":
            if ip.data.dport == 53:
                dpkt.dns.DNS(bytes(ip.data.data))
            else:
                assert len(ip.data.data) == 48 and ip.data.data[0] == 0x23
        elif kind == "ip_fragment":
            assert ip.mf == 1


def test_bad_packets_at_about_bad_rate(mixed):
    res, truth, _ = mixed
    n = len(truth)
    bad = sum(1 for r in truth if r["kind"] not in ("transaction", "vlan_transaction"))
    assert abs(bad - 0.10 * n) < 5 * np.sqrt(n * 0.10 * 0.90)
    for code, share in BAD_KIND_SHARES.items():
        got = res.counts[KIND_NAMES[code]]
        want = 0.10 * n * share
        assert got > 0 and abs(got - want) < 5 * np.sqrt(want) + 3, (KIND_NAMES[code], got, want)
    vlan = res.counts["vlan_transaction"] / (res.counts["transaction"] + res.counts["vlan_transaction"])
    assert 0.01 < vlan < 0.06


def test_shape_mix_follows_the_documented_shares(mixed):
    _, truth, _ = mixed
    good = [r["shape"] for r in truth if r["kind"] in ("transaction", "vlan_transaction")]
    for shape in SHAPES:
        want = shape.share * len(good)
        assert abs(good.count(shape.name) - want) < 5 * np.sqrt(want), shape


def test_empty_capture(tmp_path):
    res = generate_capture(tmp_path / "empty.pcapng", seconds=0.001, tps=1, seed=1)
    assert res.packets == 0
    assert pq.read_table(res.truth).num_rows == 0 and pq.read_schema(res.truth).equals(truth_schema())
    with open(res.capture, "rb") as f:
        assert list(dpkt.pcapng.Reader(f)) == []


def test_signed_transactions_verify(signed):
    res, truth, frames = signed
    n = 0
    for r, (_, buf) in zip(truth, frames):
        if r["kind"] not in TX_KINDS:
            continue
        tx = VersionedTransaction.from_bytes(bytes(dpkt.ethernet.Ethernet(buf).data.data.data))
        assert all(tx.verify_with_results()), r
        assert str(tx.signatures[0]) == r["signature"]
        n += 1
    assert n > 300 and res.transactions > 0


def test_unsigned_signatures_do_not_verify(mixed):
    _, truth, frames = mixed
    r, (_, buf) = next((r, f) for r, f in zip(truth, frames) if r["kind"] == "transaction")
    tx = VersionedTransaction.from_bytes(bytes(dpkt.ethernet.Ethernet(buf).data.data.data))
    assert not any(tx.verify_with_results())


def test_progress_and_errors(tmp_path):
    calls = []
    generate_capture(tmp_path / "p.pcap", seconds=0.05, tps=1000, seed=1, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1]
    with pytest.raises(ConfigError, match="suffix"):
        generate_capture(tmp_path / "x.txt", seconds=0.1)
    with pytest.raises(ConfigError, match="txn_port"):
        generate_capture(tmp_path / "x.pcap", seconds=0.1, txn_port=53)
    with pytest.raises(ConfigError, match="seconds"):
        generate_capture(tmp_path / "x.pcap", seconds=-1)
    with pytest.raises(ConfigError, match="bad_rate"):
        generate_capture(tmp_path / "x.pcap", seconds=0.1, bad_rate=1.5)


def test_print_generation_rate(tmp_path):
    """Not asserted (shared machine): printed for the record. `pytest -s` shows it."""
    t = time.perf_counter()
    res = generate_capture(tmp_path / "rate.pcap", seconds=1.0, tps=100_000, seed=2)
    dt = time.perf_counter() - t
    print(f"\nsynth: {res.packets} packets in {dt:.2f} s = {res.packets / dt:,.0f} packets/s (sign=False)")
