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
from workbench.engine.state import new_state
from workbench.engine.deshred import new_deshred_state
from workbench.engine.tables import KeyNames, tx_table
b = next(iter(open_capture({cap!r})))
st, ds, out = new_state(), new_deshred_state(), new_batch_out(b.n)
nxt, n_tx, _, _ = process_batch(b, st, ds, out, 0, None, None)
tx_table(out.tx[:n_tx], out.prog_ids, KeyNames(st.keys))
print(time.perf_counter() - t0)
"""


def run(cap, cache_dir) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    env.pop("NUMBA_BOUNDSCHECK", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), cap=str(cap))], env=env,
                         capture_output=True, text=True, check=True)
    inner = float(out.stdout.strip().splitlines()[-1])
    return time.perf_counter() - t, inner


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    cap = bench_capture(200_000)
    cold, warm = [], []
    for _ in range(a.repeat):
        with tempfile.TemporaryDirectory() as d:
            cold.append(run(cap, d))
            warm.append(run(cap, d))
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    table(f"time to first processed batch (fresh process, median of {a.repeat})",
          [("empty numba cache", f"{med(cold, 0):.2f}", f"{med(cold, 1):.2f}"),
           ("warm numba cache", f"{med(warm, 0):.2f}", f"{med(warm, 1):.2f}")],
          ("cache", "process wall s", "after interpreter start s"))
    print(f"\ncold {med(cold, 0):.1f} s (goal <= 20 s), warm {med(warm, 0):.2f} s (goal <= 2 s); "
          f"warm is {med(cold, 0) / med(warm, 0):.1f}x faster")


if __name__ == "__main__":
    main()
