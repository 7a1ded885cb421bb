"""Market snapshot of 1,000 pools from a local JSON-RPC server: requests and seconds.

Ours: ``snapshot_from_rpc`` (getMultipleAccounts, 100 keys per request, ``--concurrency``
in flight, then the engine's write, validating load and rename). Peer: what most scripts do,
one ``getAccountInfo`` per account with ``requests`` (a Session, so connections are reused),
for the same accounts (pools, vaults, mints, AmmConfigs), decoding nothing. Both talk to the
same loopback server (tests/chain_rpc.py: the real pool accounts of tests/fixtures/chain,
copied to made-up addresses to reach the pool count, with composed vaults and mints).

    python benchmarks/bench_snapshot.py [--pools 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import base58
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from chain_rpc import RpcServer, fixture_market  # noqa: E402
from workbench.runner.chain_snapshot import snapshot_from_rpc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    table, cases = fixture_market(REPO / "tests" / "fixtures" / "chain" / "accounts")
    real = list(cases)
    pools = []
    for i in range(args.pools):
        addr = base58.b58encode(hashlib.sha256(f"bench pool {i}".encode()).digest()).decode()
        table[addr] = table[real[i % len(real)]]
        pools.append(addr)
    for a in real:                      # only the copies are pools of this snapshot
        del table[a]
    with RpcServer(table) as srv, tempfile.TemporaryDirectory() as tmp:
        res = snapshot_from_rpc(srv.url, Path(tmp) / "snap", pools, concurrency=args.concurrency)
        ours_requests, ours_s = res.requests, res.seconds

        keys = list(table)              # every account the snapshot read, each once
        n0 = len(srv.requests)
        t0 = time.perf_counter()
        with requests.Session() as s:
            for i, k in enumerate(keys):
                r = s.post(srv.url, json={"jsonrpc": "2.0", "id": i, "method": "getAccountInfo",
                                          "params": [k, {"encoding": "base64", "commitment": "confirmed"}]})
                r.raise_for_status()
                assert r.json()["result"]["value"] is not None, k
        peer_s = time.perf_counter() - t0
        peer_requests = len(srv.requests) - n0

    print(f"snapshot of {args.pools:,} pools ({res.accounts:,} accounts), local JSON-RPC server on loopback")
    print(f"{'':34s}{'requests':>10s}{'seconds':>10s}")
    print(f"{'ours: getMultipleAccounts x100':34s}{ours_requests:>10,}{res.fetch_s:>10.3f}   "
          f"(concurrency {args.concurrency}; fetch and decode)")
    print(f"{'  + write, engine validating load':34s}{'':>10s}{ours_s:>10.3f}   (the whole snapshot)")
    print(f"{'peer: getAccountInfo each':34s}{peer_requests:>10,}{peer_s:>10.3f}   (requests.Session, fetch only)")
    print(f"ratio: {peer_requests / ours_requests:.0f}x fewer requests; fetch {peer_s / res.fetch_s:.1f}x faster, "
          f"whole snapshot {peer_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
