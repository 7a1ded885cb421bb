"""Capture readers and the wire walk, on files written by scapy (an independent writer)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import EDecimal, PcapNgWriter, wrpcap

from workbench.capture import open_capture
from workbench.capture.pcap import PcapWriter
from workbench.capture.pcapng import PcapngWriter
from workbench.errors import CaptureError, CaptureTruncated
from workbench.wire.net import udp_payload
from workbench.wire.status import status_name

PAYLOAD = bytes(range(256)) * 2 + b"solana"


def _udp(dport=8003, payload=PAYLOAD):
    return UDP(sport=40000, dport=dport) / Raw(payload)


def _frames():
    """(linktype, scapy packet, expected status, expected payload) for every walk case."""
    ip4, ip6 = IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="fd00::1", dst="fd00::2")
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip4 / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=7) / ip4 / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1AD(vlan=9) / Dot1Q(vlan=7) / ip4 / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_RR(routers=["1.2.3.4"])]) / _udp(), \
        "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip6 / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip6 / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip6 / IPv6ExtHdrFragment(offset=0, m=0) / _udp(), "ok", PAYLOAD
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip6 / IPv6ExtHdrFragment(offset=0, m=1) / _udp(), "ip_fragment", None
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip4 / TCP(dport=8003) / Raw(b"x"), "not_udp", None
    yield 1, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ARP(), "not_ip", None
    for frag in fragment(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip4 / _udp(payload=PAYLOAD * 4), fragsize=600):
        yield 1, frag, "ip_fragment", None
    yield 101, ip4 / _udp(), "ok", PAYLOAD
    yield 101, ip6 / _udp(), "ok", PAYLOAD
    yield 113, CookedLinux(proto=0x0800) / ip4 / _udp(), "ok", PAYLOAD
    yield 276, CookedLinuxV2(proto=0x86DD) / ip6 / _udp(), "ok", PAYLOAD


def _walk(batch, i):
    st, poff, psz, sport, dport = udp_payload(batch.buf, batch.off[i], batch.caplen[i], batch.linktype[i])
    return ("ok" if st == 0 else status_name(st)), (bytes(batch.buf[poff:poff + psz]) if st == 0 else None)


@pytest.mark.parametrize("nano", [False, True])
def test_scapy_pcap_each_linktype(tmp_path, nano):
    cases = list(_frames())
    for lt in sorted({c[0] for c in cases}):
        sub = [c for c in cases if c[0] == lt]
        pkts = [c[1] for c in sub]
        for k, p in enumerate(pkts):
            p.time = EDecimal(1_700_000_000) + EDecimal(k) / 8 + EDecimal("0.000123456")
        path = tmp_path / f"lt{lt}.pcap"
        wrpcap(str(path), pkts, linktype=lt, nano=nano)
        batches = list(open_capture(path, batch_frames=3))   # several batches
        assert sum(b.n for b in batches) == len(pkts)
        k = 0
        for b in batches:
            for i in range(b.n):
                assert bytes(b.frame(i)) == bytes(pkts[k])
                assert b.linktype[i] == lt
                want = int(pkts[k].time * 10**9) if nano else int(pkts[k].time * 10**6) * 1000
                assert int(b.ts_ns[i]) == want
                assert _walk(b, i) == (sub[k][2], sub[k][3]), (lt, k, pkts[k].summary())
                k += 1


def test_scapy_pcapng_several_interfaces(tmp_path):
    cases = list(_frames())
    pkts = []
    for k, (lt, p, _, _) in enumerate(cases):
        p.sniffed_on = f"if{k}"           # an IDB per packet: scapy picks its link type
        p.time = 1_700_000_000 + k / 4
        pkts.append(p)
    path = tmp_path / "multi.pcapng"
    w = PcapNgWriter(str(path))
    for p, (lt, *_rest) in zip(pkts, cases):
        w.linktype = lt
        w.write(p)
    w.close()
    r = open_capture(path, batch_frames=4)
    got = [(b, i) for b in r for i in range(b.n)]
    assert len(got) == len(cases)
    # scapy writes bare IP packets as LINKTYPE_IPV4 (228) / LINKTYPE_IPV6 (229), not 101
    want_lt = [(228 if isinstance(p, IP) else 229) if lt == 101 else lt for lt, p, _, _ in cases]
    assert set(r.linktypes) == set(want_lt)
    for (b, i), (lt, p, st, pay), wlt in zip(got, cases, want_lt):
        assert bytes(b.frame(i)) == bytes(p) and b.linktype[i] == wlt
        assert _walk(b, i) == (st, pay)


def _manual_pcap(order: str, magic: int, frames, ts_list):
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for f, (s, frac) in zip(frames, ts_list):
        out += struct.pack(order + "IIII", s, frac, len(f), len(f)) + f
    return out


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("magic,scale", [(0xA1B2C3D4, 1000), (0xA1B23C4D, 1)])
def test_pcap_both_byte_orders_hand_built(tmp_path, order, magic, scale):
    frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / _udp(payload=bytes([k]) * (k + 1))) for k in range(5)]
    ts = [(1_700_000_000 + k, 999 * k) for k in range(5)]
    p = tmp_path / "x.pcap"
    p.write_bytes(_manual_pcap(order, magic, frames, ts))
    (b,) = list(open_capture(p))
    assert [bytes(b.frame(i)) for i in range(b.n)] == frames
    assert list(b.ts_ns) == [s * 1_000_000_000 + f * scale for s, f in ts]


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_our_writers_round_trip(tmp_path, fmt, big_endian):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 1500, 200)]
    ts = np.cumsum(rng.integers(1, 10**6, 200)) + 1_700_000_000_123_456_789
    p = tmp_path / f"w.{fmt}"
    W = PcapWriter if fmt == "pcap" else PcapngWriter
    with W(p, linktype=1, big_endian=big_endian) as w:
        buf = np.frombuffer(b"".join(frames[:100]), np.uint8)
        lens = np.array([len(f) for f in frames[:100]])
        w.write_many(buf, np.concatenate([[0], np.cumsum(lens)[:-1]]), lens, ts[:100])
        for f, t in zip(frames[100:], ts[100:]):
            w.write(f, int(t))
    got = [(bytes(b.frame(i)), int(b.ts_ns[i])) for b in open_capture(p, batch_frames=64) for i in range(b.n)]
    assert got == list(zip(frames, [int(t) for t in ts]))


def test_dpkt_reads_what_we_write(tmp_path):
    import dpkt
    frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / _udp(payload=bytes([k]) * 10)) for k in range(10)]
    p = tmp_path / "d.pcap"
    with PcapWriter(p, nanosecond=False) as w:
        for k, f in enumerate(frames):
            w.write(f, 1_700_000_000_000_000_000 + k * 1000)
    with open(p, "rb") as fh:
        assert [bytes(b) for _, b in dpkt.pcap.Reader(fh)] == frames


def test_pcapng_spb_unknown_blocks_and_tsresol(tmp_path):
    """SPB (no timestamp), an unknown block type, binary if_tsresol and if_tsoffset."""
    def block(bt, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", bt, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    f1 = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / _udp())
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HHB3x", 9, 1, 0x80 | 10) + struct.pack("<HHq", 14, 8, 100) + struct.pack("<HH", 0, 0)
    idb = block(1, struct.pack("<HHI", 1, 0, 0) + opts)
    ts = 5 * 1024 + 512          # 5.5 s at 2^-10 s units
    epb = block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(f1), len(f1)) + f1)
    spb = block(3, struct.pack("<I", len(f1)) + f1)
    unknown = block(0x0BADC0DE, b"whatever")
    p = tmp_path / "h.pcapng"
    p.write_bytes(shb + idb + unknown + epb + spb)
    (b,) = list(open_capture(p))
    assert b.n == 2
    assert int(b.ts_ns[0]) == 105_500_000_000 and int(b.ts_ns[1]) == -1
    assert bytes(b.frame(0)) == bytes(b.frame(1)) == f1


def test_truncated_capture_keeps_good_frames_and_names_offset(tmp_path):
    frames = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / _udp()) for _ in range(10)]
    p = tmp_path / "t.pcap"
    with PcapWriter(p) as w:
        for k, f in enumerate(frames):
            w.write(f, k)
    data = p.read_bytes()
    cut = len(data) - 100
    p.write_bytes(data[:cut])
    r = open_capture(p, batch_frames=4)
    seen = []
    with pytest.raises(CaptureTruncated) as ei:
        for b in r:
            seen += [bytes(b.frame(i)) for i in range(b.n)]
    assert seen == frames[:9]
    e = ei.value
    assert e.frame == 9 and e.offset == 24 + 9 * (16 + len(frames[0]))
    assert str(p) in str(e) and f"+0x{e.offset:x}" in str(e)


@pytest.mark.parametrize("content,why", [(b"", "only 0 bytes"), (b"hello world, not a capture", "not a pcap"),
                                         (b"\xd4\xc3\xb2\xa1" + b"\0" * 8, "inside the pcap file header"),
                                         (b"\x0a\x0d\x0d\x0a" + b"\0" * 4, "inside the section header block")])
def test_not_a_capture(tmp_path, content, why):
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    with pytest.raises(CaptureError, match=why):
        open_capture(p)


def test_missing_file():
    with pytest.raises(CaptureError, match="no such file"):
        open_capture("/nonexistent/x.pcap")


def test_batches_are_views_not_copies(tmp_path):
    p = tmp_path / "v.pcap"
    with PcapWriter(p) as w:
        for k in range(50):
            w.write(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / _udp()), k)
    batches = list(open_capture(p, batch_frames=16))
    assert len(batches) == 4
    assert all(isinstance(b.buf, np.memmap) or b.buf.base is not None for b in batches)
    assert all(b.buf is batches[0].buf for b in batches)      # one mapping, never copied
