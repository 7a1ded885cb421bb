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
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import pyarrow.ipc as ipc  # noqa: E402

from chain_rpc import RpcServer, block, capture_frames, capture_transactions, ok_meta  # noqa: E402
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


# --- --transactions N: the scale run (fetch, write and replay >= 1M transactions, peak RSS) -----------------

def distinct_copy(tx: bytes, r: int, at: int = 0) -> bytes:
    """Copy ``r`` of a transaction whose wire bytes start at ``at``: the leading 8 bytes of its first
    signature (the engine's duplicate filter key) XORed with ``r``, so every copy is a distinct
    transaction (signatures are not verified by the engine or by solders' parse)."""
    if r == 0:
        return tx
    s = at + 1                      # after the compact-u16 signature count (1 byte below 128)
    v = int.from_bytes(tx[s:s + 8], "little") ^ r
    return tx[:s] + v.to_bytes(8, "little") + tx[s + 8:]


class ScaleBlocks(Mapping):
    """slot -> getBlock result as JSON text, COMPOSED on request from ``base`` transactions repeated as
    distinct copies (the server holds the base transactions, never the range: its memory stays that of
    one block). A copy's base64 differs from its base's in the first 16 characters only (12 bytes), so a
    block is joined from cached text: the server costs little beside the client it serves."""

    def __init__(self, base: list[bytes], first: int, n_tx: int, per_block: int):
        self.b64 = [base64.b64encode(t).decode() for t in base]
        self.base, self.first, self.n_tx, self.per = base, first, n_tx, per_block
        self.n_blocks = -(-n_tx // per_block)
        self.meta = json.dumps(ok_meta(), separators=(",", ":"))

    def __len__(self):
        return self.n_blocks

    def __iter__(self):
        return iter(range(self.first, self.first + self.n_blocks))

    def __getitem__(self, slot):
        k = slot - self.first
        if not 0 <= k < self.n_blocks:
            raise KeyError(slot)
        txs = []
        n = len(self.base)
        for i in range(k * self.per, min(self.n_tx, (k + 1) * self.per)):
            r, j = divmod(i, n)
            t = self.b64[j] if r == 0 else base64.b64encode(distinct_copy(self.base[j][:12], r)).decode() + \
                self.b64[j][16:]
            txs.append(f'{{"transaction":["{t}","base64"],"meta":{self.meta},"version":0}}')
        head = json.dumps(block([], slot), separators=(",", ":"))[:-len('[]}')]
        return (head + "[" + ",".join(txs) + "]}").encode()


def write_udp_capture(frames: list[tuple[bytes, int]], n_tx: int, path: Path) -> None:
    """The same ``n_tx`` transactions as ScaleBlocks, as UDP frames (the capture's own frames, copies patched)."""
    from workbench.capture.pcap import PcapWriter
    w = PcapWriter(path)
    n = len(frames)
    ts = 1_761_676_473 * 10**9
    for i in range(n_tx):
        r, j = divmod(i, n)
        frame, at = frames[j]
        w.write(distinct_copy(frame, r, at), ts + i * 1000)
    w.close()


def _run(cmd: list[str]) -> tuple[float, int, str]:
    """(wall s, peak RSS bytes, stdout) of a child process (os.wait4's ru_maxrss)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), WORKBENCH_PROGRESS="0")
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-3000:]}")
    return wall, ru.ru_maxrss * 1024, out


def scale(args, market: str) -> None:
    """Medians of ``--repeat`` runs (the two replays alternate); peak RSS is the largest of the runs."""
    cli = [sys.executable, "-m", "workbench.cli"]
    frames = capture_frames(args.capture)
    base = [f[at:] for f, at in frames]
    n_tx = args.transactions
    slots = ScaleBlocks(base, FIRST_SLOT, n_tx, args.per_block)
    print(f"# uptime: {os.popen('uptime').read().strip()}", flush=True)
    med = statistics.median
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        blocks, pcap = tmp / "blocks.arrow", tmp / "same.pcap"
        fetch = []
        with RpcServer({}, blocks=slots) as srv:
            for _ in range(args.repeat):
                wall, rss, _ = _run(cli + ["blocks", "--rpc", srv.url, "--from", str(FIRST_SLOT), "--to",
                                           str(FIRST_SLOT + len(slots) - 1), "--out", str(blocks), "--market", market])
                fetch.append((wall, rss))
        write_udp_capture(frames, n_tx, pcap)
        _run(cli + ["replay", str(args.capture), "--market", market, "--no-db", "--quiet", "--out", str(tmp / "w")])
        runs = {"blocks file": [], "UDP capture": []}
        for _ in range(args.repeat):
            for name, src in (("blocks file", blocks), ("UDP capture", pcap)):
                out = tmp / name[:3]
                wall, rss, _ = _run(cli + ["replay", str(src), "--market", market, "--no-db", "--quiet", "--out",
                                           str(out)])
                sm = json.loads((out / "summary.json").read_text())
                runs[name].append((sm["packets"], sm["transactions"], sm["engine_s"], sm["wall_s"], wall, rss))
                shutil.rmtree(out)
        rows = []
        for name, src in (("blocks file", blocks), ("UDP capture", pcap)):
            r = runs[name]
            ntx = r[0][1]
            rows.append((name, f"{r[0][0]:,}", f"{ntx:,}", f"{src.stat().st_size / 1e6:,.0f}",
                         f"{ntx / med(x[2] for x in r):,.0f}", f"{ntx / med(x[3] for x in r):,.0f}",
                         f"{ntx / med(x[4] for x in r):,.0f}", f"{max(x[5] for x in r) / 2**20:,.0f}"))
        fetch_s = med(w for w, _ in fetch)
        print(f"\n## workbench blocks (a process each; median of {args.repeat}): {len(slots):,} getBlock, {n_tx:,} "
              f"transactions in {fetch_s:.1f} s: {len(slots) / fetch_s:,.1f} getBlock/s, {n_tx / fetch_s:,.0f} "
              f"transactions/s written (runs {', '.join(f'{w:.1f}' for w, _ in fetch)} s), peak RSS "
              f"{max(r for _, r in fetch) / 2**20:,.0f} MiB; file {blocks.stat().st_size / 1e6:,.0f} MB", flush=True)
        table(f"replay, a process each, medians of {args.repeat} (engine: the engine's time; run: the run's wall "
              f"time after warm-up; process: the whole command)", rows,
              ("source", "packets", "transactions", "file MB", "engine tx/s", "run tx/s", "process tx/s",
               "peak RSS MiB"))
    print(f"# uptime: {os.popen('uptime').read().strip()}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=REPO / "captures" / "market.pcapng")
    ap.add_argument("--market", type=Path, default=None, help="snapshot folder (default: <capture>.market)")
    ap.add_argument("--per-block", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transactions", type=int, default=0,
                    help="the scale run: this many distinct transactions (the capture's, repeated with changed "
                         "signatures) fetched by `workbench blocks`, then both files replayed, each a process of "
                         "its own with its peak RSS")
    ap.add_argument("--tmp", type=Path, default=None, help="folder for the scale run's files (default: the system's)")
    args = ap.parse_args()
    market = str(args.market or str(args.capture) + ".market")
    if args.transactions:
        return scale(args, market)
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
