"""`GET /v1/opportunities?type=sandwich&limit=100` and `POST /v1/opportunities` at fixed request
rates under wrk: ours beside the obvious peer, in one run.

Ours: `workbench serve` (Starlette on uvicorn with uvloop and httptools, rows encoded with orjson).
Peer: the same routes written the obvious way, FastAPI returning ``df.to_dict("records")`` from a
clickhouse-connect query (NaN turned into None, or FastAPI refuses the body), and posting with
``pd.DataFrame(rows)`` into ``client.insert_df``. Both run as separate processes, one after the
other, on the same embedded store, which a replay of the market capture fills first: one chDB
folder opens in one process at a time, so they cannot run side by side.

The load is wrk's (the issue's tool; Debian package ``wrk``) with benchmarks/wrk_fixed_rate.lua:
each wrk thread keeps a schedule of due times at the offered rate and wrk's ``delay()`` holds a
connection whose answer came until the next one, with enough connections that one is free when a
request is due. wrk waits for an answer before a connection's next request, so a server that
falls behind gets fewer requests than offered: the achieved rate is printed beside the offered
one, and a row whose achieved rate falls short is the server saturating (its latencies then do
not count the requests it never got). POST sends batches of ``--post-rows`` rows
with fresh opportunity ids every request (the Lua script makes them), so every row is new to the
store, each with its own detection time (the wall clock, rising row by row, as a detector's rows
come; ``--one-time`` posts every row at the template's one time instead). Every figure is the
median of ``--repeat`` runs. wrk runs on the same shared cores as the servers, loopback only.
Beside wrk's latencies, a POST row of ours prints the server's own (``server``: its
``post_answer_ns`` histogram read before and after each run, from a post's last bytes read to its
answer written), which leaves out the time a request waits in wrk and in the socket's buffers.
Every row also prints the server's CPU a request answered, all its threads and its event loop
(from /proc around each run): the share of a core a rate takes, which does not depend on how busy
the machine is, and the budget a faster server would have to fit.

``--base DIR`` runs a second `workbench serve` from another checkout (e.g. a worktree of the
commit before a change) beside ours, each on its own store filled by the same replay, and
alternates the two run by run at every rate, so a before/after comparison shares the machine's
load; the ratios ours/base are printed at the end. ``--routes`` picks GET and/or POST,
``--no-peer`` leaves the peer out. ``--serve-args`` adds serve flags to ours alone (with ``--base .``
the same checkout runs with and without them, alternating).

``--cpus SERVER/CLIENT`` (CPU lists, e.g. ``0/1``) keeps the servers, every thread of theirs (the
store's included), on the first CPUs and wrk on the others, so the load generator no longer takes
CPU time from the server it measures, as on a machine whose clients are elsewhere; without it
everything shares every CPU. With ``--base`` both servers share the servers' CPUs, the one not
measured included (its store's background work after its own run): compare the two one at a time.

    python benchmarks/bench_api.py [--rates 100,1000,5000,10000] [--seconds 3] [--repeat 3]
                                   [--routes GET,POST] [--base DIR] [--no-peer] [--lone N] [--cpus 0/1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx

from workbench.errors import TuneError
from workbench.host.tune.paths import parse_cpu_list

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
LUA = Path(__file__).resolve().parent / "wrk_fixed_rate.lua"
GET_PATH = "/v1/opportunities?type=sandwich&limit=100"
POST_PATH = "/v1/opportunities"
CONN_PER_RATE = 1 / 100        # connections per offered request/s: each may take ~10 ms per request
WRK_THREADS = 2               # the machine's cores
WRK_TIMEOUT_S = 2             # a request unanswered this long counts as a timeout
LONE_GAP_S = 0.005            # --lone: the pause between two posts
SERVER_KEYS = ("server_p50_us", "server_p99_us", "server_p99.9_us")   # the server's own timing of a run's posts
CPU_KEYS = ("cpu_us", "loop_cpu_us")     # the server's CPU a request answered: all its threads, its event loop
INSTALL_HINT = "wrk is not installed: `apt-get install -y wrk` (Debian package)"


def need_wrk() -> None:
    """End the bench with the install hint when wrk is missing."""
    if shutil.which("wrk") is None:
        sys.exit(INSTALL_HINT)


# --cpus: the CPUs of the servers and of wrk (None: every CPU, shared); set by main
SERVER_CPUS: set[int] | None = None
CLIENT_CPUS: set[int] | None = None


def pinned(cpus: set[int] | None):
    """A ``preexec_fn`` binding a child (and every thread it starts) to ``cpus``; None: no binding."""
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


PEER = textwrap.dedent('''
    import sys
    import clickhouse_connect
    import numpy as np
    import pandas as pd
    from fastapi import FastAPI

    client = clickhouse_connect.get_client(interface="chdb", path=sys.argv[1])
    app = FastAPI()

    @app.get("/v1/opportunities")
    def opportunities(type: str | None = None, limit: int = 100):
        df = client.query_df("SELECT * FROM default.mev_opportunities WHERE type = {t:String} "
                             "ORDER BY timestamp LIMIT {n:UInt32}", parameters={"t": type, "n": limit})
        df["opportunity_id"] = df["opportunity_id"].astype(str)
        return df.replace({np.nan: None}).to_dict("records")

    @app.post("/v1/opportunities", status_code=201)
    def post_opportunities(rows: list[dict]):
        df = pd.DataFrame(rows).replace({None: np.nan})        # JSON null: NaN, as the table stores it
        df["timestamp"] = pd.to_datetime(df.pop("timestamp_ns"), unit="ns")
        client.insert_df("default.mev_opportunities", df)
        return {"inserted": len(df)}

    if __name__ == "__main__":
        import uvicorn
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, budget_s: float = 180, log: Path | None = None) -> None:
    """Wait until ``url`` answers; a server that exits first ends the bench, with the tail of its
    ``log`` (its stderr) when given."""
    end = time.monotonic() + budget_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log else []
            sys.exit("\n".join([f"the server at {url} exited with {proc.returncode}"
                                + (f"; the end of {log}:" if tail else ""), *tail]))
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {budget_s} s")


def wrk_once(url: str, rate: float, seconds: float, template: Path | None, post_rows: int) -> dict:
    """One wrk run at ``rate`` requests/s offered: the Lua script's figures plus the achieved rate."""
    conns = max(2, round(rate * CONN_PER_RATE))
    threads = min(WRK_THREADS, conns)
    env = {**os.environ, "WB_RATE": str(rate), "WB_THREADS": str(threads), "WB_POST_ROWS": str(post_rows),
           "WB_NONCE": str(secrets.randbelow(1 << 31)), "WB_POST_TEMPLATE": str(template or "")}
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s",
           "--timeout", f"{WRK_TIMEOUT_S}s", "-s", str(LUA), url]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=pinned(CLIENT_CPUS))
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("{")), None)
    if r.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    out = json.loads(line)
    out["achieved"] = out["requests"] / (out["duration_us"] / 1e6)
    out["errors"] = sum(out[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                         "timeouts"))
    return out


def check_answer(url: str, template: Path | None) -> None:
    """One request as wrk makes them: a route answering with an error is said, with its answer."""
    if template is None:
        r = httpx.get(url, timeout=30)
    else:
        row = (template.read_text().replace("__ID__", f"{secrets.randbelow(1 << 31):08x}-0000-4000-8000-000000000000")
               .replace("__TS__", str(time.time_ns())))
        r = httpx.post(url, content=f"[{row}]", headers={"content-type": "application/json"}, timeout=30)
    if r.status_code >= 400:
        print(f"  {url} answers {r.status_code}: {r.text[:400]}", flush=True)


def answer_buckets(base: str) -> dict[int, int] | None:
    """The server's own timing of POST answers (``post_answer_ns`` in /v1/latency: a post's last bytes
    read to its answer written), {bucket's high end (ns): count}: empty from a server that keeps none
    (an older checkout), None when /v1/latency cannot be read."""
    try:
        got = httpx.get(base + "/v1/latency", timeout=30).json().get("post_answer_ns")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return {} if got is None else {hi: n for _, hi, n in got["buckets"]}


def run_percentiles(before: dict[int, int], after: dict[int, int], qs=(50, 99, 99.9)) -> dict[str, float]:
    """Percentiles (µs, each the high end of its bucket) of the answers timed between two readings."""
    delta = sorted((hi, n - before.get(hi, 0)) for hi, n in after.items() if n > before.get(hi, 0))
    total = sum(n for _, n in delta)
    out = {}
    for q in qs:
        rank, seen = max(1, math.ceil(q / 100 * total)), 0
        for hi, n in delta:
            seen += n
            if seen >= rank:
                out[f"server_p{q:g}_us"] = hi / 1e3
                break
    return out


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """CPU seconds (user and system) of process ``pid``, every thread of it, and of its main thread,
    which is the server's event loop (uvicorn runs it there); None when /proc cannot say."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()     # (after the command's name)
        return (int(fields[11]) + int(fields[12])) / tick               # utime, stime

    try:
        return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")
    except (OSError, IndexError, ValueError):
        return None


def cpu_per_request(before, after, requests: int) -> dict[str, float]:
    """µs of the server's CPU (all threads; its event loop's) per request answered in a run."""
    if before is None or after is None or requests <= 0:
        return {}
    return {"cpu_us": (after[0] - before[0]) / requests * 1e6, "loop_cpu_us": (after[1] - before[1]) / requests * 1e6}


def bench(servers: dict[str, str], route: str, rates: list[float], seconds: float, repeat: int,
          template: Path | None, post_rows: int, pids: dict[str, int]) -> dict[str, dict]:
    """Median figures per server and rate over ``repeat`` wrk runs; the servers' runs alternate.
    Beside wrk's figures, each server's CPU per request answered (read from /proc around each run:
    the budget a rate leaves the server, whatever the machine's speed)."""
    urls = {name: base + (POST_PATH if template else GET_PATH) for name, base in servers.items()}
    for url in urls.values():
        check_answer(url, template)
        wrk_once(url, min(rates), 1.0, template, post_rows)       # warm: connections, caches, first queries
    out: dict[str, dict] = {name: {} for name in servers}
    for rate in rates:
        runs: dict[str, list] = {name: [] for name in servers}
        for _ in range(repeat):
            for name, url in urls.items():
                timed = template is not None and name != "peer"
                before = answer_buckets(servers[name]) if timed else None
                cpu = cpu_seconds(pids[name])
                got = wrk_once(url, rate, seconds, template, post_rows)
                got.update(cpu_per_request(cpu, cpu_seconds(pids[name]), got["requests"]))
                if before is not None:
                    got.update(run_percentiles(before, answer_buckets(servers[name]) or {}))
                runs[name].append(got)
        for name in servers:
            keys = ["achieved", "p50_us", "p99_us", "p999_us"]
            keys += [k for k in SERVER_KEYS + CPU_KEYS if all(k in r for r in runs[name])]
            med = {k: statistics.median(r[k] for r in runs[name]) for k in keys}
            med["errors"] = sum(r["errors"] for r in runs[name])
            med["requests"] = sum(r["requests"] for r in runs[name])
            out[name][rate] = med
            own = ("  server " + " ".join(f"{k[7:-3]} {med[k] / 1e3:.2f}" for k in SERVER_KEYS) + " ms") \
                if all(k in med for k in SERVER_KEYS) else ""
            own += (f"  CPU a request {med['cpu_us']:.0f} µs (event loop {med['loop_cpu_us']:.0f})"
                    if all(k in med for k in CPU_KEYS) else "")
            print(f"{name:5} {route:4} offered {rate:7,.0f}/s  achieved {med['achieved']:8,.0f}/s  "
                  f"p50 {med['p50_us'] / 1e3:8.2f} ms  p99 {med['p99_us'] / 1e3:8.2f} ms  "
                  f"p99.9 {med['p999_us'] / 1e3:8.2f} ms  errors {med['errors']}/{med['requests']}{own}", flush=True)
    return out


def start_ours(tmp: Path, name: str, tree: str | None, extra: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """`workbench serve --replay` of the market capture on a store of its own (from ``tree`` when
    given: PYTHONPATH; ``extra``: more serve flags), once its run is done: (process, base URL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
    log = tmp / f"{name}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--replay", str(CAPTURE),
                                 "--market", str(MARKET), "--db", f"chdb://{tmp / name / 'store'}",
                                 "-o", str(tmp / name / "run"), "--port", str(port), *extra],
                                cwd=tmp, env=env, stderr=err, preexec_fn=pinned(SERVER_CPUS))
    try:
        wait_up(f"{base}/healthz", proc, log=log)
        while httpx.get(f"{base}/v1/stats").json()["run"]["phase"] not in ("done", "failed"):
            time.sleep(0.2)
    except BaseException:
        proc.terminate()
        raise
    return proc, base


def start_peer(store: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    """The peer (``PEER``, written to ``tmp``) on the embedded ``store``, once it answers: (process,
    base URL). Its stderr goes to ``tmp``/peer.log, whose tail is said if it exits first."""
    peer_py = tmp / "peer.py"
    peer_py.write_text(PEER)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp / "peer.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(peer_py), str(store), str(port)], cwd=tmp, stderr=err,
                                preexec_fn=pinned(SERVER_CPUS))
    try:
        wait_up(base + GET_PATH, proc, log=log)
    except BaseException:
        proc.kill()
        raise
    return proc, base


def post_template(base: str, tmp: Path, one_time: bool = False) -> Path:
    """One stored row as the POST template, its id (and, unless ``one_time``, its time) replaced by
    the Lua script's placeholders."""
    row = httpx.get(base + GET_PATH, timeout=30).json()["rows"][0]
    row["opportunity_id"] = "__ID__"
    if not one_time:
        row["timestamp_ns"] = "__TS__"
    path = tmp / "post_row.json"
    path.write_text(json.dumps(row, separators=(",", ":")).replace('"__TS__"', "__TS__"))
    return path


def lone_posts(servers: dict[str, str], template: Path, n: int, post_rows: int, repeat: int) -> None:
    """``n`` posts one at a time (httpx, ``LONE_GAP_S`` apart), per server, ``repeat`` rounds
    alternated: a post's round trip when nothing queues, beside a ``GET /healthz`` round trip."""
    row = template.read_text()
    for k in range(repeat):
        for name, base in servers.items():
            lat, health = [], []
            with httpx.Client(base_url=base, timeout=30) as c:
                for _ in range(n):
                    t = time.time_ns()
                    body = "[" + ",".join(row.replace("__ID__", str(uuid.uuid4())).replace("__TS__", str(t + j))
                                          for j in range(post_rows)) + "]"
                    t0 = time.perf_counter()
                    r = c.post(POST_PATH, content=body.encode(), headers={"content-type": "application/json"})
                    lat.append(time.perf_counter() - t0)
                    if r.status_code != 201:
                        sys.exit(f"{name}: a lone post got {r.status_code}: {r.text[:200]}")
                    time.sleep(LONE_GAP_S)
                for _ in range(100):
                    t0 = time.perf_counter()
                    c.get("/healthz")
                    health.append(time.perf_counter() - t0)
            lat.sort()
            print(f"{name:5s} lone POST of {post_rows} rows, round {k + 1}: median {statistics.median(lat) * 1e3:.2f} ms  "
                  f"p99 {lat[int(len(lat) * 0.99)] * 1e3:.2f} ms  ({n} posts; GET /healthz median "
                  f"{statistics.median(health) * 1e3:.2f} ms)", flush=True)


def answered(m: dict) -> bool:
    """Whether a rate's runs were mostly answered (wrk's latencies cover answered requests only)."""
    return m["requests"] > 0 and 2 * m["errors"] < m["requests"]


def ratios(label: str, ours: dict, peer: dict, rates: list[float], peer_name: str = "peer") -> None:
    parts = []
    for r in rates:
        o, p = ours[r], peer[r]
        if not (answered(o) and answered(p)):
            who = " and ".join(n for n, m in (("ours", o), (peer_name, p)) if not answered(m))
            parts.append(f"{r:,.0f}/s: {who} mostly unanswered")
            continue
        parts.append(f"{r:,.0f}/s: p99 {peer_name}/ours {p['p99_us'] / o['p99_us']:.1f}x, achieved ours/{peer_name} "
                     f"{o['achieved'] / max(p['achieved'], 1e-9):.2f}x")
    print(f"{label}: " + "  ".join(parts))


def main() -> None:
    global SERVER_CPUS, CLIENT_CPUS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="100,1000,5000,10000", help="offered requests/s, comma-separated")
    ap.add_argument("--seconds", type=float, default=3.0, help="each wrk run's length")
    ap.add_argument("--repeat", type=int, default=3, help="wrk runs per rate (figures: their medians)")
    ap.add_argument("--post-rows", type=int, default=10, help="rows per POST batch")
    ap.add_argument("--one-time", action="store_true",
                    help="every posted row at the template's one time (not each its own rising time)")
    ap.add_argument("--no-post", action="store_true", help="GET only")
    ap.add_argument("--routes", default="GET,POST", help="GET and/or POST, comma-separated")
    ap.add_argument("--base", metavar="DIR", help="also run `workbench serve` from this checkout, alternating with ours")
    ap.add_argument("--no-peer", action="store_true", help="leave the FastAPI peer out")
    ap.add_argument("--lone", type=int, default=0, metavar="N",
                    help="then N posts one at a time to ours (and base), --repeat rounds: the round trip "
                         "when nothing queues")
    ap.add_argument("--cpus", metavar="SERVER/CLIENT",
                    help="CPU lists for the servers and for wrk, e.g. 0/1 (default: all share every CPU)")
    ap.add_argument("--serve-args", default="", help="more `workbench serve` flags for ours (not base), e.g. "
                                                      "--serve-args=--loop-rt; with --base . the A/B is of the flags")
    a = ap.parse_args()
    need_wrk()
    rates = [float(r) for r in a.rates.split(",")]
    routes = [r.strip().upper() for r in a.routes.split(",") if r.strip()]
    if a.no_post:
        routes = [r for r in routes if r != "POST"]
    if not routes or set(routes) - {"GET", "POST"}:
        sys.exit(f"--routes {a.routes!r}: expected GET, POST or both")
    if a.cpus:
        server, _, client = a.cpus.partition("/")
        try:
            SERVER_CPUS, CLIENT_CPUS = set(parse_cpu_list(server, "--cpus")), set(parse_cpu_list(client, "--cpus"))
        except TuneError as e:
            sys.exit(f"{e} (expected SERVER/CLIENT CPU lists, e.g. 0/1)")
        have = os.sched_getaffinity(0)
        if not SERVER_CPUS or not CLIENT_CPUS or SERVER_CPUS & CLIENT_CPUS or not (SERVER_CPUS | CLIENT_CPUS) <= have:
            sys.exit(f"--cpus {a.cpus!r}: two disjoint, non-empty lists of this machine's CPUs {sorted(have)}")
    if a.base and not (Path(a.base) / "workbench" / "cli").exists():
        sys.exit(f"--base {a.base}: not a checkout of this repository (no workbench/cli there)")
    res: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp = Path(tmp)
        procs, servers, pids = [], {}, {}
        try:
            for name, tree in [("ours", None)] + ([("base", str(Path(a.base).resolve()))] if a.base else []):
                proc, servers[name] = start_ours(tmp, name, tree, a.serve_args.split() if name == "ours" else [])
                procs.append(proc)
                pids[name] = proc.pid
            rows = len(httpx.get(servers["ours"] + GET_PATH).json()["rows"])
            template = post_template(servers["ours"], tmp, a.one_time)
            times = "one time" if a.one_time else "rising times"
            print(f"store: {rows} sandwich rows per GET answer; POST: {a.post_rows} rows per batch ({times}); "
                  f"wrk {WRK_THREADS} threads, rate/{round(1 / CONN_PER_RATE)} connections, {a.seconds:g} s x "
                  f"{a.repeat} per rate; servers: {', '.join(servers)}"
                  + (f" (ours with {a.serve_args})" if a.serve_args else "")
                  + (f"; servers on CPUs {sorted(SERVER_CPUS)}, wrk on {sorted(CLIENT_CPUS)}" if a.cpus else ""),
                  flush=True)
            for route in routes:
                for name, figures in bench(servers, route, rates, a.seconds, a.repeat,
                                           template if route == "POST" else None, a.post_rows, pids).items():
                    res[(name, route)] = figures
            if a.lone:
                lone_posts(servers, template, a.lone, a.post_rows, a.repeat)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(60)
        if not a.no_peer:
            peer, base = start_peer(tmp / "ours" / "store", tmp)
            try:
                for route in routes:
                    res[("peer", route)] = bench({"peer": base}, route, rates, a.seconds, a.repeat,
                                                 template if route == "POST" else None, a.post_rows,
                                                 {"peer": peer.pid})["peer"]
            finally:
                peer.terminate()
                peer.wait(60)
    print()
    for route in routes:
        if a.base:
            ratios(route, res[("ours", route)], res[("base", route)], rates, "base")
        if not a.no_peer:
            ratios(route, res[("ours", route)], res[("peer", route)], rates)


if __name__ == "__main__":
    main()
