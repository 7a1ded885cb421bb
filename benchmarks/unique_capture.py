"""A long capture of unique transactions for the whole-replay benchmark (issue 16).

Made from a generated market capture (``common.bench_capture(..., market=True)``), repeated
until it holds the packets asked for:

- every transaction frame keeps its bytes except its first signature, whose first 8 bytes are
  XORed with a mix (splitmix64, a bijection) of the frame's running number, so each first
  signature is unique in the whole file (a repeat would otherwise write the same signatures
  again, which no real feed does, and which would flatter anything that caches by signature);
- the frames that carry no transaction (the capture's own bad and foreign frames: not UDP,
  other ports, fragments, garbage) are held out and repeated between the transactions until
  they are ``1 - tx_share`` of the packets (the issue measured 84 % transactions);
- each repeat is shifted in time after the previous one, so event time only moves forward.

The market snapshot of the base capture is linked beside the result (``<capture>.market``), so
``workbench replay <capture> --market <capture>.market`` runs detection over it. Same arguments,
same bytes. Usage: ``python benchmarks/unique_capture.py --packets 5000000``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import BENCH_DIR, bench_capture

TXN_PORT = 8003                  # the generator's validator transaction port (synth default)
ETH_HDR_SZ, VLAN_TAG_SZ, UDP_HDR_SZ, SIG_SZ = 14, 4, 8, 64
ETHERTYPE_IPV4, ETHERTYPE_VLAN, IPPROTO_UDP = 0x0800, 0x8100, 17
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijection of uint64 that spreads consecutive numbers over all bits."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & M64
        return z ^ (z >> np.uint64(31))


def signature_offsets(buf: np.ndarray, off: np.ndarray, caplen: np.ndarray) -> np.ndarray:
    """Offset in ``buf`` of the first signature of each frame that carries a transaction to
    TXN_PORT over Ethernet (optionally VLAN-tagged) / IPv4 / UDP, else -1."""
    off = off.astype(np.int64)
    end = off + caplen.astype(np.int64)
    n = off.shape[0]
    sig = np.full(n, -1, np.int64)
    ok = caplen >= ETH_HDR_SZ + 20 + UDP_HDR_SZ + 1 + SIG_SZ
    o = np.where(ok, off, 0)
    etype = (buf[o + 12].astype(np.int64) << 8) | buf[o + 13]
    vlan = etype == ETHERTYPE_VLAN
    ip = o + ETH_HDR_SZ + np.where(vlan, VLAN_TAG_SZ, 0)
    ok &= ip + 20 < end
    ip = np.where(ok, ip, 0)
    etype = np.where(vlan, (buf[np.minimum(o + 16, buf.shape[0] - 1)].astype(np.int64) << 8)
                     | buf[np.minimum(o + 17, buf.shape[0] - 1)], etype)
    ok &= (etype == ETHERTYPE_IPV4) & (buf[ip] >> 4 == 4) & (buf[ip + 9] == IPPROTO_UDP)
    ok &= (buf[ip + 6].astype(np.int64) & 0x3F | buf[ip + 7]) == 0          # not a fragment
    udp = ip + (buf[ip].astype(np.int64) & 0x0F) * 4
    ok &= udp + UDP_HDR_SZ + 1 + SIG_SZ <= end
    udp = np.where(ok, udp, 0)
    ok &= ((buf[udp + 2].astype(np.int64) << 8) | buf[udp + 3]) == TXN_PORT
    cnt = buf[udp + UDP_HDR_SZ]
    ok &= (cnt >= 1) & (cnt < 0x80)
    sig[ok] = udp[ok] + UDP_HDR_SZ + 1
    return sig


def unique_capture(packets: int, tx_share: float = 0.84, base: Path | None = None, out: Path | None = None,
                   progress: bool = True) -> Path:
    """The capture (made once, then reused): ``packets`` frames, ``tx_share`` of them transactions
    with unique first signatures. ``base`` defaults to the 1M-packet market bench capture."""
    from workbench.capture import open_capture
    from workbench.capture.pcap import PcapWriter
    if not 0 < tx_share <= 1:
        raise SystemExit(f"--tx-share {tx_share}: give a fraction in (0, 1]")
    base = Path(base) if base else bench_capture(1_000_000, seed=21, market=True)
    out = Path(out) if out else BENCH_DIR / f"unique-{packets}-{base.stem}-tx{round(tx_share * 100)}.pcap"
    market = out.with_name(out.name + ".market")
    base_market = base.with_name(base.name + ".market")
    if base_market.is_dir() and not market.exists():
        market.parent.mkdir(parents=True, exist_ok=True)       # (a fresh clone has no runs/ yet)
        os.symlink(base_market.resolve(), market)
    if out.exists():
        return out
    t0 = time.perf_counter()
    reader = open_capture(base, batch_frames=65536)
    buf = reader.buf
    # the held-out frames: every frame of the base that carries no transaction
    held = []
    first_ts = last_ts = None
    for b in reader:
        sig = signature_offsets(buf, b.off, b.caplen)
        held.append(np.flatnonzero(sig < 0) + b.first_index)
        first_ts = b.ts_ns[0] if first_ts is None else first_ts
        last_ts = b.ts_ns[-1]
    held_idx = np.concatenate(held)
    span = int(last_ts - first_ts) + 1_000_000_000
    reader = open_capture(base, batch_frames=65536)
    frames = []                                   # (off, caplen, wirelen) of every base frame
    for b in reader:
        frames.append((b.off.copy(), b.caplen.copy(), b.wirelen.copy()))
    off_all = np.concatenate([f[0] for f in frames])
    cap_all = np.concatenate([f[1] for f in frames])
    wire_all = np.concatenate([f[2] for f in frames])
    if not held_idx.shape[0] and tx_share < 1:
        raise SystemExit(f"{base}: holds no frame without a transaction to repeat as held-out traffic")
    tmp = out.with_name(out.name + ".part")
    written = tx_no = held_no = 0
    rep = 0
    with PcapWriter(tmp) as w:
        while written < packets:
            reader = open_capture(base, batch_frames=65536)
            for b in reader:
                if written >= packets:
                    break
                lo = int(b.off[0])
                hi = int(b.off[-1] + b.caplen[-1])
                region = np.array(buf[lo:hi])                         # a writable copy of the batch
                off = b.off.astype(np.int64) - lo
                sig = signature_offsets(region, off, b.caplen)
                txf = np.flatnonzero(sig >= 0)
                mix = splitmix64(np.arange(tx_no, tx_no + txf.shape[0], dtype=np.uint64))
                s = sig[txf]
                head = region[s[:, None] + np.arange(8)].copy().view(np.uint64).reshape(-1)
                region[s[:, None] + np.arange(8)] = (head ^ mix).view(np.uint8).reshape(-1, 8)
                tx_no += txf.shape[0]
                # held-out frames after the transactions, so that tx_share of all frames are transactions
                want = int(round((tx_no / tx_share) - tx_no)) - held_no
                k = max(0, want)
                hidx = held_idx[(held_no + np.arange(k)) % held_idx.shape[0]]
                held_no += k
                ts = b.ts_ns + rep * span
                # interleave: held-out frame j goes after batch frame pos[j] (spread evenly)
                pos = (np.arange(k) * b.n) // max(k, 1)
                order = np.argsort(np.concatenate([np.arange(b.n) * 2, pos * 2 + 1]), kind="stable")
                h_lo = region.shape[0]
                hbuf = np.concatenate([region] + [np.asarray(buf[off_all[i]:off_all[i] + cap_all[i]]) for i in hidx]) \
                    if k else region
                h_off = h_lo + np.concatenate([[0], np.cumsum(cap_all[hidx])[:-1]]).astype(np.int64) if k else \
                    np.zeros(0, np.int64)
                all_off = np.concatenate([off, h_off])[order]
                all_cap = np.concatenate([b.caplen, cap_all[hidx]])[order]
                all_wire = np.concatenate([b.wirelen, wire_all[hidx]])[order]
                all_ts = np.concatenate([ts, ts[np.minimum(pos, b.n - 1)]])[order]
                n_take = min(all_off.shape[0], packets - written)
                w.write_many(hbuf, all_off[:n_take], all_cap[:n_take], all_ts[:n_take], all_wire[:n_take])
                written += n_take
            rep += 1
            if progress:
                print(f"# {out.name}: {written:,} packets written ({time.perf_counter() - t0:.0f} s)", flush=True)
    tmp.rename(out)
    if progress:
        print(f"# made {out.name} in {time.perf_counter() - t0:.1f} s: {written:,} packets, "
              f"{tx_no:,} transactions written with unique first signatures", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--tx-share", type=float, default=0.84, help="fraction of packets that are transactions")
    ap.add_argument("--base", type=Path, default=None, help="capture to repeat (default: the market bench capture)")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    print(unique_capture(a.packets, a.tx_share, a.base, a.out))


if __name__ == "__main__":
    main()
