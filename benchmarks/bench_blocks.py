"""Backfilled blocks replayed: transactions/s, beside the UDP capture of the same transactions and a solders peer.

The transactions of a capture (default the bundled market capture, with its snapshot) are
served by the loopback JSON-RPC server (tests/chain_rpc.py) as COMPOSED blocks of
``--per-block`` transactions; ``backfill_blocks`` fetches them into a blocks file (timed:
slots/s). Then, in one run, medians of ``--repeat``:

1. ``replay`` of the blocks file (the engine alone, ``engine_s``, and end to end, ``wall_s``);
2. ``replay`` of the UDP capture itself (bench_replay's path), same transactions;
3. the peer: solders ``VersionedTransaction.from_bytes`` of every transaction of the blocks
   file, read with pyarrow (what a script over getBlock output would do first).

Transactions/s of each and the ratios are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import pyarrow.ipc as ipc  # noqa: E402

from chain_rpc import RpcServer, block, capture_transactions, ok_meta  # noqa: E402
from common import table  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.runner.chain_blocks import backfill_blocks  # noqa: E402
from workbench.runner.replay import replay  # noqa: E402

FIRST_SLOT = 376_500_000


def peer(path: Path) -> int:
    from solders.transaction import VersionedTransaction
    n = 0
    f_ipc = ipc.open_file(path)
    for k in range(f_ipc.num_record_batches):
        for f in f_ipc.get_batch(k).column("frame").to_pylist():
            VersionedTransaction.from_bytes(f[16:])
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=REPO / "captures" / "market.pcapng")
    ap.add_argument("--market", type=Path, default=None, help="snapshot folder (default: <capture>.market)")
    ap.add_argument("--per-block", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    market = str(args.market or str(args.capture) + ".market")
    txs = capture_transactions(args.capture)
    slots = {FIRST_SLOT + k: block([(t, ok_meta()) for t in txs[i:i + args.per_block]], FIRST_SLOT + k)
             for k, i in enumerate(range(0, len(txs), args.per_block))}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        blocks = tmp / "blocks.arrow"
        with RpcServer({}, blocks=slots) as srv:
            t = time.perf_counter()
            res = backfill_blocks(srv.url, FIRST_SLOT, FIRST_SLOT + len(slots) - 1, blocks)
            fetch_s = time.perf_counter() - t
        settings = Settings(progress=False, market=market)
        replay(blocks, tmp / "warm", settings)               # compile / load the cache outside the clock
        replay(args.capture, tmp / "warm2", settings)
        rows = []
        figures = {}
        for name, src in (("blocks file", blocks), ("UDP capture", args.capture)):
            eng, e2e, ntx = [], [], 0
            for r in range(args.repeat):
                out = replay(src, tmp / f"{name[:3]}{r}", settings)
                eng.append(out.engine_s)
                e2e.append(out.wall_s)
                ntx = out.transactions
            figures[name] = (ntx / statistics.median(eng), ntx / statistics.median(e2e))
            rows.append((name, f"{ntx:,}", f"{figures[name][0]:,.0f}", f"{figures[name][1]:,.0f}"))
        pt = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            n = peer(blocks)
            pt.append(time.perf_counter() - t)
        figures["peer"] = (n / statistics.median(pt), n / statistics.median(pt))
        rows.append(("peer: pyarrow + solders from_bytes", f"{n:,}", f"{figures['peer'][0]:,.0f}", "-"))
        table(f"replay, transactions/s (medians of {args.repeat}); {len(slots)} blocks fetched in {fetch_s:.2f} s "
              f"({res.requests} requests, {len(slots) / fetch_s:,.0f} slots/s)",
              rows, ("source", "transactions", "engine tx/s", "end to end tx/s"))
        b, u, p = figures["blocks file"], figures["UDP capture"], figures["peer"]
        table("ratios", [("blocks / UDP capture, engine", f"{b[0] / u[0]:.2f}x"),
                         ("blocks / UDP capture, end to end", f"{b[1] / u[1]:.2f}x"),
                         ("blocks engine / peer", f"{b[0] / p[0]:.1f}x"),
                         ("blocks end to end / peer", f"{b[1] / p[0]:.1f}x")], ("ratio", "value"))


if __name__ == "__main__":
    main()
