"""Start-up: seconds from process start to the first processed batch, empty vs warm numba cache.

Each run is a fresh interpreter. "cold" uses an empty NUMBA_CACHE_DIR (everything is
compiled), "warm" reuses it. Goal: <= 20 s cold, <= 2 s warm. Peer: the same import +
first batch with dpkt + solders (no compilation at all).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, bench_capture, table

SCRIPT = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from workbench.capture import open_capture
from workbench.engine.pipeline import new_batch_out, process_batch
from workbench.engine.state import new_state, market_of
from workbench.engine.deshred import new_deshred_state
from workbench.engine.tables import KeyNames, tx_table
from workbench.runner import warm_up
b = next(iter(open_capture({cap!r})))
st, ds, out = new_state(tip_lamports=0), new_deshred_state(), new_batch_out(b.n)
mk = market_of({market!r}, st)
warm_up(b.buf, st, ds, out, mk, None, {market!r})     # what `workbench replay` does first
nxt, n_tx, _, _ = process_batch(b, st, ds, out, 0, mk, None)
tx_table(out.tx[:n_tx], out.prog_ids, KeyNames(st.keys))
print(time.perf_counter() - t0)
"""


def run(cap, cache_dir, market: str = "") -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBA_BOUNDSCHECK", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), cap=str(cap), market=market)], env=env,
                         capture_output=True, text=True, check=True)
    inner = float(out.stdout.strip().splitlines()[-1])
    return time.perf_counter() - t, inner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--market", action="store_true", help="also the market capture with its snapshot (make demo)")
    a = ap.parse_args()
    cap = bench_capture(200_000)
    cases = [("spine (no market)", cap, "")]
    if a.market:
        m = REPO / "captures" / "market.pcapng"
        cases.append(("with market (make demo)", m, str(m) + ".market"))
    rows = []
    for name, c, mk in cases:
        cold, warm = [], []
        for _ in range(a.repeat):
            with tempfile.TemporaryDirectory() as d:
                cold.append(run(c, d, mk))
                warm.append(run(c, d, mk))
        med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
        rows += [(name, "empty numba cache", f"{med(cold, 0):.2f}", f"{med(cold, 1):.2f}"),
                 (name, "warm numba cache", f"{med(warm, 0):.2f}", f"{med(warm, 1):.2f}")]
        if not mk:
            spine = (med(cold, 0), med(warm, 0))
    table(f"time to first processed batch (fresh process, median of {a.repeat})", rows,
          ("engine", "cache", "process wall s", "after interpreter start s"))
    cold, warm = spine
    print(f"\nspine: cold {cold:.1f} s (goal <= 20 s), warm {warm:.2f} s (goal <= 2 s); "
          f"warm is {cold / warm:.1f}x faster")


if __name__ == "__main__":
    main()
