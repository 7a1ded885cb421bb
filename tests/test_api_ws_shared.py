"""Frames built once for every socket (api/shared_frame.py, api/ws_protocol.py): the built frame is
the frame the `websockets` library parses back to the payload, at every length class; a top-speed
replay through `workbench serve` (a real process) reaches several real clients, each getting every
row once, in order, the same bytes for all; an ASGI server that does not offer the extension
(Starlette's TestClient) gets the same messages the ordinary way. (A client that stops reading:
tests/test_api_flow.py, through the same protocol.)"""

from __future__ import annotations

import asyncio
import json
import uuid

import orjson
import pyarrow as pa
import pytest
import websockets
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from test_api_serve import CAPTURE, MARKET, Server, _run_rows
from workbench.api.shared_frame import Shared

pytestmark = pytest.mark.timeout(600)

CLIENTS = 6                     # JSON subscribers of the replay (plus one in Arrow frames)


def _parsed(wire: bytes) -> Frame:
    """``wire`` read back by the websockets library's own parser, as a client reads a server frame."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("the parser wanted more bytes than the frame holds")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 1_000_000])
@pytest.mark.parametrize("binary", [False, True])
def test_a_built_frame_parses_back_to_its_payload_at_every_length_class(size, binary):
    payload = (b"x" * size) if not binary else bytes(range(256)) * (size // 256) + bytes(size % 256)
    m = Shared(payload, binary)
    frame = _parsed(m.wire)
    assert frame.opcode == (Opcode.BINARY if binary else Opcode.TEXT) and frame.fin
    assert frame.data == payload and len(m.wire) == len(payload) + (2 if size < 126 else 4 if size < 65_536 else 10)
    assert m.wire is m.wire                                      # built once


def test_a_top_speed_replay_reaches_every_client_with_the_same_bytes_every_row_once_in_order(tmp_path):
    s = Server(tmp_path, "--replay", str(CAPTURE), "--market", str(MARKET))
    url = f"ws://127.0.0.1:{s.port}/ws"

    async def client(sub: dict) -> list:
        got = []
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps(sub))
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
            while True:
                try:
                    got.append(await asyncio.wait_for(ws.recv(), 2.0))
                except TimeoutError:
                    st = (await asyncio.to_thread(s.get, "/v1/stats")).json()
                    want = st["ws"]["next_seq"][sub["channels"][0]]
                    if st["run"]["phase"] == "done" and _count(got) >= want:
                        return got

    async def go():
        json_sub = {"type": "subscribe", "channels": ["opportunities"], "from": 0}
        arrow_sub = {"type": "subscribe", "channels": ["transactions"], "from": 0, "format": "arrow"}
        return await asyncio.gather(*(client(json_sub) for _ in range(CLIENTS)), client(arrow_sub))

    try:
        *each, arrow = asyncio.run(go())
        st = s.wait_done()
    finally:
        s.stop()
    assert all(got == each[0] for got in each[1:])             # the same messages, byte for byte
    frames = [orjson.loads(m) for m in each[0]]
    assert [f["type"] for f in frames] == ["rows"] * len(frames)
    seq = 0
    for f in frames:                                           # every row once, in order, numbered without a hole
        assert f["first_seq"] == seq and f["last_seq"] == seq + len(f["rows"]) - 1
        seq = f["last_seq"] + 1
    assert [r for f in frames for r in f["rows"]] == _run_rows(s.out)
    assert st["ws"]["items_dropped"] == 0
    tables = [pa.ipc.open_stream(m).read_all() for m in arrow]
    firsts = [json.loads(t.schema.metadata[b"frame"])["first_seq"] for t in tables]
    assert firsts == sorted(firsts) and sum(t.num_rows for t in tables) == st["ws"]["next_seq"]["transactions"]


def _count(msgs: list) -> int:
    """Rows numbered in ``msgs`` (JSON frames by their sequence range, Arrow frames by their rows)."""
    n = 0
    for m in msgs:
        if isinstance(m, bytes):
            n += pa.ipc.open_stream(m).read_all().num_rows
        else:
            f = orjson.loads(m)
            n += f["last_seq"] - f["first_seq"] + 1 if f["type"] == "rows" else 0
    return n


def test_a_server_without_the_extension_gets_the_same_messages_the_ordinary_way(tmp_path):
    from starlette.testclient import TestClient

    from workbench.api.app import build_app
    from workbench.api.service import ServeOptions, make_service

    service = make_service(ServeOptions(db=f"chdb://{tmp_path / 'db'}").checked())
    hub = service.hub
    rows = [{"timestamp_ns": 1_750_000_000_000_000_000 + i, "opportunity_id": str(uuid.uuid4()),
             "type": "arbitrage", "profit": 0.25, "pools": ["1" * 44], "victim_signature": "S" * 88,
             "trigger_signature": "T" * 88} for i in range(3)]
    with TestClient(build_app(service)) as http, http.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "subscribe", "channels": ["opportunities"]}))
        assert ws.receive_json()["type"] == "subscribed"
        r = http.post("/v1/opportunities", json=rows)
        assert r.status_code == 201, r.text
        frame = ws.receive_text()                             # a text message, as the hub built it
        got = orjson.loads(frame)
        assert got["first_seq"] == 0 and [r["opportunity_id"] for r in got["rows"]] == [r["opportunity_id"]
                                                                                         for r in rows]
        assert frame.encode() == hub.channels["opportunities"].frames(0)[0][2].payload    # the shared frame's bytes
    service.store.close()
