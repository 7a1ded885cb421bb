"""The WebSocket route /ws: one socket's reader (client commands) and writer (its queue).

The hub (hub.py) holds the channels, the sequence numbers and the per-client queues; this
module only turns a client's messages into hub calls and writes the client's queue to its
socket, so a slow socket only ever slows its own writer task.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from .hub import CHANNELS
from .service import Service


def ws_endpoint(service: Service):
    """The /ws handler bound to ``service``."""

    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        client = service.hub.new_client()

        async def writer():
            while True:
                _channel, _first, _last, data = await client.queue.get()
                await socket.send_text(data)
                client.sent += 1
                service.hub.frames_sent += 1

        task = asyncio.create_task(writer())
        try:
            while True:
                msg = await socket.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                raw = msg.get("text")
                if raw is None:             # a binary frame: decode it as UTF-8 JSON too
                    raw = (msg.get("bytes") or b"").decode("utf-8", "replace")
                reply = _ws_command(service, client, raw)
                if reply is not None:
                    client.queue.put_nowait(("", -1, -1, orjson.dumps(reply).decode()))
        except WebSocketDisconnect:
            pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            service.hub.drop_client(client)

    return ws


def _ws_command(service: Service, client, raw: str) -> dict | None:
    """Handle one client message; the reply (queued in order before any frame it causes)."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"type": "error", "message": "messages are JSON objects, e.g. "
                                            '{"type":"subscribe","channels":["opportunities"]}'}
    if not isinstance(msg, dict):
        return {"type": "error", "message": "a message is a JSON object with a 'type'"}
    kind = msg.get("type")
    if kind == "ping":
        return {"type": "pong"}
    if kind not in ("subscribe", "unsubscribe"):
        return {"type": "error", "message": f"type {kind!r}: expected subscribe, unsubscribe or ping"}
    channels = msg.get("channels")
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        return {"type": "error", "message": f"channels {channels!r}: expected a list drawn from {list(CHANNELS)}"}
    if kind == "unsubscribe":
        service.hub.unsubscribe(client, channels)
        return {"type": "unsubscribed", "channels": channels}
    start = msg.get("from")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
        return {"type": "error", "message": f"from {start!r}: expected a sequence number >= 0"}
    ahead = [c for c in channels if start is not None and start > service.hub.channels[c].next_seq]
    if ahead:       # a sequence this server never numbered: a client of another server, or of an earlier run
        return {"type": "error", "message": f"from {start}: channel {ahead[0]} has numbered items up to "
                                            f"{service.hub.channels[ahead[0]].next_seq - 1} only (this server "
                                            "numbers from 0 at its start); subscribe without 'from', or from 0"}
    ack = {"type": "subscribed", "channels": channels, "from": start,
           "next_seq": {c: service.hub.channels[c].next_seq for c in channels}}
    client.queue.put_nowait(("", -1, -1, orjson.dumps(ack).decode()))
    service.hub.subscribe(client, channels, start)
    return None
