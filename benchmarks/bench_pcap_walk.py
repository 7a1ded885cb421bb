"""Pcap walk to UDP payloads: ours (memmap + numba) vs dpkt vs scapy's PcapReader, one run.

Each reads every frame of the same capture and sums the UDP payload bytes (the three
sums must agree). scapy dissects every layer, so it runs on the first --scapy-packets
frames and its ns/packet is compared per packet. Goal: >= 20x dpkt.
"""

from __future__ import annotations

import argparse

from numba import njit

from common import bench_capture, median_time, table
from workbench.binary import prefetch_upto
from workbench.wire.net import udp_payload


@njit(cache=True, nogil=True)
def _walk(buf, off, caplen, linktype):
    total = 0
    pf = 0
    for i in range(off.shape[0]):
        pf = prefetch_upto(buf, max(pf, off[i]), off[i])
        st, poff, psz, sport, dport = udp_payload(buf, off[i], caplen[i], linktype[i])
        if st == 0:
            total += psz
    return total


def ours(path):
    from workbench.capture import open_capture
    total = n = 0
    for b in open_capture(path, batch_frames=16384):
        total += _walk(b.buf, b.off, b.caplen, b.linktype)
        n += b.n
    return n, total


def with_dpkt(path, limit=None):
    import dpkt
    total = n = 0
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            n += 1
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP) and not ip.mf and not ip.offset and isinstance(ip.data, dpkt.udp.UDP):
                total += len(ip.data.data)
            if limit and n >= limit:
                break
    return n, total


def with_scapy(path, limit):
    from scapy.layers.inet import IP, UDP
    from scapy.utils import PcapReader
    total = n = 0
    with PcapReader(str(path)) as r:
        for pkt in r:
            n += 1
            if IP in pkt and not pkt[IP].flags.MF and pkt[IP].frag == 0 and UDP in pkt:
                total += len(pkt[UDP].payload)
            if n >= limit:
                break
    return n, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--scapy-packets", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    path = bench_capture(a.packets)
    n, tot = ours(path)
    assert with_dpkt(path) == (n, tot), "dpkt and ours disagree on the payload bytes"
    t_ours = median_time(lambda: ours(path), a.repeat)
    t_dpkt = median_time(lambda: with_dpkt(path), max(1, a.repeat // 2), warmup=0)
    sn, stot = with_scapy(path, a.scapy_packets)
    assert (sn, stot) == with_dpkt(path, a.scapy_packets)
    t_scapy = median_time(lambda: with_scapy(path, a.scapy_packets), 1, warmup=0)
    ns = [t_ours / n * 1e9, t_dpkt / n * 1e9, t_scapy / sn * 1e9]
    table(f"pcap walk to UDP payloads, {n:,} packets ({path.name}), median of {a.repeat}",
          [("workbench (memmap + numba)", f"{ns[0]:.1f}", f"{1e9 / ns[0]:,.0f}", "1.0x"),
           ("dpkt 1.9.8", f"{ns[1]:.1f}", f"{1e9 / ns[1]:,.0f}", f"{ns[1] / ns[0]:.1f}x slower"),
           (f"scapy PcapReader ({sn:,} pkts)", f"{ns[2]:.1f}", f"{1e9 / ns[2]:,.0f}", f"{ns[2] / ns[0]:.1f}x slower")],
          ("reader", "ns/packet", "packets/s", "vs ours"))
    print(f"\nratio ours/dpkt: {ns[1] / ns[0]:.1f}x (goal >= 20x)")


if __name__ == "__main__":
    main()
