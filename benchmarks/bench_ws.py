"""WebSocket delivery while a replay runs at top speed: 10 and 100 subscribed clients of
`workbench serve --replay`, beside a plain `websockets` server fed the same rows, in one run.

Ours: `workbench serve --replay CAPTURE --market DIR` (the engine on its thread, the pump woken
by each hand-off, a frame encoded once for every client). The clients (benchmarks/ws_lean_client.py,
an RFC 6455 client that parses frames where they land; ``--client-procs`` processes, one event loop
each) subscribe to the opportunities (JSON, or Arrow frames with ``--opportunities-format arrow``) and transactions (Arrow frames, ``--format``) channels
(``--channels``: the opportunities alone is the inherited load test's subscription) from
sequence 0, so each gets every row of the run on them; they count rows (from an Arrow frame's batches,
or ``last_seq - first_seq + 1`` per JSON frame, ``missed`` per gap message) until the run's
``stats`` say it is done and every item it numbered is in, and take engine-to-client latency per
frame as their own time.time_ns() at receipt minus the frame's ``handed_ns`` (when the engine handed
the rows on: sinks.py ``SinkThread.put``; frames sent again from memory after a late subscription keep
their original time, so only frames handed on after the subscription count). The engine's own packets/s with the server comes
from the run's summary.json (with the share of its calls' time its thread spent off a CPU: waiting
for the GIL as a call returned, or for a CPU), beside a replay of the same capture without the server (``workbench
replay``; with ``--engine-cpu``/``--rt`` the same runner with its engine thread placed alike, and
``serve --cpu/--rt``; a pinned engine's CPU is kept free of the clients).

Peer: a plain ``websockets`` server that ``json.dumps`` each row and sends it to each client as it
comes, fed by the rows our run wrote (its tx_features.parquet and opportunities.parquet) in
batches of the engine's hand-off size as fast as it can send them; each message carries its
batch's ``handed_ns`` so the clients measure latency the same way. It runs no engine, which
favours it. It stops feeding after ``--peer-seconds`` (a per-row, per-client send is slow).

At top speed the engine makes rows faster than the clients read them on the same host, so the
latency measured is then mostly their own backlog; ``--speed`` paces the replay to show the latency
when they keep up. The capture is a long one of unique transactions made from the bundled market capture
(benchmarks/unique_capture.py, cached under runs/bench/). Goals from issue 19: >= 1M messages/s
delivered, p99 engine-to-client < 5 ms at 10 clients, the engine's packets/s within 10 % of a
replay without the server. Every figure is the median of ``--repeat`` runs, a plain replay run before
each round of ours (so that a ratio compares runs minutes apart, the machine's speed drifting), and
each round's ratio is printed too; loopback only.
Ours also prints the server process's share of the latency (``ws_frame_ns`` in /v1/latency: from
the engine's hand-off to each live frame's write on a client's socket, over the whole run), so that
what the clients' reading adds shows apart.

    python benchmarks/bench_ws.py [--packets N] [--clients 10,100] [--repeat 1] [--rt] [--engine-cpu N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
CHANNELS_ENV = "BENCH_WS_CHANNELS"   # --channels, handed to the client processes
CHANNELS = os.environ.get(CHANNELS_ENV, "opportunities,transactions").split(",")
OPP_FORMAT_ENV = "BENCH_WS_OPP_FORMAT"   # --opportunities-format, handed to the client processes
CLIENT_PROCS = 2                # client processes (the machine's cores)
# the capture at top speed: about a second of the engine's work, long enough for a round's ratio to the
# plain replay to hold still (a fifth of it left single rounds far apart: docs/serve-performance.md,
# session 36)
TOP_SPEED_PACKETS = 1_500_000
# paced: at --speed 50 a run of a few seconds, frames enough for a p99, well within a client's budget
# (CLIENT_BUDGET_S)
PACED_PACKETS = 300_000
IDLE_END_S = 30.0               # a client that has had frames and then nothing this long gives up
DONE_IDLE_S = 1.0               # after the run is done and its items are in: a last wait for stragglers
CLIENT_BUDGET_S = 120.0         # a client gives up after this long in any case
PEER_BATCH_ROWS = 4096          # rows the peer is fed at a time (the engine hands on batches)
ARROW_STREAM_START = b"\xff\xff\xff\xff"     # an Arrow IPC stream's first message (continuation marker)
HEAD = re.compile(rb'"first_seq":(\d+),"last_seq":(\d+),"handed_ns":(\d+)')
SEQS = re.compile(rb'"seqs":\[([\d,]*)\]')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- clients (run in worker processes: `bench_ws.py --worker ...`) ------------------------------------
class OursCounter:
    """One client's counts of our server's messages (called for each message as it lands)."""

    def __init__(self, stats: dict):
        self.stats = stats
        self.subscribed_ns = None
        self.total = None           # items the run numbered on the client's channels, once its stats say done
        self.last_ns = time.monotonic_ns()

    def on_message(self, _op: int, msg: bytes) -> None:
        import pyarrow as pa
        stats = self.stats
        now_ns = time.time_ns()
        head = msg[:160]
        if head.startswith(ARROW_STREAM_START):       # an Arrow frame: read in place, rows counted from its batches
            reader = pa.ipc.open_stream(pa.py_buffer(msg))
            handed = json.loads(reader.schema.metadata[b"frame"])["handed_ns"]
            self._rows(sum(b.num_rows for b in reader), handed, now_ns)
        elif head.startswith(b'{"type":"rows","channel":"stats"'):
            st = json.loads(msg)["rows"][-1]
            if (st.get("run") or {}).get("phase") in ("done", "failed"):
                self.total = sum(st["ws"]["next_seq"][c] for c in CHANNELS)
        elif head.startswith(b'{"type":"rows"'):
            m = HEAD.search(head)
            first, lastseq, handed = int(m[1]), int(m[2]), int(m[3])
            seqs = SEQS.search(msg[:200 + 12 * (lastseq - first + 1)]) if b'"seqs"' in head else None
            self._rows(len(seqs[1].split(b",")) if seqs else lastseq - first + 1, handed, now_ns)
        elif head.startswith(b'{"type":"gap"'):
            gap = json.loads(msg)
            stats["missed"] += gap["missed"] if gap["channel"] in CHANNELS else 0
            self.last_ns = time.monotonic_ns()
        elif head.startswith(b'{"type":"subscribed"') and self.subscribed_ns is None:
            self.subscribed_ns = now_ns
        elif head.startswith(b'{"type":"error"'):
            sys.exit(f"the server refused a subscription: {msg[:300]!r}")

    def _rows(self, n: int, handed: int, now_ns: int) -> None:
        # idle is counted from the last rows (or gap), not from any message: the stats channel's item
        # every second would otherwise keep a finished client waiting
        self.last_ns = time.monotonic_ns()
        stats = self.stats
        stats["rows"] += n
        stats["frames"] += 1
        stats["first_ns"] = stats["first_ns"] or now_ns
        stats["last_ns"] = now_ns
        stats["handed_first"] = min(stats["handed_first"] or handed, handed)
        stats["handed_last"] = max(stats["handed_last"], handed)
        if self.subscribed_ns is not None and handed >= self.subscribed_ns:
            stats["lat_us"].append((now_ns - handed) / 1e3)

    def finished(self) -> bool:
        """Every item of the run is in (then a last short wait for stragglers), or no rows came for long."""
        idle_s = (time.monotonic_ns() - self.last_ns) / 1e9
        st = self.stats
        if self.total is not None and st["rows"] + st["missed"] >= self.total:
            return idle_s >= DONE_IDLE_S
        return idle_s >= (IDLE_END_S if st["rows"] else CLIENT_BUDGET_S)


async def ours_client(url: str, stats: dict, fmt: str) -> None:
    from ws_lean_client import connect
    counter = OursCounter(stats)
    host, port, path = split_url(url)
    ws = await connect(host, port, path, counter.on_message)
    formats = {"transactions": fmt, "opportunities": os.environ.get(OPP_FORMAT_ENV, "json")}
    by_format: dict[str, list[str]] = {}
    for c in CHANNELS:                      # one subscription per format (Arrow frames or JSON)
        by_format.setdefault(formats[c], []).append(c)
    for f, chans in by_format.items():
        ws.send_text(json.dumps({"type": "subscribe", "channels": chans, "from": 0,
                                 **({"format": "arrow"} if f == "arrow" else {})}))
    ws.send_text(json.dumps({"type": "subscribe", "channels": ["stats"]}))
    await _until(ws, counter.finished)


async def peer_client(url: str, stats: dict) -> None:
    from ws_lean_client import connect
    last = [time.monotonic_ns()]

    def on_message(_op: int, msg: bytes) -> None:
        now_ns = time.time_ns()
        last[0] = time.monotonic_ns()
        stats["rows"] += 1
        stats["frames"] += 1
        stats["first_ns"] = stats["first_ns"] or now_ns
        stats["last_ns"] = now_ns
        if stats["rows"] % 16 == 1:          # a sample: parsing every message would slow the client
            stats["lat_us"].append((now_ns - int(msg[14:msg.index(b",")])) / 1e3)

    host, port, path = split_url(url)
    ws = await connect(host, port, path, on_message)
    ws.send_text(json.dumps({"type": "subscribe", "channels": CHANNELS}))
    await _until(ws, lambda: (time.monotonic_ns() - last[0]) / 1e9 >= (IDLE_END_S if stats["rows"] else
                                                                         CLIENT_BUDGET_S))


async def _until(ws, finished) -> None:
    """Until ``finished()``, the server closes, or the budget is spent; then close."""
    start = time.monotonic()
    while not ws.closed.done() and not finished() and time.monotonic() - start < CLIENT_BUDGET_S:
        await asyncio.sleep(0.05)
    ws.close()
    if ws.closed.done() and ws.closed.exception() is not None:
        raise ws.closed.exception()


def split_url(url: str) -> tuple[str, int, str]:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port), "/" + path


def worker(kind: str, url: str, n: int, out: str) -> None:
    """``n`` clients of ``kind`` (ours-json, ours-arrow or peer) in this process, on one event loop;
    their counts as JSON in the file ``out``."""
    all_stats = [{"rows": 0, "frames": 0, "missed": 0, "first_ns": 0, "last_ns": 0, "handed_first": 0, "handed_last": 0,
                  "lat_us": []} for _ in range(n)]

    async def run():
        if kind == "peer":
            await asyncio.gather(*(peer_client(url, s) for s in all_stats))
        else:
            await asyncio.gather(*(ours_client(url, s, kind.split("-")[1]) for s in all_stats))

    import uvloop
    uvloop.run(run())
    Path(out).write_text(json.dumps(all_stats))


def start_clients(kind: str, url: str, n: int, procs: int = CLIENT_PROCS,
                  cpus: set[int] | None = None) -> list[tuple[subprocess.Popen, Path]]:
    """``n`` clients in ``procs`` processes (each one event loop), kept on ``cpus`` when given."""
    per = [n // procs + (i < n % procs) for i in range(procs)]
    out = []
    for i, k in enumerate(per):
        if k:
            path = Path(tempfile.mkdtemp(prefix="bench-ws-client-")) / f"{kind}-{i}.json"
            out.append((subprocess.Popen([sys.executable, __file__, "--worker", kind, url, str(k), str(path)],
                                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None), path))
    return out


def collect(procs: list[tuple[subprocess.Popen, Path]]) -> dict:
    stats = []
    for p, path in procs:
        p.wait(timeout=CLIENT_BUDGET_S + 60)
        if p.returncode != 0:
            sys.exit(f"a client process failed ({p.returncode})")
        stats += json.loads(path.read_text())
        path.unlink()
        path.parent.rmdir()
    rows = sum(s["rows"] for s in stats)
    if not rows:
        sys.exit(f"none of the {len(stats)} clients received a row within {CLIENT_BUDGET_S:g} s")
    t0 = min(s["first_ns"] for s in stats if s["first_ns"])
    t1 = max(s["last_ns"] for s in stats)
    lat = sorted(x for s in stats for x in s["lat_us"])
    pct = (lambda q: lat[min(len(lat) - 1, int(q / 100 * len(lat)))] / 1e3) if lat else (lambda q: float("nan"))
    # the run's own pace: the rows one client got over the span of their hand-offs (first to last batch
    # handed on); delivery cannot outpace it, so the delivered rate is read against it
    h0 = min((s["handed_first"] for s in stats if s.get("handed_first")), default=0)
    h1 = max((s.get("handed_last", 0) for s in stats), default=0)
    produced = max(s["rows"] for s in stats) / max((h1 - h0) / 1e9, 1e-9) if h1 > h0 else float("nan")
    return {"rows": rows, "missed": sum(s["missed"] for s in stats), "per_s": rows / max((t1 - t0) / 1e9, 1e-9),
            "produced_per_s": produced, "handed_span_s": (h1 - h0) / 1e9, "delivery_span_s": (t1 - t0) / 1e9,
            "tail_ms": (t1 - h1) / 1e6 if h1 else float("nan"),
            "p50_ms": pct(50), "p99_ms": pct(99), "lat_n": len(lat), "clients": len(stats),
            "rows_min": min(s["rows"] for s in stats)}


# --- ours ----------------------------------------------------------------------------------------
def run_ours(capture: Path, market: Path, n: int, tmp: Path, speed: float | None, a) -> dict:
    import httpx
    port = free_port()
    out = tmp / f"serve-{n}-{time.monotonic_ns()}"
    log = open(tmp / "serve.log", "ab")
    placement = [*(["--cpu", str(a.engine_cpu)] if a.engine_cpu is not None else []), *(["--rt"] if a.rt else []),
                 *(["--loop-rt"] if a.loop_rt else [])]
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--replay", str(capture), "--market",
                               str(market), "--db", f"chdb://{out}/store", "-o", str(out / "run"), "--port",
                               str(port), *(["--speed", str(speed)] if speed else []), *placement],
                              cwd=tmp, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"workbench serve did not come up ({server.returncode}); see {tmp / 'serve.log'}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        loop0, sys0, server0 = cpu_seconds(server.pid)
        clients = start_clients(f"ours-{a.format}", f"ws://127.0.0.1:{port}/ws", n, a.client_procs, client_cpus(a))
        res = collect(clients)
        loop1, sys1, server1 = cpu_seconds(server.pid)
        # CPU the server spent while its clients were served (start-up left out): loads move it less than wall time
        res["loop_cpu_s"], res["loop_sys_s"], res["server_cpu_s"] = loop1 - loop0, sys1 - sys0, server1 - server0
        while httpx.get(f"http://127.0.0.1:{port}/v1/stats", timeout=30).json()["run"]["phase"] not in ("done", "failed"):
            time.sleep(0.2)
        st = httpx.get(f"http://127.0.0.1:{port}/v1/stats", timeout=30).json()
        next_seq = st["ws"]["next_seq"]
        res["placement"] = st["run"].get("engine_thread", []) + (
            [f"event loop thread: {st['event_loop_thread']}"] if "event_loop_thread" in st else [])
        res["expected"] = n * sum(next_seq[c] for c in CHANNELS)
        own = httpx.get(f"http://127.0.0.1:{port}/v1/latency", timeout=30).json().get("ws_frame_ns")
        if own:         # the server process's share (the engine's hand-off to socket write), from a tree that times it
            res["server_p50_ms"], res["server_p99_ms"] = own["p50"] / 1e6, own["p99"] / 1e6
    finally:
        server.terminate()
        server.wait(120)
    summary = json.loads((out / "run" / "summary.json").read_text())
    res["engine_pps"] = summary["engine_packets_per_s"]
    res["engine_waited"] = waited(summary)
    res["engine_cpu_pps"] = cpu_pps(summary)
    res["run_dir"] = out / "run"
    return res


def cpu_seconds(pid: int) -> tuple[float, float, float]:
    """CPU time (s) of the process's main thread (the event loop): user + system, and system alone (the
    kernel's share: over loopback a socket write carries the bytes into the reader's socket); and of the
    whole process."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(stat: str) -> tuple[float, float]:
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick
    loop, loop_sys = of(Path(f"/proc/{pid}/task/{pid}/stat").read_text())
    return loop, loop_sys, of(Path(f"/proc/{pid}/stat").read_text())[0]


def placed_replay(capture: str, market: str, out: str, cpu: str, rt: str) -> None:
    """(a worker process) The replay on an engine thread placed as ``serve --cpu/--rt`` places it,
    with no server: the same runner (BackgroundRun) and placement (api/engine_placement.py)."""
    from workbench.api.engine_placement import EnginePlacement
    from workbench.config import Settings
    from workbench.runner.background import BackgroundRun
    run = BackgroundRun("replay", capture=capture, out_dir=f"{out}/run", market=market, db=f"chdb://{out}/store")
    run.start()
    placement = EnginePlacement(int(cpu) if cpu != "-" else None, rt == "rt", Settings().live_fifo_priority)
    for note in placement.place(run._thread.native_id):
        print(note, file=sys.stderr)
    while run.running:
        placement.keep_others_off()
        time.sleep(0.01)
    if run.error:
        sys.exit(run.error)


def waited(summary: dict) -> float:
    """The share of the engine's calls' wall time its thread was not on a CPU (runner/engine_run.py
    ``engine_cpu_s``): waiting for the GIL as a call returned, or for a CPU; NaN from a tree without it."""
    cpu = summary.get("engine_cpu_s")
    return (summary["engine_s"] - cpu) / summary["engine_s"] if cpu and summary["engine_s"] else float("nan")


def cpu_pps(summary: dict) -> float:
    """The engine's packets per second of its thread's CPU time in its calls (``engine_cpu_s``): its
    speed had it waited for nothing, which shows whether the server slowed its work or only kept it
    waiting; NaN from a tree without it."""
    cpu = summary.get("engine_cpu_s")
    return summary["engine_packets_per_s"] * summary["engine_s"] / cpu if cpu else float("nan")


def plain_replay(capture: Path, market: Path, tmp: Path, speed: float | None, a=None) -> dict:
    """The summary of a replay of ``capture`` without the server."""
    out = tmp / f"plain-{time.monotonic_ns()}"
    if a is not None and (a.engine_cpu is not None or a.rt):
        r = subprocess.run([sys.executable, __file__, "--placed-replay", str(capture), str(market), str(out),
                            str(a.engine_cpu) if a.engine_cpu is not None else "-", "rt" if a.rt else "-"],
                           cwd=tmp, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            sys.exit(f"the placed replay failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads((out / "run" / "summary.json").read_text())
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "replay", str(capture), "--market", str(market),
                        "--db", f"chdb://{out}/store", "--out", str(out / "run"), "-q",
                        *(["--speed", str(speed)] if speed else [])], cwd=tmp,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        sys.exit(f"workbench replay failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads((out / "run" / "summary.json").read_text())


# --- the peer ------------------------------------------------------------------------------------
PEER = textwrap.dedent('''
    import asyncio, json, sys, time
    import pyarrow.parquet as pq
    import websockets
    from workbench.engine.tables import read_tx_features    # base58 signatures, as the API sends them

    run_dir, port, n_clients, batch_rows, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    channels = sys.argv[6].split(",")
    rows = ((pq.read_table(f"{run_dir}/opportunities.parquet").to_pylist() if "opportunities" in channels else [])
            + (read_tx_features(f"{run_dir}/tx_features.parquet").to_pylist() if "transactions" in channels else []))
    clients = set()
    ready = asyncio.Event()

    async def handler(ws):
        await ws.recv()                         # the subscribe message
        clients.add(ws)
        if len(clients) >= n_clients:
            ready.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async def main():
        async with websockets.serve(handler, "127.0.0.1", port, max_size=None, compression=None):
            await ready.wait()
            end = time.monotonic() + seconds
            for i in range(0, len(rows), batch_rows):
                handed_ns = time.time_ns()
                for row in rows[i:i + batch_rows]:
                    text = json.dumps({"handed_ns": handed_ns, **row}, default=str)
                    for ws in list(clients):
                        await ws.send(text)
                if time.monotonic() > end:
                    break
            for ws in list(clients):
                await ws.close()

    asyncio.run(main())
''')


def client_cpus(a) -> set[int] | None:
    """CPUs of the client processes: --client-cpus, else every CPU but the engine's when it is pinned."""
    if a.client_cpus:
        return {int(c) for c in a.client_cpus.split(",")}
    if a.engine_cpu is not None:
        return set(os.sched_getaffinity(0)) - {a.engine_cpu} or None
    return None


def run_peer(run_dir: Path, n: int, seconds: float, tmp: Path, a) -> dict:
    peer_py = tmp / "peer.py"
    peer_py.write_text(PEER)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(peer_py), str(run_dir), str(port), str(n), str(PEER_BATCH_ROWS),
                               str(seconds), ",".join(CHANNELS)], cwd=tmp)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the peer server did not come up ({server.returncode})")
                time.sleep(0.1)
        return collect(start_clients("peer", f"ws://127.0.0.1:{port}", n, a.client_procs, client_cpus(a)))
    finally:
        server.terminate()
        server.wait(60)


def load() -> str:
    """The load averages beside a figure (the machine may be shared)."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def loads(runs: list[dict]) -> str:
    """The 1-minute load averages seen as ``runs`` ended (the machine may be shared), lowest to highest."""
    xs = [r["load1"] for r in runs]
    return f"load {min(xs):.2f}-{max(xs):.2f} as its runs ended"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=None,
                    help=f"packets of the unique-transactions capture (default: {TOP_SPEED_PACKETS:,} at top speed, "
                         f"{PACED_PACKETS:,} paced)")
    ap.add_argument("--clients", default="10,100", help="numbers of subscribed clients, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="runs per client count (figures: their medians)")
    ap.add_argument("--speed", type=float, default=None,
                    help="pace the replay (1.0 = as captured); unset: top speed. A paced run shows the latency "
                         "when the clients keep up")
    ap.add_argument("--no-peer", action="store_true", help="ours alone (A/B runs of two trees)")
    ap.add_argument("--peer-seconds", type=float, default=5.0, help="how long the peer is fed rows")
    ap.add_argument("--format", choices=("arrow", "json"), default="arrow",
                    help="our clients' transactions frames (stats are JSON either way)")
    ap.add_argument("--opportunities-format", choices=("json", "arrow"), default="json",
                    help="our clients' opportunities frames (JSON: the inherited load test's subscription)")
    ap.add_argument("--client-procs", type=int, default=CLIENT_PROCS, help="client processes (one event loop each)")
    ap.add_argument("--engine-cpu", type=int, default=None, help="serve --cpu: pin the engine thread to this CPU "
                                                                 "(the clients then stay off it)")
    ap.add_argument("--rt", action="store_true", help="serve --rt: SCHED_FIFO for the engine thread")
    ap.add_argument("--loop-rt", action="store_true", help="serve --loop-rt: SCHED_FIFO for the event loop thread")
    ap.add_argument("--client-cpus", default=None, help="CPUs of the client processes, comma-separated")
    ap.add_argument("--channels", default="opportunities,transactions",
                    help="channels each client subscribes to from 0: 'opportunities' is the inherited load test's "
                         "subscription; with 'transactions' every client takes every row of the run")
    ap.add_argument("--worker", nargs=4, metavar=("KIND", "URL", "N", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--placed-replay", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker[0], a.worker[1], int(a.worker[2]), a.worker[3])
        return
    if a.placed_replay:
        placed_replay(*a.placed_replay)
        return
    global CHANNELS
    CHANNELS = [c.strip() for c in a.channels.split(",") if c.strip()]
    if not CHANNELS or set(CHANNELS) - {"opportunities", "transactions"}:
        sys.exit(f"--channels {a.channels}: opportunities and/or transactions")
    os.environ[CHANNELS_ENV] = ",".join(CHANNELS)          # the client processes subscribe alike
    os.environ[OPP_FORMAT_ENV] = a.opportunities_format
    from unique_capture import unique_capture
    packets = a.packets or (PACED_PACKETS if a.speed else TOP_SPEED_PACKETS)
    capture = unique_capture(packets, base=REPO / "captures" / "market.pcapng")
    market = capture.with_name(capture.name + ".market")
    counts = [int(c) for c in a.clients.split(",")]
    med = lambda xs: statistics.median(xs)                                  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        tmp = Path(tmp)
        # the machine's speed drifts over minutes (other work shares it): each round runs a plain
        # replay, then ours at every client count, so a ratio compares runs minutes apart at most
        plains, runs = [], {n: [] for n in counts}
        for _ in range(a.repeat):
            plains.append({**plain_replay(capture, market, tmp, a.speed, a), "load1": os.getloadavg()[0]})
            for n in counts:
                runs[n].append({**run_ours(capture, market, n, tmp, a.speed, a), "load1": os.getloadavg()[0]})
        plain = [p["engine_packets_per_s"] for p in plains]
        pace = f"at speed {a.speed:g}" if a.speed else "at top speed"
        print(f"capture {capture.name} {pace}; plain replay (no server"
              + (", engine thread placed alike" if a.engine_cpu is not None or a.rt else "")
              + f"; {a.repeat} run{'s' if a.repeat != 1 else ''}, each before its round of ours): engine {med(plain):,.0f} packets/s "
              f"({', '.join(f'{x:,.0f}' for x in plain)}; its calls waited {med([waited(p) for p in plains]):.1%} "
              f"of their time; by its CPU time alone {med([cpu_pps(p) for p in plains]):,.0f}) [{loads(plains)}]",
              flush=True)
        print(f"ours: channels {', '.join(CHANNELS)} from 0, transactions in {a.format} frames, opportunities in "
              f"{a.opportunities_format} frames; engine thread: "
              + (f"--cpu {a.engine_cpu}" if a.engine_cpu is not None else "not pinned") + (" --rt" if a.rt else "")
              + ("; event loop thread: --loop-rt" if a.loop_rt else "")
              + f"; {a.client_procs} client processes on CPUs {sorted(client_cpus(a) or os.sched_getaffinity(0))}",
              flush=True)
        for n in counts:
            ours = runs[n]
            o = {k: med([r[k] for r in ours]) for k in ("per_s", "p50_ms", "p99_ms", "engine_pps", "engine_waited",
                                                          "engine_cpu_pps",
                                                          "rows", "missed",
                                                          "expected", "rows_min", "produced_per_s", "handed_span_s",
                                                          "delivery_span_s", "tail_ms", "loop_cpu_s", "loop_sys_s",
                                                          "server_cpu_s")}
            if not any(r["lat_n"] for r in ours):
                print("  ours: no frame was handed on after a subscription (the server sends no handed_ns?): "
                      "throughput only")
            print(f"ours {n:4} clients: {o['per_s']:12,.0f} rows/s delivered  p50 {o['p50_ms']:7.2f} ms  "
                  f"p99 {o['p99_ms']:7.2f} ms  rows {o['rows']:,.0f} of {o['expected']:,.0f} (fewest per client "
                  f"{o['rows_min']:,.0f}; told missed {o['missed']:,.0f})  engine {o['engine_pps']:,.0f} packets/s "
                  + (f"({o['engine_pps'] / med(plain):.2f}x plain; by round "
                     + ", ".join(f"{r['engine_pps'] / p:.2f}x" for r, p in zip(ours, plain))
                     if not a.speed else "(paced: not a capacity")
                  + f"; its calls waited {o['engine_waited']:.1%} of their time; by its CPU time alone "
                  f"{o['engine_cpu_pps']:,.0f}) [{loads(ours)}]", flush=True)
            print(f"  the run handed its rows on over {o['handed_span_s']:.3f} s ({o['produced_per_s']:,.0f} rows/s to "
                  f"each client, x{n} = {o['produced_per_s'] * n:,.0f} rows/s at most); delivered over "
                  f"{o['delivery_span_s']:.3f} s, the last row {o['tail_ms']:.1f} ms after the last hand-off; "
                  f"delivered / produced {o['per_s'] / (o['produced_per_s'] * n):.2f}; while serving: server CPU "
                  f"{o['server_cpu_s']:.2f} s, its event loop {o['loop_cpu_s']:.2f} s (system {o['loop_sys_s']:.2f} s) "
                  f"({o['loop_cpu_s'] * 1e9 / max(o['rows'], 1):.0f} ns a row delivered)", flush=True)
            if all("server_p99_ms" in r for r in ours):
                print(f"  the server process's share of the latency (ws_frame_ns: the engine's hand-off to each "
                      f"frame's write on a socket): p50 {med([r['server_p50_ms'] for r in ours]):.2f} ms  "
                      f"p99 {med([r['server_p99_ms'] for r in ours]):.2f} ms", flush=True)
            for note in ours[0]["placement"]:
                print(f"  {note}", flush=True)
            if a.no_peer:
                continue
            peer = [run_peer(ours[0]["run_dir"], n, a.peer_seconds, tmp, a) for _ in range(a.repeat)]
            p = {k: med([r[k] for r in peer]) for k in ("per_s", "p50_ms", "p99_ms", "rows")}
            print(f"peer {n:4} clients: {p['per_s']:12,.0f} rows/s delivered  p50 {p['p50_ms']:7.2f} ms  "
                  f"p99 {p['p99_ms']:7.2f} ms  rows {p['rows']:,.0f} in its {a.peer_seconds:g} s [{load()}]", flush=True)
            print(f"ratio ours/peer at {n} clients: delivered {o['per_s'] / max(p['per_s'], 1e-9):.1f}x, "
                  f"p99 peer/ours {p['p99_ms'] / o['p99_ms']:.1f}x", flush=True)
    print("\ngoals (issue 19): >= 1,000,000 rows/s delivered; p99 < 5 ms at 10 clients; engine within 10 % of plain")


if __name__ == "__main__":
    main()
