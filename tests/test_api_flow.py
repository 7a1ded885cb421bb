"""`workbench serve` under pressure, a real process and real clients: a WebSocket client that
stops reading gets a counted gap while another loses nothing; past the rate limit, 429 with
Retry-After; the OpenAPI document fuzzed by schemathesis gets no 5xx; SIGINT mid-run keeps the rows."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import websockets

from test_api_serve import CAPTURE, MARKET, Server, _run_rows
from workbench.api.security import RateLimit

pytestmark = pytest.mark.timeout(300)

BATCHES, ROWS = 30, 200           # frames of about 0.4 MB


def _batch(k: int) -> list[dict]:
    return [{"timestamp_ns": 1_750_000_000_000_000_000 + k * ROWS + i, "opportunity_id": str(uuid.uuid4()),
             "type": "arbitrage", "profit": 0.001 * i, "pools": [f"{p:0>44}" for p in range(40)],
             "victim_signature": "S" * 88, "trigger_signature": "T" * 88} for i in range(ROWS)]


def test_a_client_that_stops_reading_gets_a_counted_gap_and_the_others_lose_nothing(tmp_path):
    s = Server(tmp_path, "--ws-queue-frames", "4")
    url = f"ws://127.0.0.1:{s.port}/ws"
    sub = json.dumps({"type": "subscribe", "channels": ["opportunities"]})
    total = BATCHES * ROWS

    async def go():
        # the slow client: its library stops reading once one frame waits (max_queue=1), and its kernel
        # buffer is fixed small (SO_RCVBUF turns off autotuning, which may grow to tens of MB on loopback)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", s.port))
        sock.setblocking(False)
        async with websockets.connect(url, sock=sock, max_size=None, max_queue=1) as slow, \
                websockets.connect(url, max_size=None) as fast:
            for c in (slow, fast):
                await c.send(sub)
                assert json.loads(await asyncio.wait_for(c.recv(), 30))["type"] == "subscribed"
            fast_rows, seq = 0, 0

            async def read_fast():
                nonlocal fast_rows, seq
                while fast_rows < total:
                    m = json.loads(await fast.recv())
                    assert m["type"] == "rows" and m["first_seq"] == seq, m.get("type")
                    seq = m["last_seq"] + 1
                    fast_rows += len(m["rows"])

            reader = asyncio.create_task(read_fast())
            async with httpx.AsyncClient(timeout=120) as http:
                for k in range(BATCHES):
                    r = await http.post(f"{s.base}/v1/opportunities", json=_batch(k))
                    assert r.status_code == 201, r.text
            async with asyncio.timeout(120):
                await reader
            assert fast_rows == total
            # now the slow client reads everything it was sent: frames and gaps cover every item once
            covered, gaps, want = 0, 0, 0
            async with asyncio.timeout(60):
                while covered < total:
                    m = json.loads(await slow.recv())
                    assert m["first_seq"] == want, m
                    want = m["last_seq"] + 1
                    covered += m["last_seq"] - m["first_seq"] + 1
                    if m["type"] == "gap":
                        assert m["missed"] == m["last_seq"] - m["first_seq"] + 1
                        gaps += m["missed"]
            return gaps

    try:
        gaps = asyncio.run(go())
        assert gaps > 0
        stats = s.get("/v1/stats").json()
        assert stats["ws"]["items_dropped"] == gaps
    finally:
        s.stop()


def test_past_the_rate_limit_the_server_answers_429_with_retry_after(tmp_path):
    s = Server(tmp_path, "--rate-limit", "5")
    try:
        codes = [s.http.get(s.base + "/v1/stats", timeout=10) for _ in range(12)]
        refused = [r for r in codes if r.status_code == 429]
        assert refused and all(int(r.headers["retry-after"]) >= 1 for r in refused)
        assert codes[0].status_code == 200
        assert s.http.get(s.base + "/healthz", timeout=10).status_code == 200     # never limited
    finally:
        s.stop()


def test_rate_limit_bucket_refills_at_the_rate():
    lim = RateLimit(2)
    assert lim.wait_s("a", 0.0) == 0 and lim.wait_s("a", 0.0) == 0
    assert lim.wait_s("a", 0.0) == pytest.approx(0.5)
    assert lim.wait_s("b", 0.0) == 0                  # per address
    assert lim.wait_s("a", 0.5) == 0


def test_the_openapi_document_fuzzed_never_gets_a_server_error(tmp_path):
    """schemathesis (bounded examples) against a running server: no route answers 5xx."""
    s = Server(tmp_path)
    try:
        r = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", f"{s.base}/openapi.json",
                            "--checks", "not_a_server_error", "--max-examples", "10", "--seed", "19"],
                           capture_output=True, text=True, timeout=240, cwd=tmp_path)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "No issues found" in r.stdout
    finally:
        s.stop()


def test_sigint_mid_replay_stops_the_engine_and_keeps_every_row_it_streamed(tmp_path):
    """Stopping the server mid-run: the run ends 'interrupted' with its rows written, and the rows
    the WebSocket delivered are exactly the head of the opportunities.parquet it wrote."""
    s = Server(tmp_path, "--replay", str(CAPTURE), "--market", str(MARKET), "--speed", "0.5")
    try:
        deadline = time.monotonic() + 240
        while s.get("/v1/stats").json()["ws"]["next_seq"]["opportunities"] < 5:
            assert time.monotonic() < deadline, "no opportunities streamed in time"
            time.sleep(0.2)

        async def head():
            async with websockets.connect(f"ws://127.0.0.1:{s.port}/ws", max_size=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
                await asyncio.wait_for(ws.recv(), 30)
                return json.loads(await asyncio.wait_for(ws.recv(), 30))["rows"]

        streamed = asyncio.run(head())
    finally:
        s.stop()
    assert s.proc.returncode in (0, 130)        # 130: uvicorn re-raises the SIGINT once it has shut down
    summary = json.loads((s.out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    written = _run_rows(s.out)
    assert 0 < len(streamed) <= len(written)
    assert streamed == written[:len(streamed)]
