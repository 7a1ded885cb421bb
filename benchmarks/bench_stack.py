"""The server's stack chosen by measurement: the same 100-row JSON answer from each candidate
stack, under wrk at full speed (keep-alive connections, no fixed rate), in one run.

Each stack is a small app in a process of its own, serving ``GET /rows``: 100 opportunity rows
held as Python dicts, encoded for every request as the route would (the encoder is what is
compared, so nothing is cached). The candidates: Starlette on uvicorn (uvloop, httptools) with
orjson (the server's choice), with msgspec, and with Starlette's own JSONResponse (the json
module); FastAPI handed orjson's bytes, and FastAPI returning the rows (its default encoder);
Starlette with orjson on uvicorn's asyncio loop and h11; the same app under granian (Rust HTTP,
one worker, one runtime thread). The stacks alternate run by run; each figure is the median of
``--repeat`` runs: requests/s and wrk's p99, and the ratio of each to the server's choice. wrk
shares the 2 cores with the server (loopback only), so the ratios matter more than the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench_api import free_port, need_wrk
from bench_http_floor import granian_cmd, start_app

ROWS = 100
CHOICE = "starlette + orjson"

_ROWS_PY = textwrap.dedent('''
    import uuid
    T0 = 1_760_000_000_000_000_000
    ROWS = [{"timestamp_ns": T0 + 1000 * i, "opportunity_id": str(uuid.UUID(int=i + 1)),
             "type": ("arbitrage", "sandwich", "liquidation")[i % 3], "profit": 0.125 * i + 1 / 3,
             "pools": ["58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", "HJPjoWUrhoZzkNfRpHuieeFk9WcZWjwy6PBjZ81ngndJ"][:1 + i % 2],
             "run_id": "bench", "slot": 250_000_000 + i, "score": None if i % 4 == 0 else 0.01 * i,
             "tip_lamports": 10_000 + i, "detect_latency_ns": 1_400 + i}
            for i in range(__ROWS__)]
''').replace("__ROWS__", str(ROWS))

_APP = textwrap.dedent('''
    import sys
    from rows import ROWS
    kind = sys.argv[1]
    if kind.startswith("fastapi"):
        from fastapi import FastAPI
        from fastapi.responses import Response
        import orjson
        app = FastAPI()
        if kind == "fastapi-orjson":
            @app.get("/rows")
            def rows():
                return Response(orjson.dumps(ROWS), media_type="application/json")
        else:
            @app.get("/rows")
            def rows():
                return ROWS
    else:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route
        if kind == "starlette-msgspec":
            import msgspec
            enc = msgspec.json.Encoder()
            async def rows(request):
                return Response(enc.encode(ROWS), media_type="application/json")
        elif kind == "starlette-json":
            async def rows(request):
                return JSONResponse(ROWS)
        else:
            import orjson
            async def rows(request):
                return Response(orjson.dumps(ROWS), media_type="application/json")
        app = Starlette(routes=[Route("/rows", rows)])
    if __name__ == "__main__":
        import uvicorn
        asyncio_h11 = kind == "starlette-orjson-asyncio"
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
                    loop="asyncio" if asyncio_h11 else "uvloop", http="h11" if asyncio_h11 else "httptools")
''')

# name -> how its process starts (app kind; granian runs the orjson app)
STACKS = {
    CHOICE: "starlette-orjson",
    "starlette + msgspec": "starlette-msgspec",
    "starlette + JSONResponse (json)": "starlette-json",
    "FastAPI + orjson bytes": "fastapi-orjson",
    "FastAPI returning the rows": "fastapi-dict",
    "starlette + orjson on asyncio + h11": "starlette-orjson-asyncio",
    "starlette + orjson under granian": "granian",
}


def _start(kind: str, app_dir: Path, port: int) -> subprocess.Popen:
    cmd = (granian_cmd(port, "granian_app:app") if kind == "granian"
           else [sys.executable, str(app_dir / "app.py"), kind, str(port)])
    return start_app(kind, cmd, app_dir, f"http://127.0.0.1:{port}/rows", 60)


def _installed(kind: str) -> bool:
    """Whether the package a stack needs beyond the server's own is installed (dev extras)."""
    need = "granian" if kind == "granian" else "fastapi" if kind.startswith("fastapi") else "starlette"
    return importlib.util.find_spec(need) is not None


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_full(url: str, seconds: float, conns: int) -> tuple[float, float]:
    """wrk at full speed: (requests/s, p99 in ms)."""
    r = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds:g}s", "--latency", url],
                       capture_output=True, text=True, timeout=seconds + 60)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", r.stdout, re.M)
    if r.returncode != 0 or not rate or not p99 or "Non-2xx" in r.stdout:
        sys.exit(f"wrk on {url} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return float(rate.group(1)), float(p99.group(1)) * _UNIT[p99.group(2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="each wrk run's length")
    ap.add_argument("--connections", type=int, default=8, help="wrk's keep-alive connections")
    ap.add_argument("--repeat", type=int, default=3, help="runs per stack (figures: their medians)")
    a = ap.parse_args()
    need_wrk()
    stacks = {n: k for n, k in STACKS.items() if _installed(k)}
    got: dict[str, list[tuple[float, float]]] = {n: [] for n in stacks}
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        app_dir = Path(tmp)
        (app_dir / "rows.py").write_text(_ROWS_PY)
        (app_dir / "app.py").write_text(_APP)
        (app_dir / "granian_app.py").write_text("import sys\nsys.argv = ['app', 'starlette-orjson', '0']\n"
                                                "from app import app  # noqa: E402,F401\n")
        procs = {}
        try:
            for name, kind in stacks.items():
                port = free_port()
                procs[name] = (_start(kind, app_dir, port), f"http://127.0.0.1:{port}/rows")
                wrk_full(procs[name][1], 1, a.connections)          # warm: imports, first answers
            for _ in range(a.repeat):
                for name, (_, url) in procs.items():
                    got[name].append(wrk_full(url, a.seconds, a.connections))
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(30)
    load = os.getloadavg()[0]
    print(f"GET of {ROWS} rows encoded per request, wrk 2 threads, {a.connections} connections, {a.seconds:g} s x "
          f"{a.repeat} per stack, alternated (load {load:.2f}); medians")
    base_rate = statistics.median(r for r, _ in got[CHOICE])
    base_p99 = statistics.median(p for _, p in got[CHOICE])
    for name, runs in got.items():
        rate, p99 = statistics.median(r for r, _ in runs), statistics.median(p for _, p in runs)
        print(f"  {name:<38} {rate:>9,.0f} req/s  p99 {p99:>7.2f} ms  rate x{rate / base_rate:.2f}, "
              f"p99 x{p99 / base_p99:.2f} of {CHOICE}")


if __name__ == "__main__":
    main()
