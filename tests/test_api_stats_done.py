"""A stats item that says the run is "done" comes after every row of the run on the socket, so a
client may stop reading there: the pump reads the run's phase before it takes the rows it then
publishes (a run says "done" only after its last hand-off). A real `workbench serve --replay`
(paced, so the client subscribes while it runs) and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from test_api_serve import CAPTURE, MARKET, RUN_S, Server, _run_rows

pytestmark = pytest.mark.timeout(600)


async def _until_done(url: str) -> tuple[dict, list[dict]]:
    rows = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "channels": ["opportunities", "stats"]}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
        async with asyncio.timeout(RUN_S):
            while True:
                m = json.loads(await ws.recv())
                if m["type"] != "rows":
                    continue
                if m["channel"] == "opportunities":
                    rows += m["rows"]
                elif m["channel"] == "stats" and any(s["run"]["phase"] == "done" for s in m["rows"]):
                    return ack, rows


def test_a_done_stats_item_follows_every_row_of_the_run(tmp_path):
    s = Server(tmp_path, "--replay", str(CAPTURE), "--market", str(MARKET), "--speed", "2")
    try:
        ack, rows = asyncio.run(_until_done(f"ws://127.0.0.1:{s.port}/ws"))
        expected = _run_rows(s.out)
        first = ack["next_seq"]["opportunities"]
        assert first < len(expected)                  # subscribed while the run went on
        assert rows == expected[first:]
    finally:
        s.stop()
