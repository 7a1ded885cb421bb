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

from .frames import ARROW_CHANNELS, FORMATS
from .hub import CHANNELS, ClientGone
from .resume import catch_up, parse_from, stored_since
from .service import Service
from .shared_frame import WIRE_EXTENSION, WIRE_KEY, Shared
from .tx_channel import FilterError, TxFilter

TIMED_CHANNELS = ("opportunities", "transactions")     # channels whose items carry an event time


def ws_endpoint(service: Service):
    """The /ws handler bound to ``service``."""

    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        client = service.hub.new_client()
        # the server writes a shared frame's built bytes (ws_protocol.py); any other server gets its payload
        offered = (socket.scope.get("extensions") or {}).get(WIRE_EXTENSION)
        wire = offered is not None
        client.write_now = (offered or {}).get("write_now")      # live frames written from publish (hub.py)

        hub = service.hub

        async def writer():
            try:
                while True:
                    client.busy = False
                    _channel, _first, _last, data = await client.queue.get()
                    client.busy = True          # (a frame in hand: the hub queues the next, keeping the order)
                    client.room.set()           # a catch-up waiting for room in this queue goes on
                    if client.gaps and client.queue.qsize() < client.queue_frames:
                        for ch in list(client.gaps):    # a gap pending since the queue was full is told at once
                            client.flush_gap(ch)
                    if isinstance(data, str):
                        await socket.send_text(data)
                    elif wire:
                        await socket.send({"type": "websocket.send", WIRE_KEY: data.wire})
                    elif data.binary:               # an Arrow frame (format 'arrow')
                        await socket.send_bytes(data.payload)
                    else:
                        await socket.send_text(data.payload.decode())
                    client.sent += 1
                    hub.frames_sent += 1
                    if type(data) is Shared and data.live_ns:
                        hub.sent_live(data.live_ns)
            finally:                            # the socket is gone: a catch-up waiting for room stops
                client.closed = True
                client.room.set()

        task = asyncio.create_task(writer())
        try:
            while True:
                msg = await socket.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                raw = msg.get("text")
                if raw is None:             # a binary frame: decode it as UTF-8 JSON too
                    raw = (msg.get("bytes") or b"").decode("utf-8", "replace")
                reply = await _ws_command(service, client, raw)
                if reply is not None:
                    client.queue.put_nowait(("", -1, -1, orjson.dumps(reply).decode()))
        except (WebSocketDisconnect, ClientGone):
            pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            service.hub.drop_client(client)

    return ws


def _error(message: str, field: str | None = None) -> dict:
    return {"type": "error", "message": message, **({"field": field} if field else {})}


async def _ws_command(service: Service, client, raw: str) -> dict | None:
    """Handle one client message; the reply (queued in order before any frame it causes)."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error("messages are JSON objects, e.g. {\"type\":\"subscribe\",\"channels\":[\"opportunities\"]}")
    if not isinstance(msg, dict):
        return _error("a message is a JSON object with a 'type'")
    kind = msg.get("type")
    if kind == "ping":
        return {"type": "pong"}
    if kind not in ("subscribe", "unsubscribe"):
        return _error(f"type {kind!r}: expected subscribe, unsubscribe or ping", "type")
    channels = msg.get("channels")
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        return _error(f"channels {channels!r}: expected a list drawn from {list(CHANNELS)}", "channels")
    if kind == "unsubscribe":
        service.hub.unsubscribe(client, channels)
        return {"type": "unsubscribed", "channels": channels}
    try:
        start, t_ns = parse_from(msg.get("from"))
        tx_filter = TxFilter.parse(msg.get("filter"))
    except FilterError as e:
        return _error(str(e), e.field)
    if tx_filter is not None and "transactions" not in channels:
        return _error("filter: only the transactions channel takes a filter", "filter")
    fmt = msg.get("format", "json")
    if fmt not in FORMATS:
        return _error(f"format {fmt!r}: expected one of {list(FORMATS)}", "format")
    if fmt != "json" and any(c not in ARROW_CHANNELS for c in channels):
        return _error(f"format {fmt!r}: offered on the {' and '.join(ARROW_CHANNELS)} channels (subscribe to "
                      "the others on their own); the other channels send JSON", "format")
    hub = service.hub
    if t_ns is not None:
        untimed = [c for c in channels if c not in TIMED_CHANNELS]
        if untimed:
            return _error(f"from a time: channel {untimed[0]} has no event times (a time resumes "
                          f"{' and '.join(TIMED_CHANNELS)}); subscribe to it from a sequence number", "from")
    ahead = [c for c in channels if start is not None and start > hub.channels[c].next_seq]
    if ahead:       # a sequence this server never numbered: a client of another server, or of an earlier run
        return _error(f"from {start}: channel {ahead[0]} has numbered items up to "
                      f"{hub.channels[ahead[0]].next_seq - 1} only (this server numbers from 0 at its start); "
                      "subscribe without 'from', from 0, or from a time", "from")
    fresh = [c for c in channels if c not in client.channels]
    # where each channel starts: a time maps to the first item numbered at or after it
    starts = {c: start for c in fresh}
    if t_ns is not None:
        starts = {c: (service.index.first_at_or_after(t_ns) if c == "opportunities" else hub.tx.seq_at_time(t_ns))
                  for c in fresh}
    ack = {"type": "subscribed", "channels": channels, "from": msg.get("from"),
           "next_seq": {c: hub.channels[c].next_seq for c in channels}}
    if t_ns is not None:
        ack["first_seq"] = starts
    client.queue.put_nowait(("", -1, -1, orjson.dumps(ack).decode()))
    for c in fresh:
        client.formats[c] = fmt         # before any catch-up below: its frames take the subscription's format
        begin = starts[c]
        if c == "opportunities" and t_ns is not None:
            await stored_since(service, client, t_ns)      # rows from before this server's numbering
        if c == "opportunities" and begin is not None and begin < hub.channels[c].oldest_seq:
            begin = await catch_up(service, client, begin)  # what memory no longer holds, from the store
        # memory, then the live stream: in this one step of the loop (no await between them)
        hub.subscribe(client, [c], begin, tx_filter if c == "transactions" else None, fmt)
    return None
