"""The live page's feed from a running `workbench serve` (``--api URL``) instead of an engine of
its own: history over REST, the live stream over the WebSocket, rates and histograms from
/v1/stats and /v1/latency.

``ApiFeed`` offers what the page reads from a ``workbench.runner.BackgroundRun`` (``tables``,
``update_rates``, ``histograms``, ``phase``, ``error``, ...), so the page draws a server the way it
draws a run. Its network work runs on one background thread with an event loop of its own, so a
page's periodic callback only copies what the thread collected and never waits on the server.

- History: ``GET /v1/opportunities`` pages as Arrow IPC streams (keyset cursor), oldest first, at
  most HISTORY_ROWS_MAX rows.
- Live: ``/ws`` subscriptions to ``opportunities`` (JSON; from the newest stored row's time, or
  from sequence 0 when the store holds none, so nothing between the history and the stream is
  lost; rows already shown are skipped by ``opportunity_id``) and ``transactions`` (Arrow frames,
  from what the server's memory holds). A dropped connection is made again, resuming each
  channel after the last sequence number received; a ``gap`` the server reports is counted.
- Stats and latency: polled every POLL_S.

The bearer token (``--api-token-file FILE`` or WORKBENCH_API_TOKEN) goes on every request and on
the WebSocket handshake; a server bound off loopback requires one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import orjson
import pyarrow as pa

from workbench.runner.background import Rates

TOKEN_ENV = "WORKBENCH_API_TOKEN"      # the server's own variable (workbench/api/security.py)
ARROW_STREAM = "application/vnd.apache.arrow.stream"
NEXT_CURSOR_HEADER = "x-next-cursor"
HISTORY_PAGE_ROWS = 5_000              # the server's largest page
HISTORY_ROWS_MAX = 100_000             # history the page loads at start (the newest come on the stream)
POLL_S = 1.0                           # /v1/stats and /v1/latency
RETRY_S = 1.0                          # wait before connecting again after a failure
HTTP_TIMEOUT_S = 10.0
ARROW_HEADER_KEY = b"frame"            # schema metadata key of an Arrow frame's header (api/frames.py)


def parse_api_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``--api URL`` and ``--api-token-file FILE`` out of the page's arguments; the rest for
    ``_common.parse_args``."""
    p = argparse.ArgumentParser(prog="live.py", add_help=False)
    p.add_argument("--api", default=None, help="URL of a running `workbench serve`, e.g. http://127.0.0.1:8000")
    p.add_argument("--api-token-file", default=None,
                   help=f"file whose first line is the server's bearer token (or {TOKEN_ENV})")
    return p.parse_known_args(argv)


def api_problem(url: str) -> str | None:
    """A sentence naming what is wrong with ``--api URL``; None when it is usable."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--api {url!r}: expected the server's base URL, e.g. `http://127.0.0.1:8000`"
    return None


def api_token(token_file: str | None) -> tuple[str | None, str | None]:
    """(token, problem): the first line of ``token_file``, else WORKBENCH_API_TOKEN, else none."""
    if token_file:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            return None, f"--api-token-file {token_file}: cannot be read ({type(e).__name__})"
        if not lines or not lines[0].strip():
            return None, f"--api-token-file {token_file}: its first line is empty"
        return lines[0].strip(), None
    return os.environ.get(TOKEN_ENV, "").strip() or None, None


def ws_url(base: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path.rstrip("/") + "/ws",
                       "", ""))


def with_ts(table: pa.Table) -> pa.Table:
    """A store-shaped opportunities table with the engine's ``ts_ns`` column the page reads."""
    if "timestamp_ns" in table.column_names and "ts_ns" not in table.column_names:
        table = table.append_column("ts_ns", table.column("timestamp_ns"))
    return table


class ApiFeed:
    """A running server, read as the live page reads a ``BackgroundRun``."""

    mode = "api"
    market = None
    model = None
    run_dir = None
    out_dir = None
    loop = 1
    result = None
    live_status = None

    def __init__(self, url: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.token = token
        self._lock = threading.Lock()
        self._tables: dict[str, list[pa.Table]] = {}
        self._seen: set[str] = set()
        self._next_seq: dict[str, int | None] = {"opportunities": None, "transactions": None}
        self._stats: dict = {}
        self._latency: dict = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connection_error: str | None = None
        self.missed = 0                  # items the server told this feed it missed (gap messages)
        self.history_rows = 0
        self.rates = Rates()

    # -- what the page reads -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def phase(self) -> str:
        if self.connection_error:
            return "server unreachable"
        run = self._stats.get("run")
        if run:
            return f"server: {run.get('mode')} {run.get('phase')}"
        return "server: no run (store only)" if self._stats else "connecting"

    @property
    def progress(self) -> float:
        return float((self._stats.get("run") or {}).get("progress") or 0.0)

    @property
    def error(self) -> str | None:
        if self.connection_error:
            return self.connection_error
        return (self._stats.get("run") or {}).get("error")

    def tables(self, name: str, start: int = 0) -> tuple[list[pa.Table], int]:
        with self._lock:
            lst = self._tables.get(name, [])
            return lst[start:], len(lst)

    def update_rates(self) -> Rates:
        run = self._stats.get("run")
        if run:
            self.rates = Rates(int(run["packets"]), int(run["transactions"]), int(run["opportunities"]),
                               int(run["drops"]), float(run["packets_per_s"]), float(run["transactions_per_s"]),
                               float(run["opportunities_per_s"]))
        elif self._stats:
            n = sum(self._stats.get("opportunities_by_type", {}).values())
            self.rates = Rates(opportunities=int(n))
        return self.rates

    def histograms(self) -> dict:
        """{name: (lows, highs, counts, {'p50','p99','p99.9'} ns)} of the engine's histograms in the last
        /v1/latency answer. The server's own (a post's answer, a frame's delivery) are left to /metrics:
        the page makes a plot per engine histogram at its start, and a plot added while data stream
        makes the browser chase models it does not know yet."""
        from workbench.engine.state import HIST_NAMES      # (as _plots.py reads them: not at the page's import)
        out = {}
        for name, h in self._latency.items():
            if name not in HIST_NAMES:
                continue
            b = np.asarray(h.get("buckets") or [], dtype=np.int64).reshape(-1, 3)
            if not len(b) or not h.get("count"):
                continue
            out[name] = (b[:, 0], b[:, 1], b[:, 2], {k: h[k] for k in ("p50", "p99", "p99.9") if k in h})
        return out

    def stats(self) -> dict:
        return dict(self._stats)

    # -- the thread ----------------------------------------------------------------------------------
    def start(self) -> "ApiFeed":
        # httpx imported here, not first on the feed's thread: importing it tries httpcore's trio backend,
        # whose failed import leaves sys.modules again, and Panel's module record (panel/io/reload.py),
        # walking what the page's module imported meanwhile, met that name gone (a KeyError, a 500)
        import httpx  # noqa: F401
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="api-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _headers(self) -> dict:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def _failed(self, what: str, e: BaseException) -> None:
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = " (the server needs a token: --api-token-file FILE or WORKBENCH_API_TOKEN)" if status in (401, 403) \
            else ""
        self.connection_error = f"The server at {self.url} cannot be read ({what}): {type(e).__name__}: {e}{hint}"

    def _add(self, name: str, table: pa.Table) -> None:
        if table.num_rows:
            with self._lock:
                self._tables.setdefault(name, []).append(table)

    def _add_opportunities(self, rows: list[dict]) -> None:
        fresh = [r for r in rows if r.get("opportunity_id") not in self._seen]
        self._seen.update(r.get("opportunity_id") for r in fresh)
        if fresh:
            self._add("opportunities", with_ts(pa.Table.from_pylist(fresh)))

    async def _main(self) -> None:
        import httpx
        async with httpx.AsyncClient(base_url=self.url, headers=self._headers(), timeout=HTTP_TIMEOUT_S) as http:
            last_ns = None
            while not self._stop.is_set():
                try:
                    last_ns = await self._history(http)
                    break
                except (httpx.HTTPError, ValueError, pa.ArrowInvalid) as e:
                    self._failed("history", e)
                    await asyncio.sleep(RETRY_S)
            if self._stop.is_set():
                return
            tasks = [asyncio.create_task(self._poll(http)), asyncio.create_task(self._stream(last_ns))]
            while not self._stop.is_set():
                await asyncio.sleep(0.2)
            for t in tasks:
                t.cancel()

    async def _history(self, http) -> int | None:
        """The store's opportunities, oldest first; the newest one's time (None when there are none)."""
        cursor, got, last_ns = None, 0, None
        while got < HISTORY_ROWS_MAX:
            params = {"limit": HISTORY_PAGE_ROWS, **({"cursor": cursor} if cursor else {})}
            r = await http.get("/v1/opportunities", params=params, headers={"accept": ARROW_STREAM})
            r.raise_for_status()
            table = pa.ipc.open_stream(r.content).read_all()
            if table.num_rows:
                self._add_opportunities(table.to_pylist())
                got += table.num_rows
                last_ns = int(table.column("timestamp_ns")[-1].as_py())
            cursor = r.headers.get(NEXT_CURSOR_HEADER) or None
            if not cursor or not table.num_rows:
                break
        self.history_rows = got
        self.connection_error = None
        return last_ns

    async def _poll(self, http) -> None:
        import httpx
        while True:
            try:
                s = await http.get("/v1/stats")
                s.raise_for_status()
                lat = await http.get("/v1/latency")
                lat.raise_for_status()
                self._stats, self._latency = s.json(), lat.json()
                self.connection_error = None
            except (httpx.HTTPError, ValueError) as e:
                self._failed("stats", e)
            await asyncio.sleep(POLL_S)

    async def _stream(self, history_last_ns: int | None) -> None:
        import websockets
        first = True
        while True:
            try:
                async with websockets.connect(ws_url(self.url), additional_headers=self._headers(),
                                              max_size=None) as ws:
                    opp = self._next_seq["opportunities"]
                    if opp is not None:
                        start = opp                                   # a reconnect: after the last one received
                    elif first and history_last_ns is not None:
                        start = {"time_ns": history_last_ns}          # the history's end (repeats are skipped)
                    else:
                        start = 0
                    await ws.send(orjson.dumps({"type": "subscribe", "channels": ["opportunities"], "from": start}))
                    tx = self._next_seq["transactions"]
                    await ws.send(orjson.dumps({"type": "subscribe", "channels": ["transactions"], "format": "arrow",
                                                "from": tx if tx is not None else 0}))
                    first = False
                    async for msg in ws:
                        self._message(msg)
            except asyncio.CancelledError:
                raise
            except Exception as e:          # noqa: BLE001 - refused, closed, a bad frame: said on the page, then again
                self._failed("WebSocket", e)
            await asyncio.sleep(RETRY_S)

    def _message(self, msg) -> None:
        if isinstance(msg, bytes):          # an Arrow frame of the transactions channel
            table = pa.ipc.open_stream(msg).read_all()
            head = orjson.loads((table.schema.metadata or {}).get(ARROW_HEADER_KEY, b"{}"))
            self._next_seq["transactions"] = head.get("last_seq", -1) + 1
            self._add("tx_features", table.replace_schema_metadata(None))
            return
        m = orjson.loads(msg)
        kind = m.get("type")
        if kind == "rows" and m.get("channel") == "opportunities":
            self._next_seq["opportunities"] = m["last_seq"] + 1
            self._add_opportunities(m["rows"])
        elif kind == "stored":
            self._add_opportunities(m["rows"])
        elif kind == "gap":
            self.missed += int(m.get("missed", 0))
            ch = m.get("channel")
            if ch in self._next_seq:
                self._next_seq[ch] = int(m["last_seq"]) + 1
        elif kind == "error":
            self.connection_error = f"The server at {self.url} refused a subscription: {m.get('message')}"


def feed_from_args(api: argparse.Namespace, key: str) -> tuple[ApiFeed | None, list[str]]:
    """The feed ``--api`` asks for (one per Panel server, shared by its pages), or the messages."""
    import panel as pn
    problems = [p for p in (api_problem(api.api),) if p]
    token, problem = api_token(api.api_token_file)
    if problem:
        problems.append(problem)
    if problems:
        return None, problems
    cache = pn.state.cache
    if key not in cache:
        cache[key] = ApiFeed(api.api, token).start()
    return cache[key], []
