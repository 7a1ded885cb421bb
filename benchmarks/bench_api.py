"""`GET /v1/opportunities?type=sandwich&limit=100` at fixed request rates: ours beside the
obvious peer, in one run.

Ours: `workbench serve` (Starlette on uvicorn with uvloop and httptools, the store read through a
read-only session, rows encoded with orjson). Peer: the same route written the obvious way,
FastAPI returning ``df.to_dict("records")`` from a clickhouse-connect query (NaN turned into None,
or FastAPI refuses the body). Both run as separate processes, one after the other, on the
same embedded store, which a replay of the market capture fills first. One chDB folder opens
in one process at a time, so they cannot run side by side.

The load is open-loop: requests are due at fixed intervals and go out over a pool of
keep-alive connections. Latency is measured from when a request was due, so a server that falls
behind is charged for the wait (no coordinated omission). The client is Python on the same
shared cores, so the figures are a floor on what the servers can do. The issue's goal is p99 < 2
ms at 5,000 requests/s on 2 cores, and wrk with a Lua script is the issue's tool for that run.

    python benchmarks/bench_api.py [--rates 50,100,200] [--seconds 3] [--conns 16]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
PATH = "/v1/opportunities?type=sandwich&limit=100"

PEER = textwrap.dedent('''
    import sys
    import clickhouse_connect
    import numpy as np
    from fastapi import FastAPI

    client = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1])
    app = FastAPI()

    @app.get("/v1/opportunities")
    def opportunities(type: str | None = None, limit: int = 100):
        df = client.query_df("SELECT * FROM default.mev_opportunities WHERE type = {t:String} "
                             "ORDER BY timestamp LIMIT {n:UInt32}", parameters={"t": type, "n": limit})
        df["opportunity_id"] = df["opportunity_id"].astype(str)
        return df.replace({np.nan: None}).to_dict("records")

    if __name__ == "__main__":
        import uvicorn
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, budget_s: float = 180) -> None:
    end = time.monotonic() + budget_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"the server at {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {budget_s} s")


async def load(port: int, rate: float, seconds: float, conns: int) -> tuple[list[float], int, int]:
    """Open-loop GETs at ``rate``/s for ``seconds``: latencies (s, from when each was due), errors, sent."""
    req = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    n = int(rate * seconds)
    due = asyncio.Queue()
    lat: list[float] = []
    errors = 0

    async def worker():
        nonlocal errors
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while True:
            t_due = await due.get()
            if t_due is None:
                w.close()
                return
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            await r.readexactly(length)
            if status != 200:
                errors += 1
            lat.append(time.perf_counter() - t_due)

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        t = t0 + i / rate
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due.put_nowait(t)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return lat, errors, n


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))] * 1e3


def bench(name: str, port: int, rates: list[float], seconds: float, conns: int) -> dict:
    out = {}
    asyncio.run(load(port, 50, 1.0, conns))                 # warm: connections, caches, first queries
    for rate in rates:
        lat, errors, n = asyncio.run(load(port, rate, seconds, conns))
        out[rate] = (pct(lat, 50), pct(lat, 99), pct(lat, 99.9), errors, n)
        print(f"{name:5} {rate:7,.0f}/s  p50 {out[rate][0]:8.2f} ms  p99 {out[rate][1]:8.2f} ms  "
              f"p99.9 {out[rate][2]:8.2f} ms  errors {errors}/{n}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="50,100,200")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=16)
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp = Path(tmp)
        store = tmp / "store"
        port = free_port()
        ours = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--replay", str(CAPTURE),
                                 "--market", str(MARKET), "--db", f"chdb://{store}", "-o", str(tmp / "run"),
                                 "--port", str(port)], cwd=tmp, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"http://127.0.0.1:{port}/healthz", ours)
            while httpx.get(f"http://127.0.0.1:{port}/v1/stats").json()["run"]["phase"] not in ("done", "failed"):
                time.sleep(0.2)
            rows = len(httpx.get(f"http://127.0.0.1:{port}{PATH}").json()["rows"])
            print(f"store: {rows} sandwich rows per answer; {a.conns} connections, {a.seconds:g} s per rate")
            res_ours = bench("ours", port, rates, a.seconds, a.conns)
        finally:
            ours.terminate()
            ours.wait(30)
        peer_py = tmp / "peer.py"
        peer_py.write_text(PEER)
        port = free_port()
        peer = subprocess.Popen([sys.executable, str(peer_py), str(store), str(port)], cwd=tmp,
                                stderr=subprocess.DEVNULL, env={**os.environ})
        try:
            wait_up(f"http://127.0.0.1:{port}{PATH}", peer)
            res_peer = bench("peer", port, rates, a.seconds, a.conns)
        finally:
            peer.terminate()
            peer.wait(30)
    print("\nratio peer/ours (p99):", "  ".join(f"{r:,.0f}/s: {res_peer[r][1] / res_ours[r][1]:.1f}x"
                                              for r in rates))


if __name__ == "__main__":
    main()
