"""The floor of a POST in Python: what the HTTP server alone costs per request, uvicorn beside granian
and beside a bare protocol.

`workbench serve` answers POST /v1/opportunities on uvicorn (uvloop, httptools). Its event loop
spends CPU per post on HTTP and on the post itself (check, log, memory, WebSocket); this bench
measures the HTTP part alone, to say how far the rest could fall and whether another ASGI server
would lower the floor: a raw ASGI app that reads the body and answers the small JSON a post gets,
under uvicorn as the server runs it (uvloop, httptools) and under granian (Rust HTTP, one worker,
one runtime thread; a dev dependency, left out when missing). wrk offers
the same 10-row bodies bench_api.py posts (benchmarks/wrk_fixed_rate.lua) at a fixed rate; the
servers alternate run by run; each figure is the median of ``--repeat`` runs, with the CPU of the
server's processes per request (from /proc) and the ratio to uvicorn. The third server is no ASGI
server at all: an asyncio protocol on uvloop with httptools' parser that gathers the body and
writes the answer in one write, the floor under which api/post_protocol.py takes plain posts.

    python benchmarks/bench_http_floor.py [--rate 5000] [--seconds 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import POST_PATH, free_port, need_wrk, wait_up, wrk_once  # noqa: E402
from common import REPLAY_ROW  # noqa: E402

APP = textwrap.dedent('''
    import orjson
    ANSWER = orjson.dumps({"inserted": 10, "duplicates": 0, "ids": ["00000000-0000-4000-8000-000000000000"] * 10})
    HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            m = await receive()
            more = m.get("more_body", False)
        await send({"type": "http.response.start", "status": 201, "headers": HEADERS})
        await send({"type": "http.response.body", "body": ANSWER})

    if __name__ == "__main__":
        import sys
        import uvicorn
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                    log_level="warning", access_log=False)
''')

# the same answer from a bare protocol: no ASGI scope, cycle, task or middleware, one write
PROTOCOL_APP = textwrap.dedent('''
    import asyncio, sys
    import httptools, orjson, uvloop
    ANSWER = orjson.dumps({"inserted": 10, "duplicates": 0, "ids": ["00000000-0000-4000-8000-000000000000"] * 10})
    WIRE = (b"HTTP/1.1 201 Created\\r\\ncontent-type: application/json\\r\\ncontent-length: "
            + str(len(ANSWER)).encode() + b"\\r\\n\\r\\n" + ANSWER)

    class Floor(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.parser, self.body = transport, httptools.HttpRequestParser(self), []

        def data_received(self, data):
            self.parser.feed_data(data)

        def on_body(self, body):
            self.body.append(body)

        def on_message_complete(self):
            self.body = []
            self.transport.write(WIRE)

    async def main():
        server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", int(sys.argv[1]))
        await server.serve_forever()

    if __name__ == "__main__":
        uvloop.run(main())
''')

# the row of every post, its id and time the Lua script's
ROW = {**REPLAY_ROW, "timestamp_ns": "__TS__", "opportunity_id": "__ID__"}


def granian_cmd(port: int, app: str) -> list[str]:
    """granian serving the ASGI ``app`` ("module:attribute") on loopback: one worker, one runtime
    thread, uvloop, no WebSocket."""
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--log-level", "warning", "--no-ws", app]


def start_app(name: str, cmd: list[str], app_dir: Path, url: str, budget_s: float) -> subprocess.Popen:
    """``cmd`` run in ``app_dir`` (on its PYTHONPATH, its stderr in ``name``.log there), once ``url``
    answers."""
    log = app_dir / f"{name}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=app_dir, env={**os.environ, "PYTHONPATH": str(app_dir)},
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_up(url, proc, budget_s, log=log)
    except BaseException:
        proc.kill()
        raise
    return proc


def _start(kind: str, app_dir: Path, port: int) -> subprocess.Popen:
    if kind == "granian":
        cmd = granian_cmd(port, "floor_app:app")
    elif kind == "protocol":
        cmd = [sys.executable, str(app_dir / "protocol_app.py"), str(port)]
    else:
        cmd = [sys.executable, str(app_dir / "floor_app.py"), str(port)]
    return start_app(kind, cmd, app_dir, f"http://127.0.0.1:{port}/", 30)


def _cpu_s(pid: int) -> float:
    """CPU (user + system) so far of a process, its threads and its child processes (granian serves
    from a worker process it starts)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue            # (a process that ended meanwhile)
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=5000.0, help="offered requests/s")
    ap.add_argument("--seconds", type=float, default=4.0, help="each wrk run's length")
    ap.add_argument("--repeat", type=int, default=3, help="runs per server (figures: their medians)")
    a = ap.parse_args()
    need_wrk()
    kinds = ["uvicorn", "protocol"] + (["granian"] if importlib.util.find_spec("granian") else [])
    with tempfile.TemporaryDirectory(prefix="bench-http-floor-") as tmp:
        tmp = Path(tmp)
        (tmp / "floor_app.py").write_text(APP)
        (tmp / "protocol_app.py").write_text(PROTOCOL_APP)
        template = tmp / "row.json"
        template.write_text(json.dumps(ROW, separators=(",", ":")).replace('"__TS__"', "__TS__"))
        procs, urls = {}, {}
        try:
            for kind in kinds:
                port = free_port()
                procs[kind] = _start(kind, tmp, port)
                urls[kind] = f"http://127.0.0.1:{port}{POST_PATH}"
                wrk_once(urls[kind], 1000, 1.0, template, 10)         # warm
            runs = {k: [] for k in kinds}
            for _ in range(a.repeat):
                for kind in kinds:
                    before = _cpu_s(procs[kind].pid)
                    r = wrk_once(urls[kind], a.rate, a.seconds, template, 10)
                    r["cpu_us"] = (_cpu_s(procs[kind].pid) - before) / max(r["requests"], 1) * 1e6
                    runs[kind].append(r)
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(30)
    names = {"uvicorn": "uvicorn (uvloop, httptools: ASGI)", "granian": "granian (1 worker, 1 runtime thread)",
             "protocol": "bare protocol (uvloop, httptools)"}
    print(f"POST of 10 rows (wrk at {a.rate:,.0f}/s offered, {a.seconds:g} s x {a.repeat}; load "
          f"{os.getloadavg()[0]:.2f}); an app that reads the body and answers")
    med = {k: {f: statistics.median(r[f] for r in runs[k]) for f in ("achieved", "p50_us", "p99_us", "cpu_us")}
           for k in kinds}
    for kind in kinds:
        m = med[kind]
        print(f"  {names[kind]:42s} achieved {m['achieved']:7,.0f}/s  p50 {m['p50_us'] / 1e3:6.2f} ms  "
              f"p99 {m['p99_us'] / 1e3:6.2f} ms  CPU {m['cpu_us']:5.0f} µs a request")
    for kind in kinds[1:]:
        print(f"  CPU a request, {kind} / uvicorn: {med[kind]['cpu_us'] / med['uvicorn']['cpu_us']:.2f}x")
    if "granian" not in kinds:
        print("  (granian not installed: pip install granian to measure it too)")


if __name__ == "__main__":
    main()
