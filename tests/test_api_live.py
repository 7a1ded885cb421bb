"""`workbench serve --live` as a real process. UDP: the market capture's transaction datagrams
sent to its port on loopback, a WebSocket client subscribed before they arrive; the client gets
exactly the rows of the run's opportunities.parquet, in order, with contiguous sequence numbers,
and SIGINT stops the engine with every row written (summary.json says so). AF_PACKET (root): the
same through a veth pair, the server and its client in the test's own network namespace."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
import pytest
import websockets

from test_api_serve import CAPTURE, MARKET, RUN_S, Server, _free_port
from workbench.capture import open_capture
from workbench.store.columns import mev_opportunities_table

pytestmark = pytest.mark.timeout(900)

TXN_PORT = 8003                  # the market capture's transaction port (synth/frame.py)
BURST = 100                      # datagrams sent back to back, then a short pause (~50k datagrams/s)
QUIET_S = 3.0                    # no new frame this long after the last datagram: the run handed everything on


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _txn_payloads() -> list[bytes]:
    """UDP payloads of the capture's untagged IPv4 datagrams to the transaction port (not fragments)."""
    out = []
    for b in open_capture(CAPTURE):
        for i in range(b.n):
            f = bytes(b.frame(i))
            if f[12:14] != b"\x08\x00" or f[23] != 17 or struct.unpack("!H", f[20:22])[0] & 0x3FFF:
                continue
            if struct.unpack("!H", f[36:38])[0] != TXN_PORT:
                continue
            out.append(f[42:14 + struct.unpack("!H", f[16:18])[0]])
    return out


def _live_rows(out) -> list[dict]:
    """opportunities.parquet in the stream's shape (source 'live'), with the wall-clock detection cost
    kept apart in opportunity_costs.parquet put back by id."""
    from test_api_serve import _json_rows
    rows = _json_rows(mev_opportunities_table(pq.read_table(out / "opportunities.parquet"), "live"))
    costs = {r["opportunity_id"]: r["detect_ns"] for r in pq.read_table(out / "opportunity_costs.parquet").to_pylist()}
    return [dict(r, detect_latency_ns=costs[r["opportunity_id"]]) for r in rows]


def _udp_bound(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/udp writes them) of the UDP sockets bound to ``port``."""
    lines = open("/proc/net/udp").read().splitlines()[1:]
    return {f[1].split(":")[0] for f in (ln.split() for ln in lines) if int(f[1].split(":")[1], 16) == port}


def test_serve_live_udp_streams_exactly_the_runs_opportunities(tmp_path, monkeypatch):
    port = _free_udp_port()
    payloads = _txn_payloads()
    # the run takes the server's settings (file < WORKBENCH_* environment < flags), as `workbench live` does
    monkeypatch.setenv("WORKBENCH_UDP_BIND_ADDR", "127.0.0.1")
    s = Server(tmp_path, "--live", "--source", "udp", "--ports", str(port), "--market", str(MARKET))
    try:
        deadline = time.monotonic() + RUN_S
        while (st := s.get("/v1/stats").json())["run"]["phase"] != "live":
            assert st["run"]["phase"] != "failed", st
            assert time.monotonic() < deadline, st
            time.sleep(0.2)
        assert _udp_bound(port) == {"0100007F"}                 # 127.0.0.1, not the default 0.0.0.0

        async def go():
            async with websockets.connect(f"ws://127.0.0.1:{s.port}/ws", max_size=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
                tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                for k, p in enumerate(payloads):
                    tx.sendto(p, ("127.0.0.1", port))
                    if k % BURST == BURST - 1:
                        await asyncio.sleep(0.002)
                tx.close()
                msgs, rows = [], 0
                deadline = time.monotonic() + RUN_S
                while True:
                    try:
                        msgs.append(json.loads(await asyncio.wait_for(ws.recv(), QUIET_S)))
                        rows += len(msgs[-1].get("rows", ()))
                    except TimeoutError:
                        # quiet: done once the engine has taken every datagram and every row it published
                        # came (on a loaded machine the run can fall silent for QUIET_S before either)
                        st = (await asyncio.to_thread(s.get, "/v1/stats")).json()
                        if (st["run"]["packets"] == len(payloads)
                                and st["ws"]["next_seq"].get("opportunities", 0) == rows):
                            return msgs, time.time_ns()
                        assert time.monotonic() < deadline, st

        msgs, read_until = asyncio.run(go())
        stats = s.get("/v1/stats").json()
    finally:
        s.stop()
    assert s.proc.returncode in (0, 130)
    summary = json.loads((s.out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["drops"] == 0
    assert summary["packets"] == len(payloads) == stats["run"]["packets"]
    expected = _live_rows(s.out)
    assert len(expected) > 50
    assert all(m["type"] == "rows" for m in msgs)
    seq = 0
    for m in msgs:                                           # contiguous from 0, handed_ns on every frame
        assert m["first_seq"] == seq and m["last_seq"] == seq + len(m["rows"]) - 1
        assert 0 < m["handed_ns"] <= read_until
        seq = m["last_seq"] + 1
    assert [r for m in msgs for r in m["rows"]] == expected   # every row once, in order, as written


# the WebSocket client inside the namespace: waits for the run to capture, subscribes from 0, says
# READY, then prints every message it gets until, after QUIET_S without one, the engine has taken
# every frame sent (their count comes on stdin once sent) and every row it published came
_NS_CLIENT = textwrap.dedent("""
    import asyncio, json, sys, time
    import httpx, websockets
    port, quiet = int(sys.argv[1]), float(sys.argv[2])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(base + "/v1/stats", timeout=2).json()["run"]["phase"] == "live":
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "the server did not start capturing"
        time.sleep(0.2)
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities"], "from": 0}))
            await ws.recv()
            print("READY", flush=True)
            msgs = [json.loads(await asyncio.wait_for(ws.recv(), 120))]
            rows, sent = len(msgs[0].get("rows", ())), None
            while True:
                try:
                    msgs.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
                    rows += len(msgs[-1].get("rows", ()))
                except TimeoutError:
                    if sent is None:
                        sent = int(await asyncio.to_thread(sys.stdin.readline))
                    st = httpx.get(base + "/v1/stats", timeout=5).json()
                    if st["run"]["packets"] == sent and st["ws"]["next_seq"].get("opportunities", 0) == rows:
                        return msgs
                    assert time.monotonic() < deadline, st
    print(json.dumps(asyncio.run(go())), flush=True)
""")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="AF_PACKET in a namespace needs root")
def test_serve_live_afpacket_streams_exactly_the_runs_opportunities(tmp_path):
    from test_live import Veth, send
    v = Veth()
    server = client = None
    try:
        port = _free_port()
        out = tmp_path / "out"
        log = open(tmp_path / "serve.log", "wb")
        server = subprocess.Popen(["ip", "netns", "exec", v.ns, sys.executable, "-m", "workbench.cli", "serve",
                                   "--live", "--iface", v.rx, "--market", str(MARKET), "--db",
                                   f"chdb://{tmp_path / 'db'}", "-o", str(out), "--port", str(port)],
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        client = subprocess.Popen(["ip", "netns", "exec", v.ns, sys.executable, "-c", _NS_CLIENT, str(port),
                                   str(QUIET_S)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        assert client.stdout.readline().strip() == "READY", client.stderr.read() + (tmp_path / "serve.log").read_text()
        res = send(v.tx, CAPTURE, 50_000, 1)
        msgs = json.loads(client.communicate(f"{res['packets']}\n", timeout=300)[0])
        server.send_signal(signal.SIGINT)
        server.wait(120)
        log.close()
    finally:
        for p in (client, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        v.close()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["drops"] == 0 and summary["packets"] == res["packets"]
    expected = _live_rows(out)
    assert len(expected) > 50
    seq = 0
    for m in msgs:
        assert m["type"] == "rows" and m["first_seq"] == seq and m["last_seq"] == seq + len(m["rows"]) - 1
        seq = m["last_seq"] + 1
    assert [r for m in msgs for r in m["rows"]] == expected


@pytest.mark.parametrize("args, words", [
    (["--live"], "--live needs --iface IF"),
    (["--live", "--source", "udp"], "--live --source udp needs --ports P"),
    (["--live", "--source", "pcap", "--iface", "lo"], "--source pcap"),
    (["--live", "--iface", "nosuchif0"], "--iface nosuchif0: no such network interface"),
    (["--iface", "lo"], "--iface is for live capture: add --live"),
    (["--live", "--source", "udp", "--ports", "0"], "--ports"),
    (["--live", "--replay", str(CAPTURE), "--iface", "lo"], "one source at a time"),
])
def test_bad_live_flags_are_refused_with_a_message_before_binding(tmp_path, args, words):
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "serve", *args, "--db", f"chdb://{tmp_path / 'db'}",
                        "--port", str(_free_port())], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert words in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
