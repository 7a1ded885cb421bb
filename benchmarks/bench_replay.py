"""Whole replay (walk + decode + features), warm numba cache, vs a dpkt + solders pipeline.

Three figures, one run:
1. engine packets/s (process_batch only) and end-to-end packets/s (with Arrow + Parquet),
   median of several replays; goal >= 1M packets/s on one core;
2. the peer: dpkt walk + solders decode + the same features in Python, on a prefix;
3. resident memory: peak RSS of a replay in a fresh process, for a capture and for one
   N times larger: it must stay flat (goal: a 2 GB capture in < 1 GB RSS; --rss-gb 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from common import BENCH_DIR, REPO, bench_capture, median_time, table



def peer_pipeline(path, limit):
    """dpkt + solders + Python features: what a researcher would write without the engine."""
    import dpkt
    from solders.transaction import VersionedTransaction
    cb = "ComputeBudget111111111111111111111111111111"
    n = ntx = 0
    rows = []
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            n += 1
            if n > limit:
                break
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.udp.UDP):
                continue
            try:
                tx = VersionedTransaction.from_bytes(ip.data.data)
            except Exception:
                continue
            m = tx.message
            keys = m.account_keys
            limit_cu = price = 0
            progs = []
            for ci in m.instructions:
                p = str(keys[ci.program_id_index])
                if p not in progs:
                    progs.append(p)
                d = bytes(ci.data)
                if p == cb and d[:1] == b"\x02" and len(d) >= 5:
                    limit_cu = int.from_bytes(d[1:5], "little")
                elif p == cb and d[:1] == b"\x03" and len(d) >= 9:
                    price = int.from_bytes(d[1:9], "little")
            rows.append((n - 1, str(tx.signatures[0]), len(m.instructions), limit_cu, price, progs))
            ntx += 1
    return min(n, limit), ntx


RSS_SCRIPT = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from workbench.runner import replay
from workbench.config import Settings
r = replay({cap!r}, {out!r}, Settings(progress=False))
print(json.dumps(dict(packets=r.packets, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      wall_s=r.wall_s, engine_pps=r.engine_packets_per_s, pps=r.packets_per_s)))
"""


def replay_in_child(cap) -> dict:
    with tempfile.TemporaryDirectory() as d:
        code = RSS_SCRIPT.format(repo=str(REPO), cap=str(cap), out=d)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])


def big_capture(base, factor: int):
    """``base`` repeated ``factor`` times with shifted timestamps (a bigger file, same content)."""
    from workbench.capture import open_capture
    from workbench.capture.pcap import PcapWriter
    path = BENCH_DIR / f"{base.stem}-x{factor}.pcap"
    if path.exists():
        return path
    span = None
    with PcapWriter(path) as w:
        for k in range(factor):
            for b in open_capture(base, batch_frames=65536):
                if span is None:
                    span = 10**9
                w.write_many(b.buf, b.off, b.caplen, b.ts_ns + k * 3600 * 10**9, b.wirelen)
    return path


def main():
    from workbench.config import Settings
    from workbench.runner import replay
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--peer-packets", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss-gb", type=float, default=1.0, help="size of the large capture for the RSS check")
    a = ap.parse_args()
    path = bench_capture(a.packets)
    results = []

    def run():
        with tempfile.TemporaryDirectory() as d:
            results.append(replay(path, d, Settings(progress=False)))
    t = median_time(run, a.repeat)
    engine_pps = sorted(r.engine_packets_per_s for r in results)[len(results) // 2]
    n = results[-1].packets
    t_peer = median_time(lambda: peer_pipeline(path, a.peer_packets), 1, warmup=0)
    peer_pps = a.peer_packets / t_peer
    ns = results[-1].packet_ns
    table(f"whole replay of {n:,} packets ({path.name}), warm cache, median of {a.repeat}",
          [("workbench engine (process_batch)", f"{engine_pps:,.0f}", f"{engine_pps / peer_pps:.0f}x"),
           ("workbench end to end (+Arrow +Parquet)", f"{n / t:,.0f}", f"{n / t / peer_pps:.0f}x"),
           (f"dpkt + solders + Python features ({a.peer_packets:,} pkts)", f"{peer_pps:,.0f}", "1x")],
          ("pipeline", "packets/s", "vs peer"))
    print(f"\nin-engine processing ns/packet: p50 {ns['p50']}  p99 {ns['p99']}  p99.9 {ns['p99.9']}")
    size = path.stat().st_size
    factor = max(2, int(a.rss_gb * 2**30 / size + 0.5))
    big = big_capture(path, factor)
    small_r, big_r = replay_in_child(path), replay_in_child(big)
    table("peak resident memory of a replay (fresh process)",
          [(path.name, f"{size / 2**20:,.0f}", f"{small_r['packets']:,}", f"{small_r['rss_mb']:,.0f}"),
           (big.name, f"{big.stat().st_size / 2**20:,.0f}", f"{big_r['packets']:,}", f"{big_r['rss_mb']:,.0f}")],
          ("capture", "MiB", "packets", "peak RSS MiB"))
    print(f"\nRSS growth for a {factor}x larger capture: {big_r['rss_mb'] - small_r['rss_mb']:+.0f} MiB")


if __name__ == "__main__":
    main()
