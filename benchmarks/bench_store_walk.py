"""A cursor walk through the store: every page of `GET /v1/opportunities?limit=L`, each asked with
the cursor the one before gave, ours beside the obvious peer in one run.

The store is filled first by posting ``--rows`` rows (bench_api's row shape, rising times) to a
`workbench serve`, which then stops, so that the walk's pages all come from the store (a server's
memory holds only the rows it saw itself). Each walk is made by a freshly started server (a page
asked twice at one data version is answered from the cache) with one httpx client, a page at a
time, and timed page by page: the figures are pages a second and the page's p50 and p99, median
of ``--repeat`` walks.

Peer: the same keyset walk written the obvious way, a FastAPI route that runs one clickhouse-connect
query a page (``WHERE (timestamp, id) > cursor ORDER BY ... LIMIT L``) and returns
``df.to_dict("records")``. One chDB folder opens in one process at a time, so the servers walk one
after the other, alternating walk by walk. ``--base DIR`` also walks with `workbench serve` from
another checkout (e.g. a worktree of the commit before a change), on the same store.

    python benchmarks/bench_store_walk.py [--rows 20000] [--limits 10,100] [--repeat 3] [--base DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import free_port, wait_up  # noqa: E402

T0 = 1_750_000_000_000_000_000
POST_ROWS = 1_000               # rows per POST while filling the store

PEER = textwrap.dedent('''
    import sys
    import clickhouse_connect
    import numpy as np
    from fastapi import FastAPI

    client = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1])
    app = FastAPI()

    @app.get("/v1/opportunities")
    def opportunities(limit: int = 100, cursor: str | None = None):
        where, params = "", {"n": limit + 1}
        if cursor:
            ts, oid = cursor.split(":")
            where = ("WHERE (toUnixTimestamp64Nano(timestamp), toString(opportunity_id)) > "
                     "({ts:Int64}, {id:String})")
            params.update(ts=int(ts), id=oid)
        df = client.query_df(f"SELECT * FROM default.mev_opportunities {where} "
                             "ORDER BY timestamp, toString(opportunity_id) LIMIT {n:UInt32}", parameters=params)
        more = len(df) > limit
        df = df.iloc[:limit]
        df["opportunity_id"] = df["opportunity_id"].astype(str)
        nxt = f"{df['timestamp'].iloc[-1].value}:{df['opportunity_id'].iloc[-1]}" if more else None
        return {"rows": df.replace({np.nan: None}).to_dict("records"), "next_cursor": nxt}

    if __name__ == "__main__":
        import uvicorn
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)
''')


def rows(n: int) -> list[dict]:
    """``n`` rows of a detector's shape, times rising (a few share one), ids random."""
    types = ("sandwich", "arbitrage", "liquidation")
    return [{"timestamp_ns": T0 + (i // 3) * 1_000, "opportunity_id": str(uuid.uuid4()), "type": types[i % 3],
             "profit": 0.01 * (i % 97), "pools": ["PoolA", "PoolB"][: 1 + i % 2], "run_id": "bench",
             "score": 0.5, "slot": 300_000_000 + i // 50, "victim_signature": "S" * 88,
             "trigger_signature": "T" * 88} for i in range(n)]


class Serve:
    """`workbench serve` on ``store`` (from checkout ``tree`` when given), up."""

    def __init__(self, store: Path, tmp: Path, tree: str | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
        self.log = tmp / "serve.log"
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--db", f"chdb://{store}",
                                          "-o", str(tmp / "out"), "--port", str(self.port)],
                                         cwd=tmp, env=env, stderr=err)
        wait_up(self.base + "/healthz", self.proc, log=self.log)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def peer(store: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    path = tmp / "peer.py"
    path.write_text(PEER)
    port = free_port()
    log = tmp / "peer.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, str(path), str(store), str(port)], cwd=tmp, stderr=err)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/v1/opportunities?limit=1", proc, log=log)
    return proc, base


def walk(base: str, limit: int) -> tuple[int, list[float], float]:
    """Every page from the first: (rows, each page's seconds, the walk's seconds)."""
    seen, times, cursor = 0, [], None
    with httpx.Client(timeout=60) as http:
        start = time.perf_counter()
        while True:
            t = time.perf_counter()
            r = http.get(base + "/v1/opportunities", params={"limit": limit, **({"cursor": cursor} if cursor else {})})
            times.append(time.perf_counter() - t)
            r.raise_for_status()
            body = orjson.loads(r.content)
            seen += len(body["rows"])
            cursor = body["next_cursor"]
            if not cursor:
                return seen, times, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000, help="rows in the store")
    ap.add_argument("--limits", default="10,100", help="page sizes, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="walks per server and page size (figures: medians)")
    ap.add_argument("--base", metavar="DIR", help="also walk with `workbench serve` from this checkout")
    a = ap.parse_args()
    limits = [int(x) for x in a.limits.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-walk-") as tmp:
        tmp = Path(tmp)
        store = tmp / "store"
        s = Serve(store, tmp)
        try:
            all_rows = rows(a.rows)
            with httpx.Client(timeout=120) as http:
                for i in range(0, len(all_rows), POST_ROWS):
                    http.post(s.base + "/v1/opportunities", content=orjson.dumps(all_rows[i:i + POST_ROWS])
                              ).raise_for_status()
        finally:
            s.stop()
        ways = ["ours"] + (["base"] if a.base else []) + ["peer"]
        res: dict[tuple[str, int], list] = {}
        print(f"store: {a.rows} rows posted, then every walk by a server started afresh on it; "
              f"{a.repeat} walks per server and page size, alternating", flush=True)
        for limit in limits:
            for k in range(a.repeat):
                for way in ways:
                    if way == "peer":
                        proc, base = peer(store, tmp)
                        stop = lambda: (proc.terminate(), proc.wait(60))  # noqa: E731
                    else:
                        srv = Serve(store, tmp, str(Path(a.base).resolve()) if way == "base" else None)
                        base, stop = srv.base, srv.stop
                    try:
                        n, times, total = walk(base, limit)
                    finally:
                        stop()
                    assert n == a.rows, f"{way} walked {n} rows of {a.rows}"
                    times.sort()
                    res.setdefault((way, limit), []).append(
                        (len(times) / total, times[len(times) // 2] * 1e3, times[int(len(times) * 0.99)] * 1e3))
                    print(f"  limit {limit:>4} walk {k + 1} {way:>4}: {len(times)} pages, {len(times) / total:8.0f} "
                          f"pages/s, p50 {times[len(times) // 2] * 1e3:6.2f} ms", flush=True)
    print()
    print(f"| page size | server | pages/s | page p50 | page p99 | pages/s vs peer |")
    print("| --- | --- | --- | --- | --- | --- |")
    for limit in limits:
        peer_rate = statistics.median(r[0] for r in res[("peer", limit)])
        for way in ways:
            got = res[(way, limit)]
            rate = statistics.median(r[0] for r in got)
            print(f"| {limit} | {way} | {rate:,.0f} | {statistics.median(r[1] for r in got):.2f} ms | "
                  f"{statistics.median(r[2] for r in got):.2f} ms | {rate / peer_rate:.2f}x |")
    print(json.dumps({f"{w}/{lim}": v for (w, lim), v in res.items()}))


if __name__ == "__main__":
    main()
