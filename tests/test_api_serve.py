"""`workbench serve` as a real process on a free loopback port, with real clients (httpx,
websockets): a paced replay of the market capture streams exactly its opportunities.parquet
on /ws; the store's rows page by keyset; POST round trips, is idempotent and writes nothing of
a bad batch; /metrics parses with Prometheus' own parser and agrees with the run's summary;
a token guards every route but /healthz, the WebSocket included."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from prometheus_client.parser import text_string_to_metric_families

from workbench.api.loop_priority import loop_fifo_priority
from workbench.store.columns import mev_opportunities_table

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / "captures" / "market.pcapng"
MARKET = REPO / "captures" / "market.pcapng.market"
START_S = 120              # server up (imports, store schema)
RUN_S = 240                # the replay done (first start compiles the engine)

pytestmark = pytest.mark.timeout(600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, *extra: str, token: str | None = None):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = tmp / "out"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        # one client for the server's life: httpx.get builds a new client for each request, and with
        # it a TLS context from certifi's bundle, even for http://: far more than the request costs
        self.http = httpx.Client(timeout=30)
        env = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp / "data")}
        env.pop("WORKBENCH_API_TOKEN", None)
        self.log = open(tmp / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", "--db", f"chdb://{tmp / 'db'}", "-o", str(self.out),
             "--port", str(self.port), *extra, *(["--token", token] if token else [])],
            cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_S
        while True:
            assert self.proc.poll() is None, (tmp / "serve.log").read_text()
            try:
                if self.http.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz in time"
            time.sleep(0.2)

    def get(self, path: str, headers: dict | None = None, **kw) -> httpx.Response:
        return self.http.get(self.base + path, headers={**self.headers, **(headers or {})}, **kw)

    def post(self, path: str, body) -> httpx.Response:
        return self.http.post(self.base + path, content=orjson.dumps(body), headers=self.headers, timeout=60)

    def wait_done(self) -> dict:
        deadline = time.monotonic() + RUN_S
        while True:
            st = self.get("/v1/stats").json()
            if st["run"]["phase"] in ("done", "failed"):
                assert st["run"]["phase"] == "done", st
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.2)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        self.http.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    s = Server(tmp, "--replay", str(CAPTURE), "--market", str(MARKET), "--speed", "2")
    yield s
    s.stop()


def _json_rows(table) -> list[dict]:
    """Rows as the server sends them (the store's names; NaN as null), through JSON and back."""
    return [orjson.loads(orjson.dumps(r)) for r in table.to_pylist()]


def _run_rows(out: Path) -> list[dict]:
    """opportunities.parquet in the server's shape, with the wall-clock detection cost the run keeps
    apart in opportunity_costs.parquet (row_files.py WALL_CLOCK) put back by id."""
    rows = _json_rows(mev_opportunities_table(pq.read_table(out / "opportunities.parquet"), "replay"))
    costs = {r["opportunity_id"]: r["detect_ns"] for r in pq.read_table(out / "opportunity_costs.parquet").to_pylist()}
    return [dict(r, detect_latency_ns=costs[r["opportunity_id"]]) for r in rows]


async def _collect(url: str, sub: dict, server: "Server", headers=None, budget_s: float = RUN_S):
    """Subscribe to the opportunities channel and read until the run is done and every item the
    channel numbered has arrived."""
    frames, rows = [], []
    async with websockets.connect(url, additional_headers=headers or {}, max_size=None) as ws:
        await ws.send(json.dumps(sub))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        first = sub.get("from", ack["next_seq"]["opportunities"])
        async with asyncio.timeout(budget_s):
            while True:
                try:
                    m = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                except TimeoutError:
                    st = (await asyncio.to_thread(server.get, "/v1/stats")).json()
                    if st["run"]["phase"] == "done" and first + len(rows) == st["ws"]["next_seq"]["opportunities"]:
                        break
                    continue
                assert m["type"] == "rows", m
                frames.append(m)
                rows += m["rows"]
    return ack, frames, rows


async def _collect_arrow(url: str, server: "Server", budget_s: float = RUN_S):
    """As ``_collect``, from 0 in Arrow frames: (the ack's time.time_ns(), each frame's header, the rows
    as JSON would give them)."""
    heads, rows = [], []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0, "format": "arrow"}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert ack["type"] == "subscribed"
        acked_ns = time.time_ns()
        async with asyncio.timeout(budget_s):
            while True:
                try:
                    m = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    st = (await asyncio.to_thread(server.get, "/v1/stats")).json()
                    if st["run"]["phase"] == "done" and len(rows) == st["ws"]["next_seq"]["opportunities"]:
                        break
                    continue
                assert isinstance(m, bytes), m[:200]            # a gap or an error would be text
                t = pa.ipc.open_stream(m).read_all()
                heads.append(orjson.loads(t.schema.metadata[b"frame"]))
                rows += [orjson.loads(orjson.dumps(r)) for r in t.to_pylist()]
    return acked_ns, heads, rows


def test_replay_through_serve_streams_exactly_its_opportunities_in_order(server):
    url = f"ws://127.0.0.1:{server.port}/ws"

    async def both():       # a JSON and an Arrow subscriber at once, while the paced run goes on
        return await asyncio.gather(
            _collect(url, {"type": "subscribe", "channels": ["opportunities"], "from": 0}, server),
            _collect_arrow(url, server))
    (ack, frames, rows), (acked_ns, heads, arrow_rows) = asyncio.run(both())
    assert ack["type"] == "subscribed"
    expected = _run_rows(server.out)
    # the Arrow frames hold the same rows, those sent as the run handed them on (their tables made
    # from the engine's records when the frame was) as well as those from memory
    assert arrow_rows == expected
    assert any(h["handed_ns"] > acked_ns for h in heads) and [h["first_seq"] for h in heads] == sorted(
        {h["first_seq"] for h in heads})
    assert len(expected) > 50
    assert ack["next_seq"]["opportunities"] < len(expected)   # subscribed while the paced run went on
    assert rows == expected                                   # every row once, in order, as written
    seq = 0
    for f in frames:                                          # contiguous sequence numbers from 0
        assert f["first_seq"] == seq and f["last_seq"] == seq + len(f["rows"]) - 1
        seq = f["last_seq"] + 1
    # the frames written as the run handed their rows on were timed by the server (catch-ups not)
    own, sent = server.get("/v1/latency").json()["ws_frame_ns"], server.get("/v1/stats").json()["ws"]["frames_sent"]
    assert 0 < own["count"] < sent and 0 < own["p50"] <= own["p99"]
    # a late subscriber resumes from the middle without a hole or a repeat
    _, frames2, rows2 = asyncio.run(_collect(url, {"type": "subscribe", "channels": ["opportunities"], "from": 50},
                                             server))
    assert rows2 == expected[50:] and frames2[0]["first_seq"] == 50


def test_rest_pages_the_stored_rows_by_keyset_and_filters(server):
    server.wait_done()
    expected = pq.read_table(server.out / "opportunities.parquet").to_pylist()
    got, cursor = [], None
    while True:
        r = server.get("/v1/opportunities", params={"limit": 25, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        got += page["rows"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    run_rows = [g for g in got if g["source"] == "replay"]
    assert sorted(g["opportunity_id"] for g in run_rows) == sorted(e["opportunity_id"] for e in expected)
    keys = [(g["timestamp_ns"], g["opportunity_id"]) for g in got]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    sandwiches = server.get("/v1/opportunities", params={"type": "sandwich", "limit": 5000}).json()["rows"]
    assert len([g for g in sandwiches if g["source"] == "replay"]) == sum(e["type"] == "sandwich" for e in expected)
    rich = server.get("/v1/opportunities", params={"min_profit": 1.0, "limit": 5000}).json()["rows"]
    assert rich and all(g["profit"] >= 1.0 for g in rich)
    arrow = server.get("/v1/opportunities", params={"limit": 40},
                       headers={"Accept": "application/vnd.apache.arrow.stream"})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert [orjson.loads(orjson.dumps(r)) for r in table.to_pylist()] == got[:40]     # the JSON page's rows
    assert arrow.headers["x-next-cursor"] == server.get("/v1/opportunities", params={"limit": 40}).json()[
        "next_cursor"]
    big = server.http.get(server.base + "/v1/opportunities", params={"limit": 5000},
                          headers={"Accept-Encoding": "gzip"})
    assert big.headers.get("content-encoding") == "gzip" and len(big.json()["rows"]) == len(got)
    one = expected[7]
    r = server.get(f"/v1/opportunities/{one['opportunity_id']}")
    assert r.status_code == 200 and r.json()["profit"] == one["expected_profit_sol"]
    assert server.get(f"/v1/opportunities/{uuid.uuid4()}").status_code == 404
    bad = server.get("/v1/opportunities", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    runs = server.get("/v1/runs").json()["runs"]
    assert len(runs) == 1 and runs[0]["opportunity_rows"] == len(expected)
    run = server.get(f"/v1/runs/{runs[0]['run_id']}").json()
    assert run["summary"]["opportunities"]["count"] == len(expected) == run["opportunities"]
    spec = server.get("/openapi.json").json()
    assert "/v1/opportunities" in spec["paths"] and "opportunity_id" in spec["components"]["schemas"]["Opportunity"][
        "properties"]


def summary_count(server) -> int:
    return json.loads((server.out / "summary.json").read_text())["opportunities"]["count"]


def _count(server) -> int:
    return server.get("/v1/stats").json()["ws"]["next_seq"]["opportunities"]


def test_post_round_trips_is_idempotent_and_a_bad_batch_writes_nothing(server):
    server.wait_done()
    base = server.get("/v1/opportunities", params={"limit": 1}).json()["rows"][0]
    new = [dict(base, opportunity_id=str(uuid.uuid4()), run_id="posted", source="unknown",
                timestamp_ns=base["timestamp_ns"] + i) for i in range(3)]
    r = server.post("/v1/opportunities", new)
    assert r.status_code == 201 and r.json()["inserted"] == 3, r.text
    for row in new:
        assert server.get(f"/v1/opportunities/{row['opportunity_id']}").json() == row
    again = server.post("/v1/opportunities", new)
    assert again.status_code == 200 and again.json() == {"inserted": 0, "duplicates": 3, "ids": []}
    stored = server.get("/v1/opportunities", params={"run": "posted", "limit": 100}).json()["rows"]
    assert len(stored) == 3
    seq_before = _count(server)
    good_then_bad = [dict(base, opportunity_id=str(uuid.uuid4())), dict(base, opportunity_id=str(uuid.uuid4()),
                                                                        profit="lots")]
    r = server.post("/v1/opportunities", good_then_bad)
    assert r.status_code == 422
    assert (r.json()["row"], r.json()["field"]) == (1, "profit")
    assert server.get(f"/v1/opportunities/{good_then_bad[0]['opportunity_id']}").status_code == 404
    assert _count(server) == seq_before                  # nothing broadcast either
    big = server.post("/v1/opportunities", [base] * 10_001)
    assert big.status_code == 422 and "at most" in big.json()["message"]


def test_metrics_parse_and_the_histograms_equal_the_runs_summary(server):
    server.wait_done()
    r = server.get("/metrics")
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    summary = json.loads((server.out / "summary.json").read_text())

    def hist(name):
        samples = fams[name].samples
        buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name == name + "_bucket"]
        count = next(s.value for s in samples if s.name == name + "_count")
        return buckets, count

    buckets, count = hist("opportunity_detection_ns")
    assert count == summary["detect_ns"]["count"] == summary["opportunities"]["count"] > 0
    assert buckets[-1] == (math.inf, count)
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)          # cumulative

    buckets, count = hist("packet_processing_ns")
    for q, key in ((50, "p50"), (99, "p99"), (99.9, "p99.9")):
        rank = max(1, math.ceil(q / 100 * count))
        le = next(b for b, c in buckets if c >= rank)
        assert min(int(le), summary["packet_ns"]["max"]) == summary["packet_ns"][key]
    packets = {s.labels["status"]: s.value for s in fams["workbench_packets"].samples}
    assert sum(packets.values()) == summary["packets"]
    opps = {s.labels["type"]: s.value for s in fams["workbench_opportunities"].samples}
    assert opps["sandwich"] >= summary["opportunities"]["by_type"]["sandwich"]
    lat = server.get("/v1/latency").json()
    assert lat["packet_processing_ns"]["p99"] == summary["packet_ns"]["p99"]


def test_a_token_guards_every_route_but_healthz_the_websocket_too(tmp_path):
    s = Server(tmp_path, token="sekrit")
    try:
        assert s.http.get(s.base + "/healthz", timeout=10).status_code == 200
        assert s.http.get(s.base + "/v1/stats", timeout=10).status_code == 401
        assert s.http.get(s.base + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 403
        assert s.get("/v1/stats").status_code == 200

        async def ws(headers):
            async with websockets.connect(f"ws://127.0.0.1:{s.port}/ws", additional_headers=headers) as c:
                await c.send(json.dumps({"type": "subscribe", "channels": ["stats"]}))
                return json.loads(await asyncio.wait_for(c.recv(), 10))

        with pytest.raises(InvalidStatus):
            asyncio.run(ws({}))
        assert asyncio.run(ws(s.headers))["type"] == "subscribed"
        r = s.http.post(s.base + "/v1/opportunities", content=b"x" * (17 * 1024 * 1024), headers=s.headers, timeout=30)
        assert r.status_code == 413
    finally:
        s.stop()


@pytest.mark.parametrize("args, words", [
    (["--host", "0.0.0.0"], "--token"),
    (["--replay", str(CAPTURE), "--market", "/no/such/market"], "--market /no/such/market: no such folder"),
    (["--replay", "/no/such.pcap"], "--replay /no/such.pcap: no such capture file"),
    (["--replay", str(CAPTURE), "--speed", "0"], "--speed"),
    (["--rate-limit", "-1"], "--rate-limit"),
])
def test_bad_flags_are_refused_with_a_message_before_binding(tmp_path, args, words):
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_API_TOKEN"}
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", *args, "--db", f"chdb://{tmp_path / 'db'}",
                        "--port", str(_free_port())], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2, r.stderr
    assert words in " ".join(r.stderr.split()) and "Traceback" not in r.stderr


def test_stats_and_latency_channels_carry_numbered_items_and_a_bad_message_gets_an_error(server):
    server.wait_done()

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.send("not json")
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "error"
            await ws.send(json.dumps({"type": "subscribe", "channels": ["tea"]}))
            assert "channels" in json.loads(await asyncio.wait_for(ws.recv(), 10))["message"]
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 10**9}))
            ahead = json.loads(await asyncio.wait_for(ws.recv(), 10))
            numbered = await asyncio.to_thread(_count, server)
            assert ahead["type"] == "error" and f"up to {numbered - 1} only" in ahead["message"]
            await ws.send(json.dumps({"type": "subscribe", "channels": ["stats", "latency"]}).encode())  # binary
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "subscribed"
            seen = {}
            async with asyncio.timeout(30):
                while len(seen) < 2:
                    m = json.loads(await ws.recv())
                    seen.setdefault(m["channel"], m)
            return seen

    seen = asyncio.run(go())
    stats, latency = seen["stats"]["rows"][0], seen["latency"]["rows"][0]
    assert stats["run"]["opportunities"] == summary_count(server) and stats["run"]["phase"] == "done"
    summary = json.loads((server.out / "summary.json").read_text())
    assert latency["packet_processing_ns"]["p99"] == summary["packet_ns"]["p99"]
    assert seen["stats"]["first_seq"] == seen["stats"]["last_seq"] >= 0


@pytest.mark.skipif(not hasattr(os, "SCHED_FIFO"), reason="no SCHED_FIFO here")
def test_loop_rt_raises_the_event_loop_thread_alone_or_says_why_not(tmp_path):
    s = Server(tmp_path, "--loop-rt")
    try:
        assert s.get("/v1/opportunities?limit=1").status_code == 200     # a store query: a worker thread of the loop's
        said = s.get("/v1/stats").json()["event_loop_thread"]
        prio = loop_fifo_priority()
        if "REFUSED" in said:                   # an unprivileged host: the reason, in words that say the fix
            assert f"SCHED_FIFO priority {prio}: REFUSED (the host refused" in said
            return
        assert said.startswith(f"SCHED_FIFO priority {prio}: yes")
        reset = getattr(os, "SCHED_RESET_ON_FORK", 0)
        assert os.sched_getscheduler(s.proc.pid) & ~reset == os.SCHED_FIFO      # uvicorn's loop is the main thread
        assert os.sched_getparam(s.proc.pid).sched_priority == prio
        others = {}
        for t in (int(t) for t in os.listdir(f"/proc/{s.proc.pid}/task") if int(t) != s.proc.pid):
            with contextlib.suppress(ProcessLookupError):       # (a thread may end meanwhile)
                others[t] = os.sched_getscheduler(t) & ~reset
        assert others and set(others.values()) == {os.SCHED_OTHER}, others
    finally:
        s.stop()
