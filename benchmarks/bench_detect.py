"""Detection on vs off: the cost of pool tracking and the three detectors on a replay.

One >= 1M-packet market capture (synth: `generate_capture(..., market=True)`, cached under
runs/bench/), replayed three ways, several times each, interleaved: without a market (the
engine skips the market path entirely), with the market and detection off (swaps decoded,
pools tracked, swaps.parquet written: `Settings(detect=False)`), and with detection on.
Prints engine packets/s of each, the ratios, and the extra engine ns per applied swap and
per detected opportunity. Goal (issue #3): detection costs at most 30 % of throughput
(detection on vs off); the cost of the whole market path (vs no market) is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from common import bench_capture, table


def main():
    from workbench.config import Settings
    from workbench.runner import replay
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cap = bench_capture(a.packets, seed=21, market=True)
    mk = str(cap) + ".market"
    on, off, none = [], [], []
    for k in range(a.repeat + 1):                  # the first round warms caches and is dropped
        for market, detect, runs in ((mk, True, on), (mk, False, off), ("", True, none)):
            with tempfile.TemporaryDirectory() as d:
                r = replay(cap, d, Settings(progress=False, market=market, detect=detect))
            if k:
                runs.append(r)
    pps_on = statistics.median(r.engine_packets_per_s for r in on)
    pps_off = statistics.median(r.engine_packets_per_s for r in off)
    pps_none = statistics.median(r.engine_packets_per_s for r in none)
    r = on[-1]
    n = r.packets
    opps = r.opportunities["count"]
    swaps = r.market["swaps_applied"]
    extra_s = n / pps_on - n / pps_off          # what the detectors add over tracking the pools
    cost = 1 - pps_on / pps_off
    table(f"replay of {n:,} packets ({cap.name}), engine only, median of {a.repeat}",
          [("no market (market path not compiled in)", f"{pps_none:,.0f}", f"{pps_none / pps_off:.2f}", "-"),
           ("market, detection off (pools tracked)", f"{pps_off:,.0f}", "1.00", "-"),
           ("market, detection on", f"{pps_on:,.0f}", f"{pps_on / pps_off:.2f}", f"{cost * 100:.1f} %"),
           ("whole market path vs no market", "-", f"{pps_on / pps_none:.2f}",
            f"{(1 - pps_on / pps_none) * 100:.1f} %")],
          ("run", "packets/s", "ratio to detection off", "throughput cost"))
    table("what the extra time bought",
          [("swaps applied", f"{swaps:,}", f"{extra_s * 1e9 / max(swaps, 1):,.0f} ns/swap"),
           ("opportunities", f"{opps:,}", f"{extra_s * 1e9 / max(opps, 1):,.0f} ns/opportunity"),
           ("exact sizings: sandwich / 2-pool / 3-pool",
            f"{r.market['exact_sandwich']:,} / {r.market['exact_arb2']:,} / {r.market['exact_arb3']:,}", "-"),
           ("detection p50 / p99 (wall, per opportunity)",
            f"{r.detect_ns.get('p50', -1):,} / {r.detect_ns.get('p99', -1):,} ns", "-")],
          ("what", "count", "extra engine time"))
    print(f"\ngoal: detection costs <= 30 % of throughput: {'met' if cost <= 0.30 else 'MISSED'} "
          f"({cost * 100:.1f} %)")


if __name__ == "__main__":
    main()
