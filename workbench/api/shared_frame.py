"""A WebSocket message queued for many sockets, framed once for all of them.

A rows frame goes to every subscriber of its channel. Sent the ordinary ASGI way
(``websocket.send`` with ``text``), each socket's send encodes the text to UTF-8, frames it
(RFC 6455 5.2) and joins header and payload: three copies of the same bytes per client, and
the Python calls around them, the larger part of the event loop's time with many clients.
A server frame is the same bytes for every client (unmasked, no extension: per-message
deflate is off, server.py), so ``Shared.wire`` builds it once with the ``websockets`` library's
own framing and every socket writes those bytes.

Only a server that says it can take a built frame is sent one: the uvicorn protocol of
ws_protocol.py puts ``WIRE_EXTENSION`` in the connection's ASGI scope (the ASGI way for a
server to offer more than the spec) and writes ``message[WIRE_KEY]`` to its transport as it is.
Under any other server (Starlette's TestClient, another ASGI server) the socket writer sends
the payload as an ordinary text or binary message.
"""

from __future__ import annotations

from websockets.frames import Frame, Opcode

WIRE_EXTENSION = "workbench.websocket.wire"     # scope extension: the server writes built frames
WIRE_KEY = "workbench.wire"                      # key of a websocket.send message holding a built frame


class Shared:
    """One message's payload (JSON text, or binary: an Arrow IPC stream) for every socket that
    gets it; ``wire``: the whole frame, built on first use and kept."""

    __slots__ = ("payload", "binary", "_wire", "live_ns")

    def __init__(self, payload: bytes, binary: bool = False):
        self.payload = payload
        self.binary = binary
        self._wire = None
        self.live_ns = 0        # a live frame: when its rows were handed on (time.time_ns); 0: a catch-up

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = Frame(Opcode.BINARY if self.binary else Opcode.TEXT, self.payload).serialize(mask=False)
        return self._wire

    def __repr__(self) -> str:
        return f"Shared({'binary' if self.binary else 'text'}, {len(self.payload)} bytes)"
