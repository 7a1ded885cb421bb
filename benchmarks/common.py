"""Shared helpers for the benchmark scripts: a cached synthetic capture, medians, a table.

Machines here are shared and noisy, so every figure is the median of several repetitions
and every script prints the ratio to a named peer measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH_DIR = Path(os.environ.get("WORKBENCH_BENCH_DIR", REPO / "runs" / "bench"))

# one opportunity of the bundled market capture's replay (every column of mev_opportunities), in the shape GET
# answers; its time and id are each user's to set
REPLAY_ROW = {
    "timestamp_ns": 0, "opportunity_id": "", "type": "sandwich", "profit": 1.210770785,
    "pools": ["6DB4LJVupwGmiLCveSmAGJLXy3oaQLZRneDq7BearUhW"], "run_id": "d95546ef-08b7-466f-b4b3-8bedaa0c13c6",
    "slot": -1, "victim_signature": "2EBHDgg9WpUuuYaqoqAUdjgSRDeUYTT8JnQgfZqF8FLRxGsuGk31NxzGEyvwZ5KvxmdBXPXngixBZbvbArBmEk3g",
    "score": None, "expected_profit_lamports": 1210770785, "tip_lamports": 10000, "detect_latency_ns": 1637,
    "source": "replay", "packet_index": 382, "tx_index": 374,
    "trigger_signature": "2EBHDgg9WpUuuYaqoqAUdjgSRDeUYTT8JnQgfZqF8FLRxGsuGk31NxzGEyvwZ5KvxmdBXPXngixBZbvbArBmEk3g",
    "amount_in": 107563860072, "amount_out": 108774640857, "profit_quote": 1210780785,
    "profit_mint": "So11111111111111111111111111111111111111112", "position_id": -1,
    "f_expected_profit_sol": 1.210770785, "f_pool_depth_sol": 4002.79188246, "f_victim_slippage": 0.09889646392079499,
    "f_victim_priority_fee_lamports": 1004901.0, "f_victim_tip_lamports": 7858.0, "f_pool_swaps_10ms": 0.0,
    "f_pool_swaps_100ms": 1.0, "f_pool_swaps_1000ms": 4.0, "f_ms_since_slot_start": 137.632882, "f_tx_size": 486.0,
    "f_num_instructions": 4.0, "f_program_count": 3.0, "f_type": 2.0,
}


def sh(*args, check=True, timeout=120):
    """Run a command; its CompletedProcess (text), CalledProcessError when ``check`` and it fails."""
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


class Veth:
    """A veth pair with one end (``rx``) in a namespace of its own (``ns``, its loopback up), the other
    (``tx``) on the host, IPv6 off on both so that nothing but the benchmark's traffic crosses it. Root."""

    def __init__(self, prefix: str = "wbb"):
        tag = uuid.uuid4().hex[:6]
        self.ns, self.tx, self.rx = f"{prefix}-{tag}", f"{prefix}{tag}a", f"{prefix}{tag}b"
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.tx, "type", "veth", "peer", "name", self.rx, "netns", self.ns)
        sh("sysctl", "-qw", f"net.ipv6.conf.{self.tx}.disable_ipv6=1")
        sh("ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "link", "set", self.tx, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.rx, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def close(self):
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "link", "del", self.tx, check=False)


def bench_capture(packets: int, seed: int = 11, suffix: str = "pcap", bad_rate: float = 0.02,
                  market: bool = False) -> Path:
    """A synthetic capture of about ``packets`` packets, generated once and cached
    (``market``: with its snapshot in ``<capture>.market/`` and injected opportunities)."""
    from workbench.synth.generate import generate_capture
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{'market' if market else 'bench'}-{packets}-s{seed}.{suffix}"
    if not path.exists():
        tps = 50_000.0
        t = time.perf_counter()
        kw = dict(market=True) if market else dict(bad_rate=bad_rate)
        generate_capture(path, seconds=packets / tps, tps=tps, seed=seed, **kw)
        print(f"# generated {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def median_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def table(title: str, rows: list[tuple], headers: tuple) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print(f"\n## {title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    sys.stdout.flush()
